"""``goldfish backup``, ``backups`` and ``restore``."""

from __future__ import annotations

import argparse


def add_backup_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``backup``, ``backups``, ``restore``."""
    del sub
