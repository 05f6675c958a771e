"""Figures of a run report, each returned as PNG bytes (matplotlib, Agg canvas, no pyplot
state): training curves, architecture weights per edge over epochs, collapse-guard signals,
architecture-objective terms and Pareto fronts.

Every function takes plain event dicts (as read from ``events.jsonl``) and returns ``None``
when the run has nothing to draw, so the report renders what is there and skips what isn't.
"""
from __future__ import annotations

import io
import math
from typing import Any, Sequence

import numpy as np
from matplotlib.figure import Figure

#: Resolution of the PNGs; the page scales them to its width.
DPI = 100


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    return buf.getvalue()


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None


def _series(events: Sequence[dict], key: str, x_key: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for e in events:
        x, y = _num(e.get(x_key)), _num(e.get(key))
        if x is not None and y is not None:
            xs.append(x)
            ys.append(y)
    return xs, ys


# ------------------------------------------------------------------------ curves

#: Panels of the epoch curves: (title, [(field, label)]).
EPOCH_PANELS = (
    ("loss", [("train_loss", "train"), ("val_loss", "val"), ("arch_loss", "architecture (val)")]),
    ("accuracy", [("train_acc", "train"), ("val_acc", "val")]),
    ("learning rate", [("lr", "weights lr")]),
)


def epoch_curves(epochs: Sequence[dict]) -> bytes | None:
    """Loss, accuracy and learning rate over the epochs of a search or training run."""
    panels = [(t, [(k, lab) for k, lab in fields if _series(epochs, k, "epoch")[0]]) for t, fields in EPOCH_PANELS]
    panels = [(t, f) for t, f in panels if f]
    if not panels:
        return None
    fig = Figure(figsize=(4.2 * len(panels), 3.2))
    for i, (title, fields) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        for key, label in fields:
            xs, ys = _series(epochs, key, "epoch")
            ax.plot(xs, ys, marker="o", ms=3, label=label)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if len(fields) > 1:
            ax.legend(fontsize=8)
    fig.tight_layout()
    return _png(fig)


def event_curves(events: Sequence[dict], x_key: str, max_panels: int = 6) -> bytes | None:
    """Every numeric field of a run's iteration events (``query`` of a discrete search,
    ``generation`` of an evolution, ``eval`` of an alternating search) against ``x_key``
    (or the event's position when it has none)."""
    if not events:
        return None
    rows = [dict(e, _i=i + 1) for i, e in enumerate(events)]
    x_key = x_key if any(_num(e.get(x_key)) is not None for e in rows) else "_i"
    skip = {x_key, "_i", "time", "seconds", "event"}
    keys: list[str] = []
    for e in rows:
        for k, v in e.items():
            if k not in skip and k not in keys and _num(v) is not None:
                keys.append(k)
    keys = keys[:max_panels]
    if not keys:
        return None
    cols = min(3, len(keys))
    nrows = math.ceil(len(keys) / cols)
    fig = Figure(figsize=(4.2 * cols, 3.0 * nrows))
    for i, k in enumerate(keys):
        ax = fig.add_subplot(nrows, cols, i + 1)
        xs, ys = _series(rows, k, x_key)
        ax.plot(xs, ys, marker=".", lw=1)
        ax.set_title(k)
        ax.set_xlabel(x_key if x_key != "_i" else "step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return _png(fig)


# ------------------------------------------------------------------------ architecture weights


def _leaves(value: Any, path: tuple) -> list[tuple[tuple, list[float]]]:
    """The innermost lists of numbers of a nested ``alphas`` entry, with their paths."""
    if isinstance(value, list) and value and all(_num(v) is not None for v in value):
        return [(path, [float(v) for v in value])]
    if isinstance(value, list):
        return [leaf for i, v in enumerate(value) for leaf in _leaves(v, path + (i,))]
    if isinstance(value, dict):
        return [leaf for k, v in value.items() for leaf in _leaves(v, path + (k,))]
    return []


def alpha_groups(epochs: Sequence[dict]) -> dict[tuple, dict[tuple, tuple[list[int], np.ndarray]]]:
    """``alphas`` of the epoch events regrouped for heatmaps: ``{group: {leaf: (epochs, M)}}``
    where a leaf is one edge's op weights (one vector per epoch) and ``M`` is
    ``len(vector) x len(epochs)``; a group is the leaf's parent (e.g. all edges of the normal
    cell). Epochs whose vector has another length than the first are left out of that leaf."""
    per_leaf: dict[tuple, list[tuple[int, list[float]]]] = {}
    for e in epochs:
        alphas, ep = e.get("alphas"), _num(e.get("epoch"))
        if not isinstance(alphas, dict) or ep is None:
            continue
        for path, vec in _leaves(alphas, ()):
            per_leaf.setdefault(path, []).append((int(ep), vec))
    groups: dict[tuple, dict[tuple, tuple[list[int], np.ndarray]]] = {}
    for path, rows in per_leaf.items():
        n = len(rows[0][1])
        rows = [(ep, v) for ep, v in rows if len(v) == n]
        group = path[:-1] if len(path) > 1 and isinstance(path[-1], int) else path
        groups.setdefault(group, {})[path] = ([ep for ep, _ in rows], np.array([v for _, v in rows], dtype=float).T)
    return groups


def darts_edge_names(steps: int) -> list[str]:
    """Edge names of a DARTS cell in the supernet's order: node i reads c_{k-2}, c_{k-1} and
    the earlier nodes."""
    names = []
    for i in range(steps):
        for j in range(2 + i):
            src = ("c_{k-2}", "c_{k-1}")[j] if j < 2 else f"node {j - 2}"
            names.append(f"{src} -> node {i}")
    return names


def _edge_titles(n: int) -> list[str] | None:
    for steps in range(1, 9):
        if steps * (steps + 3) // 2 == n:
            return darts_edge_names(steps)
    return None


def alpha_heatmaps(title: str, leaves: dict[tuple, tuple[list[int], np.ndarray]],
                   row_labels: Sequence[str] | None = None, max_cols: int = 7) -> bytes | None:
    """One heatmap per edge (rows: candidate ops, columns: epochs; colour: softmaxed weight,
    one colour scale for the whole figure so edges compare)."""
    if not leaves:
        return None
    items = list(leaves.items())
    vmin = min(float(m.min()) for _, (_, m) in items)
    vmax = max(float(m.max()) for _, (_, m) in items)
    titles = _edge_titles(len(items))
    cols = min(max_cols, len(items))
    nrows = math.ceil(len(items) / cols)
    n_ops = max(m.shape[0] for _, (_, m) in items)
    fig = Figure(figsize=(1.9 * cols + 2.2, (0.22 * n_ops + 0.9) * nrows + 0.6))
    im = None
    axes = []
    for i, (path, (eps, m)) in enumerate(items):
        ax = fig.add_subplot(nrows, cols, i + 1)
        axes.append(ax)
        im = ax.imshow(m, aspect="auto", cmap="viridis", vmin=vmin, vmax=vmax, interpolation="nearest",
                       extent=(eps[0] - 0.5, eps[-1] + 0.5, m.shape[0] - 0.5, -0.5))
        ax.set_title(titles[i] if titles else "/".join(map(str, path)), fontsize=7)
        labels = row_labels if row_labels is not None and len(row_labels) == m.shape[0] else None
        ax.set_yticks(range(m.shape[0]))
        ax.set_yticklabels(labels if (labels and i % cols == 0) else [""] * m.shape[0], fontsize=6)
        ax.tick_params(axis="x", labelsize=6)
        ax.set_xticks(eps if len(eps) <= 8 else eps[:: math.ceil(len(eps) / 6)])
        if i // cols == nrows - 1:
            ax.set_xlabel("epoch", fontsize=7)
    fig.suptitle(title, fontsize=10)
    # fixed spacing instead of tight_layout: a layout pass over dozens of axes costs seconds
    fig.subplots_adjust(left=0.09, right=0.9, bottom=0.08, top=0.88, wspace=0.12, hspace=0.45)
    if im is not None:
        fig.colorbar(im, ax=axes, shrink=0.8, label="weight")
    return _png(fig)


# ------------------------------------------------------------------------ guard and terms

#: Collapse-guard signals drawn when present in the epoch events' ``guard`` entries.
GUARD_SIGNALS = ("hessian_eig", "param_free_share", "skip_normal")


def guard_signals(epochs: Sequence[dict]) -> bytes | None:
    """The collapse-guard measurements over the epochs; epochs where a rule fired (``alarm``)
    are marked in red."""
    recs = [(e["epoch"], e["guard"]) for e in epochs if isinstance(e.get("guard"), dict) and _num(e.get("epoch")) is not None]
    keys = [k for k in GUARD_SIGNALS if any(_num(g.get(k)) is not None for _, g in recs)]
    extra = [k for _, g in recs for k, v in g.items() if k not in GUARD_SIGNALS and k != "seconds" and _num(v) is not None]
    keys += list(dict.fromkeys(extra))
    if not keys:
        return None
    fig = Figure(figsize=(4.0 * len(keys), 3.0))
    for i, k in enumerate(keys):
        ax = fig.add_subplot(1, len(keys), i + 1)
        pts = [(ep, _num(g.get(k)), bool(g.get("alarm"))) for ep, g in recs if _num(g.get(k)) is not None]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3)
        alarms = [p for p in pts if p[2]]
        if alarms:
            ax.scatter([p[0] for p in alarms], [p[1] for p in alarms], c="red", zorder=3, label="alarm")
            ax.legend(fontsize=7)
        ax.set_title(k)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def arch_terms(epochs: Sequence[dict]) -> bytes | None:
    """Architecture-objective terms (cost penalties, regularisers) over the epochs."""
    keys: list[str] = []
    for e in epochs:
        for k, v in (e.get("arch_terms") or {}).items():
            if _num(v) is not None and k not in keys:
                keys.append(k)
    if not keys:
        return None
    fig = Figure(figsize=(4.0 * min(len(keys), 3), 3.0 * math.ceil(len(keys) / 3)))
    for i, k in enumerate(keys):
        ax = fig.add_subplot(math.ceil(len(keys) / 3), min(len(keys), 3), i + 1)
        pts = [(e["epoch"], _num((e.get("arch_terms") or {}).get(k))) for e in epochs]
        pts = [p for p in pts if p[1] is not None]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3)
        ax.set_title(k)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return _png(fig)


# ------------------------------------------------------------------------ Pareto fronts


def pareto_front(members: Sequence[dict], names: Sequence[str]) -> bytes | None:
    """Objective-space scatter of the front's members: one panel for two objectives, every
    pair (up to four objectives) otherwise. All objectives are minimised."""
    pts = np.array([[_num(m["objectives"].get(n)) if _num(m["objectives"].get(n)) is not None else np.nan for n in names]
                    for m in members], dtype=float) if members else np.zeros((0, len(names)))
    if len(names) < 2 or len(pts) == 0:
        return None
    names = list(names)[:4]
    pairs = [(i, j) for i in range(len(names)) for j in range(i + 1, len(names))]
    cols = min(3, len(pairs))
    nrows = math.ceil(len(pairs) / cols)
    fig = Figure(figsize=(4.2 * cols, 3.6 * nrows))
    for p, (i, j) in enumerate(pairs):
        ax = fig.add_subplot(nrows, cols, p + 1)
        order = np.argsort(pts[:, j])
        ax.plot(pts[order, j], pts[order, i], color="tab:red", lw=1, alpha=0.5, drawstyle="steps-post")
        ax.scatter(pts[:, j], pts[:, i], c="tab:red", s=24, zorder=3)
        ax.set_xlabel(names[j])
        ax.set_ylabel(names[i])
        ax.grid(alpha=0.3)
        if np.nanmin(pts[:, j]) > 0 and np.nanmax(pts[:, j]) / np.nanmin(pts[:, j]) > 50:
            ax.set_xscale("log")
    fig.suptitle(f"Pareto front ({len(members)} members, all objectives minimised)", fontsize=10)
    fig.tight_layout()
    return _png(fig)
