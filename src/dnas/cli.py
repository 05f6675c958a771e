"""The ``dnas`` command line. Each command group lives in its own module under
``dnas.commands`` and registers itself on :data:`app`; this file only assembles them and turns
:class:`~dnas.errors.DnasError` into a one-line message with exit code 2."""
from __future__ import annotations

import importlib
import sys

import typer

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="dnas: differentiable neural architecture search (DARTS, PC-DARTS and friends).",
)

#: Command modules, imported in order; each calls ``@app.command()`` on import.
COMMAND_MODULES = [
    "dnas.commands.search",
    "dnas.commands.show",
    "dnas.commands.train",
    "dnas.commands.export",
    "dnas.commands.predictor",
    "dnas.commands.proxy",
    "dnas.commands.evolve",
    "dnas.commands.latency",
    "dnas.commands.shrink",
    "dnas.commands.report",
]


def _load_commands() -> None:
    for mod in COMMAND_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name != mod:  # a real missing dependency inside the module
                raise


@app.callback()
def _root() -> None:
    """dnas: differentiable neural architecture search (DARTS, PC-DARTS and friends)."""


def main(argv: list[str] | None = None) -> int:
    """Entry point: usage errors are handled by typer/click (exit 2); a
    :class:`~dnas.errors.DnasError` becomes ``error: <one line>`` on stderr with exit 2."""
    from dnas.errors import DnasError

    _load_commands()
    try:
        app(args=argv, prog_name="dnas")
    except DnasError as e:
        typer.echo(f"error: {e}", err=True)
        return 2
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    # run through the importable module, so command modules register on the same `app`
    from dnas.cli import main as _main

    sys.exit(_main())
