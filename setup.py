"""Build of the optional compiled stacking kernel (everything else is in pyproject.toml).

``fieldtui.stacking._combine`` and ``fieldtui.stacking._rcd`` are plain C extensions (no
numpy headers); where no C compiler is found the build goes on without them and stacking
uses its numba kernel and numpy's RCD.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("fieldtui.stacking._combine", ["fieldtui/stacking/_combine.c"],
                             extra_compile_args=["-O3", "-ffp-contract=off"], optional=True),
                   Extension("fieldtui.stacking._rcd", ["fieldtui/stacking/_rcd.c"],
                             extra_compile_args=["-O3", "-ffp-contract=off"], optional=True)])
