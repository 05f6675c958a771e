"""`dnas report` on real (tiny) runs: a search with the collapse guard on, a training run and a
multi-objective front; every figure decodes, every expected section is there, the page is
self-contained, TensorBoard files hold the logged numbers, and headless Chromium renders the
page with every image decoded (skipped without Chromium)."""
import base64
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import matplotlib.image as mpimg
import pytest
from typer.testing import CliRunner

import dnas
from dnas import tb
from dnas.errors import DnasError
from dnas.report import load_run, make_report
from dnas.report.cells import cell_graphs, dot_source, render
from dnas.report.html import fmt

SEARCH = dict(data="digits", image_size=8, init_channels=4, layers=3, batch_size=32, max_samples=120, epochs=2,
              warmup_epochs=0, threads=1, relaxation="darts", guard="log", guard_hessian_iters=1)
CHROMIUM = next((p for p in ("/usr/bin/chromium", shutil.which("chromium") or "", shutil.which("chromium-browser") or "") if p and Path(p).exists()), None)


@pytest.fixture(scope="module")
def search_run(tmp_path_factory):
    return dnas.search(out=tmp_path_factory.mktemp("runs") / "search", **SEARCH)


def _images(html: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([^"]+)"', html)]


def _sections(html: str) -> list[str]:
    return re.findall(r'<section id="([^"]+)"', html)


def _decode(png: bytes):
    return mpimg.imread(io.BytesIO(png), format="png")


def test_search_report_has_every_section_and_decodable_figures(search_run):
    run = search_run.run_dir
    index = make_report(run)
    assert index == run / "report" / "index.html"
    html = index.read_text()
    assert _sections(html) == ["overview", "config", "curves", "decision", "architecture", "cells", "guard", "files"]
    imgs = _images(html)
    # curves, one heatmap figure per cell type (normal, reduce), two cell diagrams, guard signals
    assert len(imgs) == 6
    for png in imgs:
        a = _decode(png)
        assert a.ndim == 3 and a.shape[0] > 50 and a.shape[1] > 50 and a.std() > 0.01  # a real picture, not blank
    # the same PNGs lie next to the page, and nothing is loaded from elsewhere
    files = sorted(p.name for p in (run / "report").glob("*.png"))
    assert len(files) == 6 and "curves.png" in files and "alphas_normal.png" in files and "guard.png" in files
    assert not re.search(r'(src|href)="(http|//|file:)', html)
    # the page states what the run logged
    epochs = [json.loads(l) for l in (run / "events.jsonl").read_text().splitlines() if '"event": "epoch"' in l]
    assert f"{epochs[-1]['val_acc']:.6g}" in html
    assert search_run.genotype.hash() in html
    # how sure the search is: the verdict, the mean margin and every edge's top-1 / margin
    verdict = json.loads((run / "result.json").read_text())["decision"]
    assert "Does the search decide?" in html and f"{verdict['mean_margin']:.4f}" in html
    assert ("NOT decided" in html) == (not verdict["decided"])
    assert html.count("<td>normal</td>") == 14 and html.count("<td>reduce</td>") == 14
    for op, _ in search_run.genotype.normal:
        assert op in html


def test_cell_diagrams_graphviz_and_matplotlib_draw_the_genotype(search_run):
    g = json.loads((search_run.run_dir / "genotype.json").read_text())
    graphs = cell_graphs(g)
    assert [x.title for x in graphs] == ["normal cell", "reduce cell"]
    src = dot_source(graphs[0])
    for op, i in g["normal"]:
        assert f'[label="{op}"]' in src
    assert src.count("->") == len(g["normal"]) + len(g["normal_concat"])
    png, how = render(graphs[0], "matplotlib")
    assert how == "matplotlib" and _decode(png).shape[1] > 200
    png, how = render(graphs[0], "auto")
    assert how == ("dot" if shutil.which("dot") else "matplotlib") and png.startswith(b"\x89PNG")


def test_tensorboard_files_hold_the_logged_scalars(search_run):
    if not tb.available():
        pytest.skip("tensorboard not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = search_run.run_dir
    assert tb.has_event_files(run)  # written live by the search loop
    acc = EventAccumulator(str(run / tb.TB_DIR))
    acc.Reload()
    epochs = [json.loads(l) for l in (run / "events.jsonl").read_text().splitlines() if '"event": "epoch"' in l]
    train = acc.Scalars("loss/train")
    assert [s.step for s in train] == [e["epoch"] for e in epochs]
    assert [s.value for s in train] == pytest.approx([e["train_loss"] for e in epochs], rel=1e-6)
    assert "guard/param_free_share" in acc.Tags()["scalars"]
    # export from events.jsonl (what dnas report does for runs without event files) writes the same numbers
    out = tb.export_events(run, force=True)
    acc = EventAccumulator(str(out))
    acc.Reload()
    assert [s.value for s in acc.Scalars("accuracy/val")] == pytest.approx([e["val_acc"] for e in epochs], rel=1e-6)


def test_training_run_and_pareto_front_reports(tmp_path):
    from dnas.trainer import train_config, train_genotype

    cfg = train_config(data="digits", image_size=0, init_channels=4, layers=3, batch_size=32, threads=1,
                       val_fraction=0.2, test_fraction=0.2, auxiliary=False, lr=0.05, epochs=2)
    train_genotype("DARTS_V2", cfg, tmp_path / "train", progress=False)
    html = make_report(tmp_path / "train").read_text()
    assert _sections(html) == ["overview", "config", "curves", "cells", "cost", "files"]
    assert load_run(tmp_path / "train").kind == "train"
    start = json.loads((tmp_path / "train" / "events.jsonl").read_text().splitlines()[0])
    assert f"<td>{fmt(start['params'])}</td>" in html  # the cost table shows the measured parameter count
    assert all(_decode(p).size for p in _images(html))

    # a multi-objective run: pareto.json as dnas evolve writes it (members with objectives)
    front = tmp_path / "front"
    front.mkdir()
    members = [{"key": f"m{i}", "objectives": {"error": e, "params": p}, "cost": {"params": p}, "summary": f"net {i}"}
               for i, (e, p) in enumerate([(0.08, 90_000), (0.11, 40_000), (0.2, 12_000)])]
    (front / "pareto.json").write_text(json.dumps({"objectives": ["error", "params"], "members": members}))
    html = make_report(front).read_text()
    assert "pareto" in _sections(html) and len(_images(html)) == 1
    assert all(m["key"] in html for m in members)


def test_report_command_and_errors(search_run, tmp_path):
    from dnas.cli import _load_commands, app

    _load_commands()
    res = CliRunner().invoke(app, ["report", str(search_run.run_dir), "--out", str(tmp_path / "r"), "--json",
                                   "--diagrams", "matplotlib"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert Path(out["report"]) == tmp_path / "r" / "index.html" and Path(out["report"]).exists()
    with pytest.raises(DnasError, match="not a run directory"):
        make_report(tmp_path)


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed")
def test_page_renders_in_headless_chromium(search_run, tmp_path):
    index = make_report(search_run.run_dir, tmp_path / "page")
    n_images = len(_images(index.read_text()))

    def dom(path: Path) -> str:
        out = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                              "--virtual-time-budget=5000", "--dump-dom", path.as_uri()],
                             capture_output=True, text=True, timeout=120)
        return out.stdout

    page = dom(index)
    body = re.search(r"<body[^>]*>", page).group(0)
    assert f'data-images-ok="{n_images}"' in body and 'data-images-broken="0"' in body, body
    for section in ("overview", "config", "curves", "architecture", "cells", "guard"):
        assert f'id="{section}"' in page
    # the check can fail: a damaged figure is counted as broken
    bad = tmp_path / "page" / "bad.html"
    bad.write_text(index.read_text().replace("base64,iVBOR", "base64,AAAAA", 1))
    assert 'data-images-broken="1"' in re.search(r"<body[^>]*>", dom(bad)).group(0)
