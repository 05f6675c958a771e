"""Exporting a trained network: state dict, TorchScript or ONNX, written atomically.

All formats export the inference graph (eval mode, no auxiliary head, no drop-path):

- ``state-dict``: ``torch.save`` of the weights (load with ``weights_only=True`` into a network
  rebuilt from the genotype).
- ``torchscript``: ``torch.jit.trace`` on the example input; the cells' Python control flow
  (genotype indices, concat lists) is fixed per architecture, so tracing captures it exactly.
- ``onnx``: ``torch.onnx.export`` at opset 17 with a dynamic batch axis. The newer dynamo
  exporter needs ``onnxscript``; when that is not installed the TorchScript-based exporter is
  used (``dynamo=False``), which needs nothing beyond ``onnx``.

Each writer goes to a temporary file next to the target and renames it into place, so a
failed export never leaves a truncated model behind.
"""
from __future__ import annotations

import importlib.util
import io
import os
import tempfile
import warnings
from pathlib import Path
from typing import Literal

import torch
import torch.nn as nn

from dnas.errors import ConfigError, DnasError
from dnas.io import save_torch, write_bytes

Format = Literal["torchscript", "onnx", "state-dict"]
FORMATS: tuple[str, ...] = ("torchscript", "onnx", "state-dict")
ONNX_OPSET = 17


def _export_torchscript(model: nn.Module, path: Path, example: torch.Tensor) -> None:
    # torch.jit is deprecated in favour of torch.export but remains the format C++/mobile
    # runtimes load; silence the deprecation notice for this explicit request.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        traced = torch.jit.trace(model, example, check_trace=False)
        buf = io.BytesIO()
        torch.jit.save(traced, buf)
    write_bytes(path, buf.getvalue())


def _export_onnx(model: nn.Module, path: Path, example: torch.Tensor) -> None:
    use_dynamo = importlib.util.find_spec("onnxscript") is not None
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        kwargs = dict(
            input_names=["input"],
            output_names=["logits"],
            opset_version=ONNX_OPSET,
        )
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if use_dynamo:
                batch = torch.export.Dim("batch", min=1)
                torch.onnx.export(model, (example,), tmp, dynamo=True, dynamic_shapes=({0: batch},), **kwargs)
            else:
                torch.onnx.export(model, (example,), tmp, dynamo=False,
                                  dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, **kwargs)
        if os.path.exists(tmp + ".data"):  # external weights: keep the model in one file
            import onnx

            m = onnx.load(tmp)
            onnx.save_model(m, tmp, save_as_external_data=False)
        os.replace(tmp, path)
    finally:
        for leftover in (tmp, tmp + ".data"):
            try:
                os.unlink(leftover)
            except FileNotFoundError:
                pass


def export_model(
    model: nn.Module,
    fmt: Format,
    path: str | os.PathLike,
    example_input: torch.Tensor,
) -> Path:
    """Write ``model`` (in eval mode) to ``path`` as ``fmt``; returns the path.

    ``example_input`` is one batch shaped like the real input, e.g. ``torch.zeros(1, C, H, W)``;
    it fixes the traced graph (ONNX keeps the batch axis dynamic).
    """
    if fmt not in FORMATS:
        raise ConfigError(f"format: unknown export format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    if not isinstance(example_input, torch.Tensor) or example_input.dim() != 4:
        shape = tuple(example_input.shape) if isinstance(example_input, torch.Tensor) else type(example_input).__name__
        raise ConfigError(f"example_input: expected an (N, C, H, W) tensor, got {shape}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    param = next(model.parameters(), None)
    if param is not None:
        example_input = example_input.to(param.device)
    was_training = model.training
    model.eval()
    try:
        if fmt == "state-dict":
            save_torch(path, {k: v.detach().cpu() for k, v in model.state_dict().items()})
        elif fmt == "torchscript":
            _export_torchscript(model, path, example_input)
        else:
            try:
                import onnx  # noqa: F401
            except ImportError:
                raise DnasError("onnx export needs the onnx package; install it with `pip install dnas[export]`") from None
            _export_onnx(model, path, example_input)
    finally:
        model.train(was_training)
    return path
