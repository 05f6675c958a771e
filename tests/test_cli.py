"""The command line end to end: one-line errors, JSON outputs, search -> train -> export."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def dnas(*args, check=True):
    p = subprocess.run([sys.executable, "-m", "dnas", *map(str, args)], capture_output=True, text=True,
                       env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "HOME": str(Path.home()),
                            **({"PYTHONPATH": os.environ["PYTHONPATH"]} if "PYTHONPATH" in os.environ else {})})
    if check:
        assert p.returncode == 0, p.stderr
    return p


def test_show_json_reports_exact_reference_counts():
    d = json.loads(dnas("show", "DARTS_V2", "--json").stdout)
    assert d["params"] == 3349342 and d["aux_params"] == 476426 and d["macs"] == 528359040
    d = json.loads(dnas("show", "PC_DARTS_image", "--net", "imagenet", "--json").stdout)
    assert d["params"] == 5342464


def test_errors_are_one_line_without_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: -3\n")
    for args in (["show", "NOT_A_GENOTYPE"], ["search", "--config", bad], ["search", "--config", tmp_path / "missing.yaml"],
                 ["search", "--data", "no_such_data", "--out", tmp_path / "r"], ["train", "--resume", tmp_path]):
        p = dnas(*args, check=False)
        assert p.returncode == 2, (args, p.stderr)
        assert "Traceback" not in p.stderr
        lines = [l for l in p.stderr.splitlines() if l.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr
    assert "field 'epochs'" in dnas("search", "--config", bad, check=False).stderr


def test_nb201_tabular_search_json():
    d = json.loads(dnas("search", "--space", "nb201", "--strategy", "evolution", "--evaluator", "tabular:nb201_cifar10",
                        "--budget", "20", "--seed", "1", "--json").stdout)
    assert set(d) >= {"best_arch", "best_accuracy", "queries"} and d["queries"] == 20
    assert re.fullmatch(r"\|.*~0\|\+\|.*~2\|", d["best_arch"]) and 80 < d["best_accuracy"] <= 91.36


def test_search_then_train_then_export_onnx(tmp_path):
    run = tmp_path / "search"
    dnas("search", "--data", "digits", "--image-size", "8", "--init-channels", "4", "--layers", "3", "--epochs", "2",
         "--batch-size", "32", "--max-samples", "200", "--out", run, "--quiet")
    g = json.loads((run / "genotype.json").read_text())
    assert g["meta"]["data"] == "digits" and len(g["normal"]) == 8
    train = tmp_path / "train"
    out = json.loads(dnas("train", run, "--epochs", "1", "--image-size", "8", "--init-channels", "8", "--layers", "3",
                          "--out", train, "--json").stdout)
    assert 0.0 <= out["test_accuracy"] <= 1.0 and out["params"] > 0
    assert (train / "model.pt").exists()
    dnas("export", train, "--format", "onnx", "--out", tmp_path / "m.onnx")
    import onnxruntime as ort
    import torch

    from dnas.trainer import load_trained

    model, meta = load_trained(train)
    x = torch.randn(3, 1, 8, 8)
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    y = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    np.testing.assert_allclose(y, model(x).detach().numpy(), rtol=1e-3, atol=1e-4)
    p = dnas("export", run, "--format", "onnx", check=False)
    assert p.returncode == 2 and "state dict only" in p.stderr
    dnas("export", run, "--format", "state-dict")
    assert (run / "export" / "model.pt").exists()


def test_readme_commands_match_ci():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", readme, re.S)
    first = [l for l in blocks[0].splitlines() if l.strip()]
    assert len(first) == 2, "the README opens with exactly two set-up commands"
    assert first[0].endswith("dnas search") and "pytest" in first[1]
    assert first[1] in ci, "CI must run the README's test command"


def test_api_functions_are_not_shadowed_by_submodules():
    import dnas
    import dnas.trainer  # noqa: F401  (importing submodules must not replace the API functions)

    assert callable(dnas.train) and callable(dnas.search)
