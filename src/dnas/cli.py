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
]


def _load_commands() -> None:
    for mod in COMMAND_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name != mod:  # a real missing dependency inside the module
                raise


def main(argv: list[str] | None = None) -> int:
    from dnas.errors import DnasError

    _load_commands()
    try:
        app(args=argv, standalone_mode=False)
    except DnasError as e:
        typer.echo(f"error: {e}", err=True)
        return 2
    except typer.Exit as e:
        return e.exit_code
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 130
    except Exception as e:  # click usage errors
        import click

        if isinstance(e, click.ClickException):
            e.show()
            return e.exit_code
        raise
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
