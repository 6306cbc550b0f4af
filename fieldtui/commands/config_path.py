"""``fieldtui config-path``: where the user's own config file goes."""

from __future__ import annotations

import argparse

from ..config import user_config_path


def add_arguments(p: argparse.ArgumentParser) -> None:
    """No arguments."""


def run(args: argparse.Namespace) -> int:
    """Print the path (it may not exist yet)."""
    print(user_config_path())
    return 0
