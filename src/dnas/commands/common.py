"""Shared bits of the command modules: JSON printing and the quiet/progress switch."""
from __future__ import annotations

import json
import sys
from typing import Any

import typer


#: ``--quiet`` for every command: no human-readable output (errors still print; ``--json``
#: still prints its one object).
QUIET_HELP = "no output but errors (with --json: only the JSON object)"


def emit_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=2, default=str))


def show_progress(quiet: bool, as_json: bool) -> bool:
    """Progress bars only for a person at a terminal: not with --quiet, --json or a pipe."""
    return not quiet and not as_json and sys.stderr.isatty()


def say(quiet: bool, message: str) -> None:
    if not quiet:
        typer.echo(message)
