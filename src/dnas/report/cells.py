"""Cell diagrams of a genotype as PNG bytes: graphviz ``dot`` when it is installed (the usual
DARTS drawing: inputs left, intermediate nodes, concatenated output right, one labelled arrow
per kept edge), a matplotlib drawing of the same graph otherwise.

A diagram is described by :class:`CellGraph`: the states feeding each node as ``(op, state)``
pairs, where states ``0`` and ``1`` are the two inputs and ``k + 2`` is node ``k``, plus the
states concatenated into the output. The same description covers DARTS cells (two inputs per
node) and hierarchical stage layouts (kept links per cell).
"""
from __future__ import annotations

import io
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any, Sequence

#: Node colours (inputs, intermediate nodes, output), shared by both renderers.
COLOURS = {"input": "#a8d5a2", "node": "#9ec5e8", "output": "#f5d08a"}


@dataclass
class CellGraph:
    title: str
    nodes: list[list[tuple[str, int]]]
    concat: list[int]
    input_names: tuple[str, str] = ("c_{k-2}", "c_{k-1}")
    node_prefix: str = ""
    output_name: str = "c_{k}"

    def state_name(self, s: int) -> str:
        return self.input_names[s] if s < 2 else f"{self.node_prefix}{s - 2}"


def _pairs(edges: Sequence[Sequence[Any]]) -> list[list[tuple[str, int]]]:
    edges = [(str(o), int(i)) for o, i in edges]
    return [edges[k : k + 2] for k in range(0, len(edges), 2)]


def cell_graphs(genotype: dict) -> list[CellGraph]:
    """The diagrams of a genotype dict (as in ``genotype.json``): its normal and reduction
    cells, the stage-specific cells and the stage layouts of a hierarchical genotype."""
    graphs: list[CellGraph] = []
    cells = genotype.get("cells")
    if isinstance(cells, dict):
        for kind in ("normal", "reduce"):
            for k, c in enumerate(cells.get(kind) or []):
                graphs.append(CellGraph(f"{kind} cell, stage {k + 1}", _pairs(c["edges"]), list(c["concat"])))
    else:
        for kind in ("normal", "reduce"):
            if genotype.get(kind):
                graphs.append(CellGraph(f"{kind} cell", _pairs(genotype[kind]), list(genotype.get(f"{kind}_concat", []))))
    for k, st in enumerate(genotype.get("stages") or []):
        nodes = [[(str(o), int(i)) for o, i in cell] for cell in st["links"]]
        graphs.append(CellGraph(f"stage {k + 1} layout", nodes, list(st["concat"]), input_names=("in_0", "in_1"),
                                node_prefix="cell ", output_name="stage out"))
    return graphs


# ------------------------------------------------------------------------ graphviz


def dot_source(g: CellGraph) -> str:
    """The graphviz description of a cell (left-to-right, labelled edges)."""
    q = lambda s: '"' + str(s).replace('"', r"\"") + '"'  # noqa: E731
    lines = ["digraph cell {", "  rankdir=LR; fontname=Helvetica; labelloc=t;", f"  label={q(g.title)};",
             '  node [style="filled,rounded", shape=box, fontname=Helvetica, fontsize=12];',
             "  edge [fontname=Helvetica, fontsize=10];"]
    for s in (0, 1):
        lines.append(f"  {q(g.state_name(s))} [fillcolor={q(COLOURS['input'])}];")
    for k in range(len(g.nodes)):
        lines.append(f"  {q(g.state_name(k + 2))} [fillcolor={q(COLOURS['node'])}];")
    lines.append(f"  {q(g.output_name)} [fillcolor={q(COLOURS['output'])}];")
    for k, inputs in enumerate(g.nodes):
        for op, src in inputs:
            lines.append(f"  {q(g.state_name(src))} -> {q(g.state_name(k + 2))} [label={q(op)}];")
    for s in g.concat:
        lines.append(f"  {q(g.state_name(s))} -> {q(g.output_name)} [color=gray];")
    lines.append("}")
    return "\n".join(lines)


def have_dot() -> bool:
    return shutil.which("dot") is not None


def render_dot(g: CellGraph, timeout: float = 30.0) -> bytes | None:
    """PNG from graphviz, or None when ``dot`` is missing or fails."""
    exe = shutil.which("dot")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "-Tpng", "-Gdpi=90"], input=dot_source(g).encode(), capture_output=True, timeout=timeout, check=True)
    except (subprocess.SubprocessError, OSError):
        return None
    return out.stdout if out.stdout.startswith(b"\x89PNG") else None


# ------------------------------------------------------------------------ matplotlib


def _positions(g: CellGraph) -> dict[str, tuple[float, float]]:
    pos = {g.state_name(0): (0.0, 1.0), g.state_name(1): (0.0, -1.0)}
    for k in range(len(g.nodes)):
        pos[g.state_name(k + 2)] = (1.5 * (k + 1), 0.9 if k % 2 == 0 else -0.9)
    pos[g.output_name] = (1.5 * (len(g.nodes) + 1), 0.0)
    return pos


def render_matplotlib(g: CellGraph) -> bytes:
    """The same graph drawn with matplotlib: boxes for states, curved labelled arrows."""
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyArrowPatch

    pos = _positions(g)
    width = 1.5 * (len(g.nodes) + 1)
    fig = Figure(figsize=(max(5.0, 1.6 * (len(g.nodes) + 2)), 3.4))
    ax = fig.add_subplot(1, 1, 1)
    ax.set_xlim(-0.8, width + 0.8)
    ax.set_ylim(-1.8, 1.8)
    ax.axis("off")
    ax.set_title(g.title, fontsize=10)
    box = lambda c: dict(boxstyle="round,pad=0.3", fc=c, ec="#555")  # noqa: E731

    def arrow(a: str, b: str, label: str | None, colour: str, rad: float) -> None:
        (x0, y0), (x1, y1) = pos[a], pos[b]
        ax.add_patch(FancyArrowPatch((x0, y0), (x1, y1), arrowstyle="-|>", mutation_scale=10, color=colour,
                                     connectionstyle=f"arc3,rad={rad}", shrinkA=14, shrinkB=14, lw=1))
        if label:
            # a point of the arc3 curve (a quadratic Bezier with its control point rad * chord
            # off the midpoint); t > 0.5 keeps labels of edges leaving the same input apart
            t = 0.62
            bend = 2 * t * (1 - t) * rad
            mx, my = x0 + t * (x1 - x0) + bend * (y1 - y0), y0 + t * (y1 - y0) - bend * (x1 - x0)
            ax.text(mx, my, label, fontsize=6.5, ha="center", va="center", color="#333",
                    bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none", alpha=0.8))

    for k, inputs in enumerate(g.nodes):
        for j, (op, src) in enumerate(inputs):
            arrow(g.state_name(src), g.state_name(k + 2), op, "#333", 0.15 if j % 2 == 0 else -0.15)
    for s in g.concat:
        arrow(g.state_name(s), g.output_name, None, "#aaa", 0.0)
    for name, (x, y) in pos.items():
        kind = "input" if name in (g.state_name(0), g.state_name(1)) else "output" if name == g.output_name else "node"
        ax.text(x, y, name, ha="center", va="center", fontsize=8, bbox=box(COLOURS[kind]), zorder=4)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return buf.getvalue()


def render(g: CellGraph, engine: str = "auto") -> tuple[bytes, str]:
    """PNG bytes and the engine that drew them: ``dot`` when asked or available, else
    ``matplotlib``."""
    if engine not in ("auto", "dot", "matplotlib"):
        raise ValueError(f"engine: {engine!r}; use auto, dot or matplotlib")
    if engine in ("auto", "dot"):
        png = render_dot(g)
        if png is not None:
            return png, "dot"
    return render_matplotlib(g), "matplotlib"
