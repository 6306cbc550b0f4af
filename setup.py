"""Build of the optional compiled kernels (everything else is in pyproject.toml).

``fieldtui.stacking._combine``, ``fieldtui.stacking._rcd`` and ``fieldtui.imaging._sky`` are
plain C extensions (no numpy headers); where no C compiler is found the build goes on
without them and stacking uses its numba kernel and numpy's RCD, star detection sep's
background and numpy's windowed centroids.
"""

import hashlib
from pathlib import Path

from setuptools import Extension, setup

HERE = Path(__file__).resolve().parent


def kernel(name: str, package: str = "stacking") -> Extension:
    """The extension ``fieldtui.<package>.<name>``, carrying the digest of the source it is
    built from (``SOURCE_SHA``; fieldtui._kernels leaves aside a build whose
    digest is not the one its Python module expects)."""
    src = f"fieldtui/{package}/{name}.c"
    sha = hashlib.sha256((HERE / src).read_bytes()).hexdigest()[:16]
    return Extension(f"fieldtui.{package}.{name}", [src], define_macros=[("SOURCE_SHA", f'"{sha}"')],
                     extra_compile_args=["-O3", "-ffp-contract=off"], optional=True)


setup(ext_modules=[kernel("_combine"), kernel("_rcd"), kernel("_sky", "imaging")])
