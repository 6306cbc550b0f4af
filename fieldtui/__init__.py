"""fieldtui: run an astrophotography night from a terminal."""

import os

# One BLAS thread unless the user says otherwise (before numpy loads). The
# guide engine's fits are small least-squares problems (at most a few
# thousand rows by 8 columns) that a BLAS thread pool only slows down: on a
# busy 2-core machine one 3600x8 lstsq took 48 ms with the pool and 0.4 ms
# without, and a predictive refit 1.8-4 s against 45-80 ms. The service
# shares its cores with the guide loop; heavy array work runs in its own
# worker threads or processes anyway.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
del _var

from importlib.metadata import PackageNotFoundError, version  # noqa: E402

try:
    __version__ = version("fieldtui")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"
