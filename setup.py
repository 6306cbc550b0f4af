"""Build of the optional compiled stacking kernel (everything else is in pyproject.toml).

``fieldtui.stacking._combine`` is a plain C extension (no numpy headers); where no C
compiler is found the build goes on without it and stacking uses its numba kernel.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("fieldtui.stacking._combine", ["fieldtui/stacking/_combine.c"],
                             extra_compile_args=["-O3", "-ffp-contract=off"], optional=True)])
