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
    """Entry point. Every failure a user can cause is one line ``error: <what>; <fix>`` on stderr
    with exit code 2: a :class:`~dnas.errors.DnasError`, a usage error (bad flag or value; click
    would print a usage block), and, as a last net, the OS and decoding errors that bad input can
    raise deep inside a library (not UTF-8, nested too deeply, a path of the wrong kind)."""
    try:  # typer >= 0.20 ships its own copy of click
        from typer._click import exceptions as cx
    except ImportError:  # pragma: no cover
        from click import exceptions as cx

    from dnas.errors import DnasError

    _load_commands()
    try:
        app(args=argv, prog_name="dnas", standalone_mode=False)
    except DnasError as e:
        return _fail(str(e))
    except cx.NoArgsIsHelpError as e:  # `dnas` / `dnas evolve` alone: show the help
        typer.echo(e.ctx.get_help() if e.ctx else "", err=True)
        return 2
    except cx.UsageError as e:
        where = f"dnas {e.ctx.info_name}" if e.ctx and e.ctx.info_name != "dnas" else "dnas"
        param = getattr(e, "param", None)
        msg = e.format_message()
        name = param.opts[0] if param is not None and getattr(param, "opts", None) else ""
        return _fail(f"{name + ': ' if name and name not in msg else ''}{msg}; see {where} --help")
    except cx.ClickException as e:
        return _fail(e.format_message())
    except typer.Abort:
        typer.echo("interrupted", err=True)
        return 130
    except typer.Exit as e:  # --help, or typer.Exit(code)
        return e.exit_code
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        return 130
    except UnicodeError as e:
        return _fail(f"input: not UTF-8 text ({type(e).__name__} at byte {getattr(e, 'start', '?')}); pass text files in UTF-8")
    except RecursionError:
        return _fail("input: nested too deeply to read; pass a plain document")
    except (IsADirectoryError, NotADirectoryError, FileExistsError, PermissionError) as e:
        return _fail(f"{e.filename or 'path'}: {e.strerror or type(e).__name__}; pass a path of the right kind")
    return 0


def _fail(message: str) -> int:
    """Print one error line (newlines inside a message are folded, so it stays one line)."""
    typer.echo("error: " + " ".join(message.split()), err=True)
    return 2


if __name__ == "__main__":  # pragma: no cover
    # run through the importable module, so command modules register on the same `app`
    from dnas.cli import main as _main

    sys.exit(_main())
