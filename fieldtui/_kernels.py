"""The compiled kernels (``stacking._combine``, ``stacking._rcd``, ``imaging._sky``), used
only when built from the current C source.

``setup.py`` compiles each ``<package>/<name>.c`` with ``SOURCE_SHA`` set to the first 16 hex
digits of the SHA-256 of that file, and the extension exposes it as ``SOURCE_SHA``.
The Python module that calls a kernel states the digest of the source it was written
for (a test checks it against the file), and :func:`load` hands the extension over
only when the two agree. An extension built before its C source last changed (an
editable install not rebuilt after a pull: ``pip install -e .`` rebuilds it) would
otherwise run other arithmetic than its Python twin, silently: a stale ``_rcd`` gave
wrong colours. Such a build is left aside with one warning and the module's own
fallback (numba for ``_combine``, numpy for ``_rcd``, sep and numpy for ``_sky``) runs until it is rebuilt.
"""

from __future__ import annotations

import hashlib
import importlib
import warnings
from types import ModuleType

#: why an extension was left aside, by name (empty when all are in use or not built)
STALE: dict[str, str] = {}


def source_sha(text: bytes) -> str:
    """The digest ``setup.py`` builds into an extension: the first 16 hex digits of the
    SHA-256 of its C source ``text``."""
    return hashlib.sha256(text).hexdigest()[:16]


def load(name: str, expected_sha: str) -> ModuleType | None:
    """The extension ``fieldtui.<name>`` (``name`` as ``"stacking._rcd"``) when it is built and its ``SOURCE_SHA``
    equals ``expected_sha``; None when it is not built (no C compiler), or, with a
    ``RuntimeWarning`` and a line in :data:`STALE`, when it was built from another
    source (or before extensions carried their digest)."""
    try:
        mod = importlib.import_module(f"fieldtui.{name}")
    except ImportError:
        STALE.pop(name, None)
        return None
    built = getattr(mod, "SOURCE_SHA", "")
    if built != expected_sha:
        STALE[name] = (f"fieldtui.{name} was built from another {name.rsplit('.', 1)[-1]}.c "
                       f"({built or 'no digest'}, the code expects {expected_sha}): not used until "
                       "`pip install -e .` rebuilds it")
        warnings.warn(STALE[name], RuntimeWarning, stacklevel=2)
        return None
    STALE.pop(name, None)
    return mod
