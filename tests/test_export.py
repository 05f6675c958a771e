"""Export round trips: ONNX run in onnxruntime, TorchScript reloaded, state dict reloaded."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dnas.errors import ConfigError
from dnas.export import FORMATS, export_model
from dnas.models import build_network




@pytest.fixture
def model_and_input():
    torch.manual_seed(0)
    model = build_network("PC_DARTS_cifar", C=4, layers=3, num_classes=10, in_channels=1,
                          auxiliary=True, drop_path_prob=0.3)
    # a few train-mode passes so BN running statistics are not the defaults
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.rand(16, 1, 8, 8))
    return model, torch.rand(5, 1, 8, 8)


def _reference(model, x):
    model.eval()
    with torch.no_grad():
        return model(x)


def test_onnx_round_trip_in_onnxruntime(model_and_input, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    model, x = model_and_input
    model.train()  # export must switch to eval and restore the mode
    path = export_model(model, "onnx", tmp_path / "net.onnx", x[:1])
    assert model.training
    assert [p.name for p in tmp_path.iterdir()] == ["net.onnx"]  # no temp or external-data files left
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].name == "input"
    out = session.run(None, {"input": x.numpy()})[0]  # batch 5 while exported with batch 1
    np.testing.assert_allclose(out, _reference(model, x).numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torchscript_round_trip(model_and_input, tmp_path):
    model, x = model_and_input
    path = export_model(model, "torchscript", tmp_path / "net.pt", x[:2])
    loaded = torch.jit.load(str(path))
    with torch.no_grad():
        out = loaded(x)
    torch.testing.assert_close(out, _reference(model, x), rtol=1e-5, atol=1e-6)


def test_state_dict_round_trip(model_and_input, tmp_path):
    model, x = model_and_input
    path = export_model(model, "state-dict", tmp_path / "weights.pt", x[:1])
    state = torch.load(path, weights_only=True)
    fresh = build_network("PC_DARTS_cifar", C=4, layers=3, num_classes=10, in_channels=1, auxiliary=True)
    fresh.load_state_dict(state)
    assert torch.equal(_reference(fresh, x), _reference(model, x))


def test_bad_format_and_input_are_config_errors(model_and_input, tmp_path):
    model, x = model_and_input
    with pytest.raises(ConfigError, match="format"):
        export_model(model, "tflite", tmp_path / "m", x)
    with pytest.raises(ConfigError, match="example_input"):
        export_model(model, "onnx", tmp_path / "m.onnx", x[0])
    assert not any(tmp_path.iterdir())
    assert set(FORMATS) == {"torchscript", "onnx", "state-dict"}
