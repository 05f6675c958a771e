"""``dnas report RUN_DIR``: a self-contained HTML page about a run (see :mod:`dnas.report`)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from dnas.cli import app
from dnas.commands.common import emit_json, say


@app.command()
def report(
    run_dir: Path = typer.Argument(..., help="a run directory written by dnas search, dnas train or another dnas run"),
    out: Optional[Path] = typer.Option(None, help="where to write index.html and the PNGs (default RUN_DIR/report)"),
    diagrams: str = typer.Option("auto", help="cell diagrams: auto (graphviz when installed) | dot | matplotlib"),
    tensorboard: bool = typer.Option(True, "--tensorboard/--no-tensorboard",
                                     help="also write TensorBoard event files from events.jsonl when the run has none"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="print only the page's path"),
) -> None:
    """Write RUN_DIR/report/index.html: config, curves, architecture weights, cells, guard, cost, Pareto front."""
    from dnas import tb
    from dnas.errors import ConfigError
    from dnas.report import make_report

    if diagrams not in ("auto", "dot", "matplotlib"):
        raise ConfigError(f"--diagrams: unknown renderer {diagrams!r}; use auto, dot or matplotlib")
    index = make_report(run_dir, out, diagrams=diagrams, tensorboard=tensorboard)
    has_tb = tb.has_event_files(run_dir)
    if as_json:
        emit_json({"report": str(index), "tensorboard": str(Path(run_dir) / tb.TB_DIR) if has_tb else None})
        return
    if quiet:
        typer.echo(str(index))
        return
    say(quiet, f"report: {index}")
    if has_tb:
        say(quiet, f"tensorboard: tensorboard --logdir {run_dir}")
