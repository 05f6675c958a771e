"""bench/reference_step.py times a search network written against the released DARTS code's
interface (``Network(C, num_classes, layers, criterion)`` with ``arch_parameters()`` and
``_loss``), and refuses a folder without that code in one line."""
import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"

TINY_SEARCH_NET = '''
import torch
import torch.nn as nn

class Network(nn.Module):
    def __init__(self, C, num_classes, layers, criterion):
        super().__init__()
        self.stem = nn.Conv2d(3, C, 3, padding=1)
        self.head = nn.Linear(C, num_classes)
        self.alpha = (1e-3 * torch.randn(C)).cuda().requires_grad_()
        self._criterion = criterion

    def forward(self, x):
        h = self.stem(x) * torch.softmax(self.alpha, 0).view(1, -1, 1, 1)
        return self.head(h.mean((2, 3)))

    def _loss(self, x, y):
        return self._criterion(self(x), y)

    def arch_parameters(self):
        return [self.alpha]
'''


def test_reference_step_times_a_released_style_search_network(tmp_path):
    (tmp_path / "model_search.py").write_text(TINY_SEARCH_NET)
    (tmp_path / "operations.py").write_text("")
    (tmp_path / "genotypes.py").write_text("")
    p = subprocess.run([sys.executable, str(BENCH / "reference_step.py"), "--code", str(tmp_path), "--kind", "pc",
                        "--C", "4", "--batch", "8", "--size", "8", "--iters", "2", "--warmup", "1", "--threads", "1"],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    row = json.loads(p.stdout.strip().splitlines()[-1])
    assert row["relaxation"] == "reference:pc" and row["batch"] == 8
    assert row["images_per_s"] > 0 and row["peak_rss_mb"] >= row["rss_before_mb"] > 0


def test_reference_step_and_search_step_refuse_bad_reference_input(tmp_path):
    p = subprocess.run([sys.executable, str(BENCH / "reference_step.py"), "--code", str(tmp_path), "--kind", "darts"],
                       capture_output=True, text=True)
    assert p.returncode != 0 and "Traceback" not in p.stderr
    assert "model_search.py" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    p = subprocess.run([sys.executable, str(BENCH / "search_step.py"), "--reference", "gdas=" + str(tmp_path)],
                       capture_output=True, text=True)
    assert p.returncode != 0 and "Traceback" not in p.stderr and "darts=DIR or pc=DIR" in p.stderr
