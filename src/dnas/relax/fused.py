"""The fast path of a supernet edge: the same ops, the same parameters, less time and memory.

An edge of a DARTS-style supernet computes ``sum_i w_i * op_i(x)``. Run op by op through
autograd (the plain path, :meth:`dnas.relax.base.SharedReluOps.weighted_sum`) it is slow and
keeps more than it needs on CPU:

* **Layout.** On CPU (torch 2.13, oneDNN) the depthwise convolutions, both pools and BatchNorm
  are several times faster on channels_last tensors than on default (NCHW) ones (measured, 2
  threads, 32x16x32x32: max pool 6.1 -> 1.5 ms, avg pool 2.3 -> 0.5 ms, BN forward 0.39 ->
  0.20 ms, backward 0.32 -> 0.20 ms; 5x5 / dilated depthwise backward 3-5x). The fast path
  converts the edge input to channels_last once, runs every separable, dilated and pooling
  candidate in that format, sums them there and converts the sum back once: one layout copy
  each way per edge instead of several per convolution.
* **Stored copies.** The non-affine BN that ends every candidate is followed by the
  multiplication with its architecture weight, which keeps the BN *output* (for the weight's
  gradient) while the BN keeps its *input*: two tensors where one suffices. :class:`BNScale`
  passes the weight to the BN kernel as its per-channel scale (one pass, one saved tensor; the
  weight's gradient is the sum of the BN's per-channel weight gradient). A pooling candidate
  keeps its output and, for max pooling, an int64 index tensor twice the size of a float one,
  although pooling the edge input again (alive anyway: the other candidates read it) is one
  cheap pass (:class:`PoolBNScale` recomputes it in the backward pass on edges of at least
  :data:`CHANNELS_LAST_MIN_CHANNELS` channels; on narrower ones the second pooling cost more
  time than the small map saves, so the pooled map is kept as the BN's input).
* **Edge scalars.** PC-DARTS's edge normalisation (and TopoNAS's edge weights) multiply the
  edge output, keeping a full-width copy of it for the scalar's gradient; the mixed ops of
  :mod:`dnas.relax.softmax` and :mod:`dnas.relax.partial` fold the scalar into the op weights
  on the fast path instead (``takes_edge_weight``).

BatchNorms run through ``torch.native_batch_norm`` in training mode, which updates the running
statistics as :class:`torch.nn.BatchNorm2d` does (momentum, unbiased variance); the module's
``num_batches_tracked`` is counted too. (An earlier version computed the statistics with
``torch.var_mean``, which measured 3.5x slower than the whole native BN forward.) Values and
gradients equal the plain path's to float rounding (tests/test_fast_path.py checks every
relaxation). Candidates the fast path does not know (identity, factorized reduce, user ops) run
as in the plain path, so custom op sets still work.

The fast path has no second derivative (its backward functions are ``once_differentiable``, so
trying one raises instead of returning a wrong Hessian); :func:`plain_path` switches a model back
to the plain path for such computations (the collapse guard's Hessian).
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from dnas.ops import memory_format_of as _format


def _bn_train(h: torch.Tensor, bn: nn.BatchNorm2d, scale: torch.Tensor | None = None):
    """``scale * BN(h)`` with batch statistics by the native kernel, updating ``bn``'s running
    statistics as :class:`torch.nn.BatchNorm2d` does. Returns ``(out, mean, invstd)``."""
    if bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
    return torch.native_batch_norm(h, scale, None, bn.running_mean, bn.running_var, True, bn.momentum, bn.eps)


def _bn_backward(g: torch.Tensor, h: torch.Tensor, scale: torch.Tensor | None, mean: torch.Tensor,
                 invstd: torch.Tensor, eps: float, need_h: bool, need_scale: bool):
    """Gradients of :func:`_bn_train` w.r.t. ``h`` and the per-channel ``scale``."""
    g = g.contiguous(memory_format=_format(h))
    gh, gs, _ = torch.ops.aten.native_batch_norm_backward(
        g, h, scale, None, None, mean, invstd, True, eps, [need_h, need_scale and scale is not None, False])
    return gh, gs


def _channel_scale(w: torch.Tensor, C: int) -> torch.Tensor:
    """An architecture weight (a scalar) as a BN's per-channel scale."""
    return w.detach().reshape(1).expand(C).contiguous()


class BNScale(torch.autograd.Function):
    """``w * BN(h)`` for a non-affine BN in training mode, keeping only ``h`` for the backward
    (``w``, a scalar, is the BN kernel's per-channel scale). The output has ``h``'s layout."""

    @staticmethod
    def forward(ctx, h: torch.Tensor, w: torch.Tensor, bn: nn.BatchNorm2d) -> torch.Tensor:  # type: ignore[override]
        scale = _channel_scale(w, h.shape[1])
        out, mean, invstd = _bn_train(h, bn, scale)
        ctx.save_for_backward(h, scale, mean, invstd)
        ctx.eps, ctx.w_shape = bn.eps, w.shape
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, g: torch.Tensor):  # type: ignore[override]
        h, scale, mean, invstd = ctx.saved_tensors
        gh, gs = _bn_backward(g, h, scale, mean, invstd, ctx.eps, ctx.needs_input_grad[0], ctx.needs_input_grad[1])
        return gh, (gs.sum().reshape(ctx.w_shape) if gs is not None else None), None


class BNReLU(torch.autograd.Function):
    """``relu(BN(h))`` for a non-affine BN in training mode (the middle of a separable conv):
    one native BN pass with the ReLU applied in place, keeping ``h`` and the output (which the
    next convolution keeps anyway)."""

    @staticmethod
    def forward(ctx, h: torch.Tensor, bn: nn.BatchNorm2d) -> torch.Tensor:  # type: ignore[override]
        out, mean, invstd = _bn_train(h, bn)
        out.relu_()
        ctx.save_for_backward(h, out, mean, invstd)
        ctx.eps = bn.eps
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, g: torch.Tensor):  # type: ignore[override]
        h, out, mean, invstd = ctx.saved_tensors
        g = torch.ops.aten.threshold_backward(g.contiguous(memory_format=_format(h)), out, 0.0)
        gh, _ = _bn_backward(g, h, None, mean, invstd, ctx.eps, True, False)
        return gh, None


def _pool(x: torch.Tensor, pool: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    if isinstance(pool, nn.MaxPool2d):
        return torch.ops.aten.max_pool2d_with_indices(x, _pair(pool.kernel_size), _pair(pool.stride), _pair(pool.padding),
                                                      _pair(pool.dilation), pool.ceil_mode)
    return F.avg_pool2d(x, pool.kernel_size, pool.stride, pool.padding, pool.ceil_mode, pool.count_include_pad,
                        pool.divisor_override), None


def _pair(v) -> list[int]:
    return list(v) if isinstance(v, (tuple, list)) else [int(v), int(v)]


class PoolBNScale(torch.autograd.Function):
    """``w * BN(pool(x))``, keeping only ``x`` (held by the edge's other ops anyway): the pooled
    map (and max pooling's indices) is recomputed in the backward pass. ``xw`` is ``x`` in the
    layout to pool in (a channels_last copy on CPU); it is not kept but made again backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, xw: torch.Tensor, w: torch.Tensor, pool: nn.Module,  # type: ignore[override]
                bn: nn.BatchNorm2d) -> torch.Tensor:
        p, _ = _pool(xw, pool)
        scale = _channel_scale(w, p.shape[1])
        out, mean, invstd = _bn_train(p, bn, scale)
        ctx.save_for_backward(x, scale, mean, invstd)
        ctx.pool, ctx.eps, ctx.w_shape, ctx.work_format = pool, bn.eps, w.shape, _format(xw)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, g: torch.Tensor):  # type: ignore[override]
        x, scale, mean, invstd = ctx.saved_tensors
        pool = ctx.pool
        xw = x.contiguous(memory_format=ctx.work_format)
        p, indices = _pool(xw, pool)
        need_x = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        gp, gs = _bn_backward(g, p, scale, mean, invstd, ctx.eps, need_x, ctx.needs_input_grad[2])
        gx = None
        if gp is not None:
            if indices is not None:
                gx = torch.ops.aten.max_pool2d_with_indices_backward(
                    gp, xw, _pair(pool.kernel_size), _pair(pool.stride), _pair(pool.padding), _pair(pool.dilation),
                    pool.ceil_mode, indices)
            else:
                gx = torch.ops.aten.avg_pool2d_backward(gp, xw, _pair(pool.kernel_size), _pair(pool.stride),
                                                        _pair(pool.padding), pool.ceil_mode, pool.count_include_pad,
                                                        pool.divisor_override)
            gx = gx.contiguous(memory_format=_format(x))
        gw = gs.sum().reshape(ctx.w_shape) if gs is not None else None
        if ctx.needs_input_grad[0]:
            return gx, None, gw, None, None
        return None, gx, gw, None, None


def fusable_bn(m: nn.Module) -> bool:
    """A BatchNorm the fast path reproduces exactly: 2-d, non-affine, tracking running stats with
    a fixed momentum, in training mode."""
    return (type(m) is nn.BatchNorm2d and not m.affine and m.track_running_stats and m.momentum is not None
            and m.training)


def op_plan(op: nn.Module, relu_first: bool) -> tuple[str, nn.Module | None]:
    """How the fast path computes one candidate: ``("conv", op)`` for ReLU-...-BN sequences
    (body on the shared ReLU, last BN fused with the weight), ``("pool", op)`` for pool + BN,
    ``("plain", None)`` for the rest (identity, factorized reduce, custom ops)."""
    if isinstance(op, nn.Sequential) and len(op) >= 2 and fusable_bn(op[-1]):
        if relu_first and len(op) >= 3:
            return "conv", op
        if len(op) == 2 and isinstance(op[0], (nn.MaxPool2d, nn.AvgPool2d)):
            return "pool", op
    return "plain", None


def _conv_body(op: nn.Sequential, h: torch.Tensor) -> torch.Tensor:
    """The modules of a ReLU-...-BN candidate between its leading ReLU and its last BN, with
    each inner BN + ReLU pair through :class:`BNReLU`."""
    body = list(op)[1:-1]
    j = 0
    while j < len(body):
        m = body[j]
        if fusable_bn(m) and j + 1 < len(body) and isinstance(body[j + 1], nn.ReLU):
            h = BNReLU.apply(h, m)
            j += 2
            continue
        h = m(h)
        j += 1
    return h


#: Fewest channels for which an edge's candidates run in channels_last (see :func:`work_format_for`).
CHANNELS_LAST_MIN_CHANNELS = 16


def work_format_for(x: torch.Tensor) -> torch.memory_format:
    """The layout an edge's candidates run in: channels_last for edges of at least
    :data:`CHANNELS_LAST_MIN_CHANNELS` channels. Narrower edges (PC-DARTS runs C/4 channels:
    4 in the first cells) stay in the input's layout: there oneDNN's BatchNorm is 3x slower in
    channels_last (2 threads, 32x4x32x32, forward + backward: 0.36 vs 1.11 ms; 8 channels
    0.10 vs 0.31 ms; equal from 16 channels on)."""
    return torch.channels_last if x.shape[1] >= CHANNELS_LAST_MIN_CHANNELS else _format(x)


def fused_weighted_sum(ops, x: torch.Tensor, weights: torch.Tensor, idx: Sequence[int],
                       work_format: torch.memory_format | None = None) -> torch.Tensor | None:
    """``sum_i weights[i] * ops.ops[i](x)`` over ``idx`` by the fast path (see the module
    docstring); the plain computation for candidates it does not know. ``ops`` is a
    :class:`~dnas.relax.base.SharedReluOps`. Convolutions and pools run in ``work_format``; the
    result has ``x``'s layout. None when ``idx`` is empty."""
    plans = [op_plan(ops.ops[i], ops._relu_first[i])[0] for i in idx]
    fmt = _format(x)
    if work_format is None:
        work_format = work_format_for(x)
    xw = x.contiguous(memory_format=work_format) if ("conv" in plans or "pool" in plans) else None
    xc = F.relu(xw) if "conv" in plans else None
    xr = F.relu(x) if any(ops._relu_first[i] and k == "plain" for i, k in zip(idx, plans)) else None
    fused = None  # the conv and pool candidates' sum, in work_format
    out = None
    for i, kind in zip(idx, plans):
        op = ops.ops[i]
        if kind == "conv":
            y = BNScale.apply(_conv_body(op, xc), weights[i], op[-1])
        elif kind == "pool" and x.shape[1] >= CHANNELS_LAST_MIN_CHANNELS:
            y = PoolBNScale.apply(x, xw, weights[i], op[0], op[-1])
        elif kind == "pool":
            # narrow edge: pooling twice costs more time than the small pooled map saves memory
            y = BNScale.apply(op[0](x), weights[i], op[-1])
        else:
            y = weights[i] * ops.run(i, x, xr)
            out = y if out is None else out + y
            continue
        fused = y if fused is None else fused + y
    if fused is not None:
        fused = fused.contiguous(memory_format=fmt)
        out = fused if out is None else out + fused
    return out


def set_fast_path(model: nn.Module, on: bool) -> int:
    """Switch every edge of ``model`` to the fast (``True``) or plain path; returns how many
    edges it switched (0 for a model without shared-ReLU edges)."""
    n = 0
    for m in model.modules():
        if hasattr(m, "fast") and hasattr(m, "weighted_sum"):
            m.fast = bool(on)
            n += 1
    return n


@contextlib.contextmanager
def plain_path(model: nn.Module) -> Iterator[None]:
    """Inside, ``model``'s edges take the plain path (double backward, e.g. Hessians); the
    previous settings come back afterwards."""
    edges = [m for m in model.modules() if hasattr(m, "fast") and hasattr(m, "weighted_sum")]
    before = [m.fast for m in edges]
    try:
        for m in edges:
            m.fast = False
        yield
    finally:
        for m, b in zip(edges, before):
            m.fast = b
