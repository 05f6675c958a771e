"""How sure a gradient search is: per-edge top-1 weight and top-1 − top-2 margin of the softmaxed
architecture weights, and whether the search *decided* anything.

Why: argmax always returns an op, so a genotype derived from nearly uniform weights looks like a
finding while it is decided by the 1e-3·randn initialisation. The rule, one number: a search is
decided when the mean margin over all its choices (edges, stage ends, widths...) is at least
``decided_margin`` (default 0.03, i.e. on average the chosen op leads the runner-up by three points
of probability). For scale: the 1e-3·randn init gives margins around 1e-4, a run whose weights
barely moved around 1e-3; a mean top-1 of twice uniform (0.25 of 8 ops) comes with margins of
about 0.1.
"""
from __future__ import annotations

from typing import Any, Iterator

#: Keys of ``arch_summary()`` that are not probability vectors over choices.
_SKIP = {"depth"}


def _rows(obj: Any, path: str) -> Iterator[tuple[str, list[float]]]:
    """Every probability vector (floats summing to 1, at least two of them) inside ``obj``."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k not in _SKIP:
                yield from _rows(v, f"{path}/{k}" if path else str(k))
    elif isinstance(obj, (list, tuple)) and obj:
        if all(isinstance(x, (int, float)) for x in obj):
            if len(obj) >= 2 and abs(sum(obj) - 1.0) < 1e-3:
                yield path, [float(x) for x in obj]
        else:
            for i, v in enumerate(obj):
                yield from _rows(v, path)


def edge_stats(summary: dict) -> dict[str, list[list[float]]]:
    """``{group: [[top1, margin], ...]}``: per choice (edge), its strongest weight and its lead
    over the second strongest, grouped as in ``summary`` (``normal``, ``reduce``, ...)."""
    out: dict[str, list[list[float]]] = {}
    for group, row in _rows(summary, ""):
        top = sorted(row, reverse=True)
        out.setdefault(group, []).append([round(top[0], 5), round(top[0] - top[1], 5)])
    return out


def decision(summary: dict, threshold: float) -> dict[str, Any]:
    """The search's verdict from its final ``arch_summary()``: mean top-1, its ratio to uniform,
    mean and smallest margin, and ``decided`` (mean margin >= ``threshold``)."""
    rows = [row for _, row in _rows(summary, "")]
    stats = edge_stats(summary)
    if not rows:
        return {"decided": None, "choices": 0, "edges": stats}
    top1 = [max(r) for r in rows]
    margins = [sorted(r, reverse=True)[0] - sorted(r, reverse=True)[1] for r in rows]
    uniform = sum(1.0 / len(r) for r in rows) / len(rows)
    mean_top1, mean_margin = sum(top1) / len(rows), sum(margins) / len(rows)
    return {
        "decided": bool(mean_margin >= threshold), "threshold": threshold, "choices": len(rows),
        "mean_top1": round(mean_top1, 5), "uniform": round(uniform, 5), "top1_ratio": round(mean_top1 / uniform, 4),
        "mean_margin": round(mean_margin, 5), "min_margin": round(min(margins), 5), "edges": stats,
    }


def undecided_warning(d: dict[str, Any]) -> str:
    """One line for a search whose final margins are within noise, with the fix to try."""
    return (f"warning: the search did not decide: mean top-1 - top-2 margin {d['mean_margin']:.4f} < {d['threshold']} "
            f"(mean top-1 {d['mean_top1']:.3f}, uniform {d['uniform']:.3f}), so the genotype is decided by the random "
            "init; raise arch_lr (--arch-lr, e.g. 10x) or --epochs, or lower warmup_epochs")
