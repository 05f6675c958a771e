"""The report's "Does the search decide?" section: the verdict of :mod:`dnas.decision` (mean
top-1 against uniform, mean and smallest margin, ``decided``), its course over the epochs and,
for the final epoch, each edge's top-1 weight and top-1 − top-2 margin.

Why in the report: heatmaps of nearly uniform weights look like a result; the margins say in
numbers whether the derived genotype was chosen by the search or by the initialisation."""
from __future__ import annotations

from typing import Any

from dnas.report.html import Section, paragraph, table


def decision_section(epochs: list[dict], result: dict[str, Any]) -> Section | None:
    per_epoch = [(e.get("epoch"), e["decision"]) for e in epochs if isinstance(e.get("decision"), dict)
                 and e["decision"].get("choices")]
    if not per_epoch:
        return None
    final = result.get("decision") if isinstance(result.get("decision"), dict) else per_epoch[-1][1]
    s = Section("decision", "Does the search decide?")
    word = "decided" if final.get("decided") else "NOT decided: the genotype is chosen by the random initialisation"
    s.add(paragraph(
        f"{word}. Mean top-1 weight {final['mean_top1']:.3f} = {final['top1_ratio']:.2f}× uniform ({final['uniform']:.3f}); "
        f"mean top-1 − top-2 margin {final['mean_margin']:.4f} (decided at ≥ {final['threshold']}), smallest {final['min_margin']:.4f}."))
    s.add(table([(ep, d["mean_top1"], d["top1_ratio"], d["mean_margin"], d["min_margin"], "yes" if d["decided"] else "no")
                 for ep, d in per_epoch], ("epoch", "mean top-1", "× uniform", "mean margin", "min margin", "decided")))
    rows = [(group, i, t, m) for group, edges in (final.get("edges") or {}).items() for i, (t, m) in enumerate(edges)]
    if rows:
        s.add(paragraph("Final epoch, per edge (softmaxed op weights):", muted=True))
        s.add(table(rows, ("group", "edge", "top-1", "top-1 − top-2")))
    return s
