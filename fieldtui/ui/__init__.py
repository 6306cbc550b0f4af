"""The Textual client. Only this package imports textual."""

from __future__ import annotations

import asyncio
import sys

from ..config import Config


def run_client(cfg: Config, config_path: str | None = None, fast: bool = False) -> int:
    from ..service.client import ServiceUnavailable
    from ..service.daemon import ensure_running
    # Start the service (a separate, detached process) before the app takes the terminal.
    try:
        asyncio.run(ensure_running(config_path, fast, wait=False))
    except ServiceUnavailable as exc:
        print(f"fieldtui: {exc}", file=sys.stderr)
        return 1
    import os
    if cfg.ui.colours in ("8", "16"):  # forced: Textual sends the 16 ANSI colours only
        os.environ["TEXTUAL_COLOR_SYSTEM"] = "standard"
    from .app import FieldApp
    FieldApp(theme=cfg.ui.theme, config_path=config_path, fast=fast, colours=cfg.ui.colours).run()
    return 0
