"""Colour themes from the data files in ``themes/``."""

from __future__ import annotations

import tomllib
from pathlib import Path

from textual.theme import Theme

THEMES_DIR = Path(__file__).resolve().parent.parent / "resources" / "themes"


def load_theme(name: str) -> Theme:
    data = tomllib.loads((THEMES_DIR / f"{name}.toml").read_text())
    colors = data.get("colors", {})
    return Theme(name=f"fieldtui-{data.get('name', name)}", dark=bool(data.get("dark", True)),
                 variables=dict(data.get("variables", {})), **colors)


def theme_palette(name: str) -> dict[str, str]:
    """Colours for things drawn outside CSS (images, plots): ``image-*`` and ``plot-*``."""
    data = tomllib.loads((THEMES_DIR / f"{name}.toml").read_text())
    c = data.get("colors", {})
    return {"fg": c.get("foreground", "#d70000"), "bg": c.get("background", "#000000"),
            "primary": c.get("primary", "#d70000"), "accent": c.get("accent", "#ff0000"),
            "secondary": c.get("secondary", "#af0000"), "night": name == "night"}
