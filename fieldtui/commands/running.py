"""What the running rig service says about itself, for commands that talk to it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any


async def service_status(timeout: float = 2.0) -> dict[str, Any] | None:
    """The running service's ``service.status`` (pid, config files, devices, activities),
    or None when no service answers within ``timeout`` seconds."""
    from ..service.client import CommandFailed, RigClient, ServiceUnavailable
    client = RigClient()
    try:
        await client.connect(timeout=timeout)
    except ServiceUnavailable:
        return None
    try:
        return await client.command("service.status", timeout=timeout + 3)
    except (CommandFailed, ServiceUnavailable, asyncio.TimeoutError):
        return None
    finally:
        await client.close()


def config_notice(status: dict[str, Any], config_path: str | None) -> str:
    """One line saying that the command talks to the running service and which config files it
    runs with; when ``config_path`` was given and the service does not run with it, says that the
    option applies only after the service is restarted."""
    files = [str(f) for f in status.get("config") or []]
    line = (f"talking to the running rig service (pid {status.get('pid')}), config: "
            f"{', '.join(files) if files else 'the defaults'}")
    if config_path and str(Path(config_path).resolve()) not in {str(Path(f).resolve()) for f in files}:
        line += (f"; --config {config_path} is not used by it: stop it (fieldtui service stop) "
                 "and start again to run with that file")
    return line
