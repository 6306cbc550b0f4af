"""Saving an equipment choice to the user's config file.

The Equipment screen lists what discovery found attached (``devices/discover.py``);
picking one of those for a role writes the few keys that select it into the
user's own TOML file (``fieldtui config-path``), keeping every other key and
comment (tomlkit edits the document in place), after checking that the whole
configuration still loads (``config.load_config``). The write is atomic.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import tomlkit

from .atomic import write_with
from .config import ConfigError, load_config, user_config_path

# What kind of attached device serves which role.
ROLE_OF_KIND = {"zwo": "guide_camera", "serial": "mount", "gphoto2": "main_camera"}


class ChoiceError(ValueError):
    """An attached device that cannot be used as asked; the message says why, in one line."""


def choice_keys(found: dict[str, str]) -> tuple[str, dict[str, Any]]:
    """(role, {key: value}) that select ``found`` — one item of ``discover()``'s list
    (``kind``, ``where``, ``what``, ``answers``) — for its role.

    Raises ChoiceError when the item cannot serve a role (a serial port where no mount
    answered, a port in use, a failed listing)."""
    kind, where, what = found.get("kind", ""), found.get("where", ""), found.get("what", "")
    role = ROLE_OF_KIND.get(kind)
    if role is None or where in ("", "-"):
        raise ChoiceError(f"{what or kind or 'this line'} is not a device that can be used")
    if kind == "serial":
        proto = found.get("answers", "")
        if not proto:
            raise ChoiceError(f"no mount answered on {where}: check its cable, baud rate and power")
        return role, {"driver": proto, "port": where}
    if kind == "zwo":
        try:
            index = int(where.split()[-1])
        except ValueError:
            raise ChoiceError(f"ZWO camera at '{where}' has no index") from None
        return role, {"driver": "zwo", "index": index, "model": what}
    return role, {"driver": "gphoto2", "model": what}


def save_choice(role: str, keys: dict[str, Any], path: str | Path | None = None) -> Path:
    """Set ``[role]`` ``keys`` in the user's config file (``path``, else
    :func:`config.user_config_path`), keeping its other keys and comments; returns the path.

    Raises ConfigError when the file does not parse, or when the configuration with the
    change would not load (the file is then left as it was); OSError when it cannot be
    written (also leaving it as it was)."""
    path = Path(path) if path is not None else user_config_path()
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    try:
        doc = tomlkit.parse(text)
    except Exception as exc:  # noqa: BLE001 - tomlkit's parse errors have no common base
        raise ConfigError(path, "(syntax)", "valid TOML", str(exc)) from None
    table = doc.get(role)
    if table is None:
        table = tomlkit.table()
        doc[role] = table
    for key, value in keys.items():
        table[key] = value
    new = tomlkit.dumps(doc)
    try:
        load_config(user=False, overrides=tomllib.loads(new))
    except ConfigError as exc:
        raise ConfigError(path, exc.key, exc.expected, exc.found) from None
    write_with(path, lambda fh: fh.write(new.encode("utf-8")))
    return path


def shadowed_by(config_path: str | Path | None, role: str, keys: dict[str, Any]) -> str:
    """The ``--config`` file (given to the client and service) when it sets one of ``keys`` in
    ``[role]`` itself, which then wins over the user's file; '' when it does not, or cannot
    be read (loading it reports that)."""
    if not config_path:
        return ""
    try:
        table = tomllib.loads(Path(config_path).read_text(encoding="utf-8")).get(role) or {}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return ""
    clash = [k for k in keys if k in table and table[k] != keys[k]]
    return f"{config_path} ({', '.join(f'{role}.{k}' for k in clash)})" if clash else ""
