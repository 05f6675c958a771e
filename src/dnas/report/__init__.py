"""``dnas report RUN_DIR``: one self-contained HTML page about a run (search, training,
discrete or evolutionary search), written to ``RUN_DIR/report/index.html`` with its PNGs
beside it.

Everything comes from the run directory as the run left it: ``config.yaml``, the JSON-lines
``events.jsonl`` (epoch events with losses, accuracies, ``alphas``, ``guard``, ``arch_terms``),
``result.json``, ``genotype.json`` and, for multi-objective runs, ``pareto.json``. A section is
drawn when its data is there and skipped otherwise, so the report works on runs of every kind,
on runs still in progress and on runs made by older versions.

Modules: :mod:`.plots` (figures), :mod:`.cells` (cell diagrams), :mod:`.html` (the page).
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dnas.errors import DnasError
from dnas.report import cells as cell_diagrams
from dnas.report import plots
from dnas.report.decision import decision_section
from dnas.report.html import Figure, Section, esc, page, paragraph, preformatted, table

#: Fields read from result.json / start events / pareto members as cost.
COST_KEYS = ("params", "aux_params", "macs", "flops", "latency", "latency_ms", "cost")


@dataclass
class RunData:
    """What a run directory holds, parsed once."""

    path: Path
    config: dict = field(default_factory=dict)
    events: list[dict] = field(default_factory=list)
    result: dict = field(default_factory=dict)
    genotype: dict | None = None
    pareto: dict | None = None

    def of(self, event: str) -> list[dict]:
        return [e for e in self.events if e.get("event") == event]

    @property
    def epochs(self) -> list[dict]:
        return self.of("epoch")

    @property
    def kind(self) -> str:
        start = (self.of("start") or [{}])[0]
        if start.get("kind"):
            return str(start["kind"])
        if "params" in start and "genotype" in start:
            return "train"
        for event, kind in (("query", "discrete search"), ("generation", "evolution"), ("eval", "alternating search")):
            if self.of(event):
                return kind
        return "search" if any("alphas" in e for e in self.epochs) else "run"


def _read_json(path: Path) -> Any:
    """An optional JSON file of the run; absent means ``None``, damaged is one line."""
    from dnas.io import read_json

    if not path.exists():
        return None
    return read_json(path, "run file")


def load_run(run_dir: str | os.PathLike) -> RunData:
    """Parse a run directory; raises :class:`DnasError` when it is not one."""

    from dnas.io import read_jsonl

    p = Path(run_dir)
    if not p.is_dir():
        raise DnasError(f"{p}: no such run directory; pass the directory a search or training wrote")
    marks = [p / n for n in ("events.jsonl", "config.yaml", "result.json", "pareto.json")]
    if not any(m.exists() for m in marks):
        raise DnasError(f"{p}: not a run directory (no events.jsonl, config.yaml, result.json or pareto.json)")
    from dnas.manifest import MANIFEST, read_manifest, verify

    if (p / MANIFEST).exists():  # checkpoints, models and configs must be the bytes the run wrote
        for name in read_manifest(p)["files"]:
            if (p / name).exists():
                verify(p / name, name)
    run = RunData(p)
    if (p / "events.jsonl").exists():
        run.events = read_jsonl(p / "events.jsonl")
    if (p / "config.yaml").exists():
        from dnas.io import loads_yaml, read_text

        cfg = loads_yaml(read_text(p / "config.yaml", "config"), str(p / "config.yaml"))
        run.config = cfg if isinstance(cfg, dict) else {}
    if not run.config:
        run.config = dict((run.of("start") or [{}])[0].get("config") or {})
    run.result = _read_json(p / "result.json") or {}
    run.genotype = _read_json(p / "genotype.json") or (run.result.get("genotype") if isinstance(run.result.get("genotype"), dict) else None)
    pareto = _read_json(p / "pareto.json")
    if isinstance(pareto, list):
        pareto = {"members": pareto}
    run.pareto = pareto if isinstance(pareto, dict) and isinstance(pareto.get("members"), list) else None
    return run


# ------------------------------------------------------------------------ sections


def _scalars(d: dict) -> list[tuple[str, Any]]:
    return [(k, v) for k, v in d.items() if isinstance(v, (int, float, str, bool)) or v is None]


def _overview(run: RunData) -> Section:
    s = Section("overview", "Overview")
    end = run.of("end")
    rows: list[tuple[str, Any]] = [("run directory", str(run.path.resolve())), ("kind", run.kind),
                                   ("status", "finished" if end else "not finished (in progress, stopped or killed)")]
    if run.epochs:
        rows.append(("epochs logged", len(run.epochs)))
        secs = sum(float(e.get("seconds") or 0) for e in run.epochs)
        rows.append(("epoch time (s)", round(secs, 1)))
    if run.epochs and run.epochs[-1].get("world_size"):
        rows.append(("data-parallel ranks", run.epochs[-1]["world_size"]))
    if run.genotype:
        try:
            from dnas.genotype import Genotype

            rows.append(("genotype hash", Genotype.from_dict(run.genotype).hash()))
        except DnasError:
            pass
    rows += [(f"result: {k}", v) for k, v in _scalars(run.result) if k not in ("genotype_hash",)]
    if end:
        rows += [(f"end: {k}", v) for k, v in _scalars(end[-1]) if k not in ("event", "time")]
    s.add(table(rows, ("field", "value")))
    return s


def _config(run: RunData) -> Section | None:
    if not run.config:
        return None
    import yaml

    return Section("config", "Config").add(preformatted(yaml.safe_dump(run.config, sort_keys=False)))


def _curves(run: RunData) -> Section | None:
    s = Section("curves", "Loss and accuracy")
    png = plots.epoch_curves(run.epochs)
    if png is not None:
        s.add(Figure("curves.png", png, "per epoch; architecture loss is the validation loss of the architecture steps"))
    for event, x_key in (("query", "query"), ("generation", "generation"), ("eval", "evaluation")):
        png = plots.event_curves(run.of(event), x_key)
        if png is not None:
            s.add(Figure(f"{event}_curves.png", png, f"numeric fields of the '{event}' events"))
    last = run.epochs[-1] if run.epochs else None
    if last:
        keys = [k for k in ("train_loss", "train_acc", "val_loss", "val_acc", "arch_loss", "lr") if k in last]
        s.add(table([[run.epochs[i].get("epoch")] + [run.epochs[i].get(k) for k in keys] for i in range(len(run.epochs))],
                    ["epoch"] + keys))
    return s if s.parts else None


def _row_labels(run: RunData, group: tuple, n: int) -> list[str] | None:
    prims = run.config.get("primitives") or []
    links = run.config.get("link_primitives") or []
    name = str(group[0]) if group else ""
    if name.startswith("link") and len(links) == n:
        return list(links)
    if len(prims) == n:
        return list(prims)
    if len(links) == n:
        return list(links)
    titles = plots._edge_titles(n)
    return titles


def _architecture(run: RunData) -> Section | None:
    groups = plots.alpha_groups(run.epochs)
    if not groups:
        return None
    s = Section("architecture", "Architecture weights over epochs")
    s.add(paragraph("Softmaxed architecture weights from the 'alphas' field of each epoch event: one heatmap per edge, "
                    "rows are the candidate ops, columns the epochs; one colour scale per figure."))
    for group, leaves in groups.items():
        n = max(m.shape[0] for _, m in leaves.values())
        name = "/".join(map(str, group)) or "alphas"
        png = plots.alpha_heatmaps(name, leaves, _row_labels(run, group, n))
        if png is not None:
            s.add(Figure(f"alphas_{name.replace('/', '_')}.png", png, name))
    return s


def _cells(run: RunData, engine: str) -> tuple[Section | None, str | None]:
    if not run.genotype:
        return None, None
    graphs = cell_diagrams.cell_graphs(run.genotype)
    if not graphs:
        return None, None
    s = Section("cells", "Derived cells")
    used = set()
    for i, g in enumerate(graphs):
        png, how = cell_diagrams.render(g, engine)
        used.add(how)
        s.add(Figure(f"cell_{i}_{g.title.replace(' ', '_').replace(',', '')}.png", png, g.title))
    meta = run.genotype.get("meta") or {}
    note = f"drawn with {', '.join(sorted(used))}"
    if meta.get("guard_stop"):
        note += f"; collapse guard kept the genotype of epoch {int(meta['guard_stop'].get('chosen_epoch', 0)) + 1}"
    s.add(paragraph(note, muted=True))
    s.add(preformatted(json.dumps({k: v for k, v in run.genotype.items() if k != "meta"}, indent=None)))
    return s, ",".join(sorted(used))


def _guard(run: RunData) -> Section | None:
    recs = [e for e in run.epochs if isinstance(e.get("guard"), dict)]
    stops = run.of("guard_stop")
    if not recs and not stops:
        return None
    s = Section("guard", "Collapse guard")
    png = plots.guard_signals(run.epochs)
    if png is not None:
        s.add(Figure("guard.png", png, "collapse-guard signals per epoch (red: a stop rule fired)"))
    alarms = [(e["epoch"], e["guard"]["alarm"].get("rule"), e["guard"]["alarm"].get("reason"))
              for e in recs if isinstance(e["guard"].get("alarm"), dict)]
    if alarms:
        s.add(table(alarms, ("epoch", "rule", "reason")))
    for st in stops:
        s.add(paragraph(f"search stopped by rule '{st.get('rule')}' at epoch {st.get('at_epoch')}: {st.get('reason')}; "
                        f"kept the genotype of epoch {st.get('chosen_epoch')}"))
    if not alarms and not stops:
        s.add(paragraph("no stop rule fired", muted=True))
    return s


def _cost(run: RunData) -> Section | None:
    rows: list[tuple[str, str, Any]] = []
    start = (run.of("start") or [{}])[0]
    for source, d in (("result.json", run.result), ("start event", start), ("end event", (run.of("end") or [{}])[-1])):
        for k in COST_KEYS:
            v = d.get(k)
            if isinstance(v, dict):
                rows += [(source, f"{k}.{kk}", vv) for kk, vv in v.items() if isinstance(vv, (int, float))]
            elif isinstance(v, (int, float)) and not isinstance(v, bool):
                rows.append((source, k, v))
    last_cost = next((e["cost"] for e in reversed(run.epochs) if isinstance(e.get("cost"), dict)), None)
    if last_cost:
        rows += [("last epoch event", k, v) for k, v in last_cost.items() if isinstance(v, (int, float))]
    png = plots.arch_terms(run.epochs)
    if not rows and png is None:
        return None
    s = Section("cost", "Cost")
    if rows:
        s.add(table(rows, ("source", "measure", "value")))
    if png is not None:
        s.add(Figure("arch_terms.png", png, "architecture-objective terms per epoch (cost penalties, regularisers)"))
    return s


def _pareto(run: RunData) -> Section | None:
    if not run.pareto or not run.pareto["members"]:
        return None
    members = [m for m in run.pareto["members"] if isinstance(m, dict) and "objectives" in m]
    for m in members:  # objectives as a list: name them obj0, obj1, ...
        if isinstance(m["objectives"], list):
            m["objectives"] = {f"obj{i}": v for i, v in enumerate(m["objectives"])}
    names = list(run.pareto.get("objectives") or (list(members[0]["objectives"]) if members else []))
    s = Section("pareto", "Pareto front")
    png = plots.pareto_front(members, names)
    if png is not None:
        s.add(Figure("pareto.png", png, f"objectives: {', '.join(names)}"))
    extra = [k for k in ("key", "summary", "error") if any(k in m for m in members)]
    s.add(table([[i] + [m["objectives"].get(n) for n in names] + [m.get(k) for k in extra] for i, m in enumerate(members)],
                ["#"] + names + extra))
    return s


def _files(run: RunData) -> Section:
    from dnas import tb

    s = Section("files", "Files")
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in run.path.iterdir())
    s.add(paragraph("run directory: " + ", ".join(names)))
    if tb.has_event_files(run.path):
        s.add(paragraph(f"TensorBoard: tensorboard --logdir {run.path}"))
    return s


# ------------------------------------------------------------------------ the report


def build_sections(run: RunData, *, diagrams: str = "auto") -> list[Section]:
    """All sections that have data, in page order."""
    cells, _ = _cells(run, diagrams)
    sections = [_overview(run), _config(run), _curves(run), decision_section(run.epochs, run.result), _architecture(run),
                cells, _guard(run), _cost(run),
                _pareto(run), _files(run)]
    return [s for s in sections if s is not None]


def make_report(run_dir: str | os.PathLike, out: str | os.PathLike | None = None, *, diagrams: str = "auto",
                tensorboard: bool = True) -> Path:
    """Write ``index.html`` and its PNGs into ``out`` (default ``RUN_DIR/report``); returns the
    page's path. ``diagrams``: ``auto`` (graphviz when installed), ``dot`` or ``matplotlib``.
    ``tensorboard``: also write TensorBoard event files from the events when the run has none."""
    from dnas import tb
    from dnas.io import write_bytes, write_text

    run = load_run(run_dir)
    if tensorboard:
        tb.export_events(run.path)
    out_dir = Path(out) if out is not None else run.path / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    sections = build_sections(run, diagrams=diagrams)
    for s in sections:
        for f in s.figures:
            write_bytes(out_dir / f.name, f.png)
    title = f"dnas {run.kind} report: {run.path.name}"
    subtitle = f"{run.path.resolve()} - generated {time.strftime('%Y-%m-%d %H:%M:%S')}"
    return write_text(out_dir / "index.html", page(title, subtitle, sections))


__all__ = ["RunData", "load_run", "build_sections", "make_report", "esc"]
