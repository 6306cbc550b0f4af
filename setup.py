"""Build of the optional compiled stacking kernel (everything else is in pyproject.toml).

``fieldtui.stacking._combine`` and ``fieldtui.stacking._rcd`` are plain C extensions (no
numpy headers); where no C compiler is found the build goes on without them and stacking
uses its numba kernel and numpy's RCD.
"""

import hashlib
from pathlib import Path

from setuptools import Extension, setup

HERE = Path(__file__).resolve().parent


def kernel(name: str) -> Extension:
    """The extension ``fieldtui.stacking.<name>``, carrying the digest of the source it is
    built from (``SOURCE_SHA``; fieldtui.stacking._kernels leaves aside a build whose
    digest is not the one its Python module expects)."""
    src = f"fieldtui/stacking/{name}.c"
    sha = hashlib.sha256((HERE / src).read_bytes()).hexdigest()[:16]
    return Extension(f"fieldtui.stacking.{name}", [src], define_macros=[("SOURCE_SHA", f'"{sha}"')],
                     extra_compile_args=["-O3", "-ffp-contract=off"], optional=True)


setup(ext_modules=[kernel("_combine"), kernel("_rcd")])
