"""``dnas proxy``: zero-cost proxy scores of one architecture or of every record in a file."""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Optional

import typer

from dnas.cli import app
from dnas.commands.common import emit_json, show_progress
from dnas.errors import ConfigError


def parse_net_opts(text: Optional[str]) -> dict[str, Any]:
    """``"C=8,N=1"`` -> ``{"C": 8, "N": 1}`` (integers where they parse, else strings)."""
    out: dict[str, Any] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        key, sep, val = part.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"net: expected key=value pairs like C=8,N=1, got {part!r}")
        val = val.strip()
        try:
            out[key.strip()] = int(val)
        except ValueError:
            out[key.strip()] = val
    return out


def _records_or_none(target: str) -> "list[dict] | None":
    """The raw records list when ``target`` names a built-in table or a JSON list file."""
    from dnas.evaluators.tabular import BUILTIN_TABLES, resolve_table

    p = Path(target)
    if target not in BUILTIN_TABLES and not (p.is_file() and p.suffix == ".json"):
        return None
    _, text = resolve_table(target)
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"records {target}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    if isinstance(raw, list):
        if not raw or not all(isinstance(r, dict) for r in raw):
            raise ConfigError(f"records {target}: expected a non-empty JSON list of record objects")
        return raw
    return None  # a genotype file: one architecture


def _clean(v: float) -> "float | None":
    return float(v) if math.isfinite(v) else None


@app.command("proxy")
def proxy(
    target: str = typer.Argument(..., help="an architecture (string or genotype file) or a records JSON list / built-in table"),
    space: str = typer.Option("nb201", help="search space of the architectures"),
    data: Optional[str] = typer.Option(None, help="dataset for data-dependent proxies (digits, mnist, PATH, ...)"),
    input_shape: Optional[str] = typer.Option(None, help="C,H,W of the network input (data-independent proxies need only this)"),
    num_classes: Optional[int] = typer.Option(None, min=1, help="classifier width (default: the data's classes, or 10)"),
    proxies: str = typer.Option("synflow", help="comma-separated proxy names"),
    net: Optional[str] = typer.Option(None, help="evaluation-network options, e.g. C=8,N=1 (nb201) or C=16,layers=8 (darts)"),
    batch_size: int = typer.Option(64, min=2, help="images in the scoring batch"),
    seed: int = typer.Option(0, help="seed of the initial weights and of the batch"),
    out: Optional[Path] = typer.Option(None, help="write a copy of the records with each proxy's score added"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
    quiet: bool = typer.Option(False, "--quiet", help="no progress output"),
) -> None:
    """Score architectures with zero-cost proxies at initialisation (no training)."""
    from scipy import stats

    from dnas.io import write_json
    from dnas.predictors.zerocost import ProxyScorer
    from dnas.progress import progress

    scorer = ProxyScorer(space, proxies, data=data, input_shape=input_shape, num_classes=num_classes,
                         batch_size=batch_size, seed=seed, net_opts=parse_net_opts(net))
    records = _records_or_none(target)
    t0 = time.perf_counter()
    if records is None:
        if out is not None:
            raise ConfigError("out: --out writes a records file; give a records JSON list as the target")
        arch = scorer.space.parse(target)
        scores = {k: _clean(v) for k, v in scorer.score(arch).items()}
        res = {"arch": scorer.space.to_str(arch), "space": scorer.space.name, "scores": scores,
               "seconds": round(time.perf_counter() - t0, 3)}
        if as_json:
            emit_json(res)
        else:
            typer.echo("  ".join(f"{k} {v:.6g}" if v is not None else f"{k} nan" for k, v in scores.items()))
        return

    from dnas.errors import DnasError
    from dnas.evaluators.tabular import arch_key

    archs = []
    for i, r in enumerate(records):
        try:  # a records entry names its arch the way tables do ('arch' or the genotype fields)
            archs.append(scorer.space.parse(arch_key(r)))
        except DnasError as e:
            raise ConfigError(f"records {target}[{i}]: {e}") from None
    rows = []
    with progress(show_progress(quiet, as_json)) as bar:
        task = bar.add("proxies", total=len(archs))
        for a in archs:
            rows.append(scorer.score(a))
            bar.advance(task)
    written = [{**r, **{k: _clean(v) for k, v in s.items()}} for r, s in zip(records, rows)]
    if out is not None:
        write_json(out, written)

    def rho(xs, ys) -> "float | None":
        pairs = [(x, y) for x, y in zip(xs, ys) if x is not None and y is not None and math.isfinite(x) and math.isfinite(y)]
        if len(pairs) < 3:
            return None
        r = stats.spearmanr([p[0] for p in pairs], [p[1] for p in pairs])[0]
        return None if r is None or math.isnan(r) else round(float(r), 4)

    names = scorer.proxies
    res = {
        "records": len(records), "space": scorer.space.name, "proxies": names, "out": str(out) if out else None,
        "seconds": round(time.perf_counter() - t0, 3),
        # how each score ranks the records' accuracy, and agrees with scores the input already carried
        "spearman_vs_val_accuracy": {p: rho([s[p] for s in rows], [r.get("val_accuracy") for r in records]) for p in names},
        "spearman_vs_input": {p: rho([s[p] for s in rows], [r.get(p) for r in records]) for p in names
                              if any(isinstance(r.get(p), (int, float)) for r in records)},
    }
    if as_json:
        emit_json(res)
    else:
        typer.echo(f"scored {len(records)} records with {', '.join(names)} in {res['seconds']:.1f} s"
                   + (f" -> {out}" if out else ""))
        for p in names:
            line = f"  {p}: spearman vs val_accuracy {res['spearman_vs_val_accuracy'][p]}"
            if p in res["spearman_vs_input"]:
                line += f", vs the input's {p} {res['spearman_vs_input'][p]}"
            typer.echo(line)
