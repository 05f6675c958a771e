"""The fast path of a supernet edge: the same ops, the same parameters, less time and memory.

An edge of a DARTS-style supernet computes ``sum_i w_i * op_i(x)``. Run op by op through
autograd (the plain path, :meth:`dnas.relax.base.SharedReluOps.weighted_sum`) it is slow and
keeps more than it needs on CPU:

* **Depthwise convolutions.** oneDNN's backward of a depthwise convolution on a default (NCHW)
  tensor is 5-15x slower than on a channels_last one (measured here: 5x5, 16 channels, 32x32,
  batch 64: about 2.8 s vs 0.2 s for the weight and input gradients). The fast path converts the
  edge's ReLU output to channels_last once and runs every separable and dilated candidate's
  convolutions in that format. oneDNN's BatchNorm is in turn slow on channels_last (forward 4x,
  backward 10x), so the BatchNorms of those candidates are ours: one ``var_mean`` reduction
  forward, two per-channel reductions and one fused elementwise pass backward (:class:`BNReLU`,
  :class:`BNScale`); the edge output goes back to the input's format inside the last BN pass.
* **Stored copies.** The non-affine BN that ends every candidate is followed by the
  multiplication with its architecture weight, which keeps the BN *output* (for the weight's
  gradient) while the BN keeps its *input*: two tensors where one suffices, since
  ``xhat = (h - mean) * invstd`` is one multiply-add away from the input (:class:`BNScale`). A
  pooling candidate keeps its output and, for max pooling, an int64 index tensor twice the size
  of a float one, although pooling the edge input again (alive anyway: the other candidates
  read it) is one cheap pass (:class:`PoolBNScale` recomputes it in the backward pass).
* **Edge scalars.** PC-DARTS's edge normalisation (and TopoNAS's edge weights) multiply the
  edge output, keeping a full-width copy of it for the scalar's gradient; the mixed ops of
  :mod:`dnas.relax.softmax` and :mod:`dnas.relax.partial` fold the scalar into the op weights
  on the fast path instead (``takes_edge_weight``).

Running statistics are updated as :class:`torch.nn.BatchNorm2d` does (momentum, unbiased
variance). Values and gradients equal the plain path's to float rounding
(tests/test_fast_path.py checks every relaxation). Candidates the fast path does not know
(identity, factorized reduce, user ops) run as in the plain path, so custom op sets still work.

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

_DIMS = (0, 2, 3)


def _bn_stats(h: torch.Tensor, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch mean and inverse std of a training-mode BN, updating its running statistics as
    :class:`torch.nn.BatchNorm2d` does (unbiased variance in the running estimate). Computed
    with one reduction instead of oneDNN's BN forward, which is slow on channels_last maps."""
    with torch.no_grad():
        var, mean = torch.var_mean(h, _DIMS, correction=0)
        n = h.numel() // h.shape[1]
        if bn.num_batches_tracked is not None:
            bn.num_batches_tracked.add_(1)
        m = bn.momentum
        bn.running_mean.mul_(1 - m).add_(mean, alpha=m)
        bn.running_var.mul_(1 - m).add_(var, alpha=m * n / max(n - 1, 1))
        return mean, torch.rsqrt(var + bn.eps)


def _bn_apply(h: torch.Tensor, mean: torch.Tensor, invstd: torch.Tensor, w: torch.Tensor | None,
              out_format: torch.memory_format) -> torch.Tensor:
    """``w * (h - mean) * invstd`` in one pass, written in ``out_format``."""
    a = invstd if w is None else invstd * w
    b = -mean * a
    res = torch.empty_like(h, memory_format=out_format)
    return torch.addcmul(b.view(1, -1, 1, 1), h, a.view(1, -1, 1, 1), out=res)


def _bn_scale_backward(g: torch.Tensor, h: torch.Tensor, w: torch.Tensor, mean: torch.Tensor, invstd: torch.Tensor,
                       need_h: bool, need_w: bool) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Gradients of ``w * (h - mean) * invstd`` (batch statistics) w.r.t. ``h`` and ``w``.

    With ``n`` elements per channel, ``s1 = sum g`` and ``s2 = sum g * xhat`` per channel:
    ``dw = sum s2`` and ``dh = w * invstd * (g - s1 / n - xhat * s2 / n)``, expanded into
    ``a * g + b * h + c`` with per-channel ``a, b, c`` so it is one elementwise pass."""
    n = h.numel() // h.shape[1]
    shape = (1, -1, 1, 1)
    s1 = g.sum(_DIMS)
    s2 = invstd * ((g * h).sum(_DIMS) - mean * s1)  # sum g * xhat
    gw = s2.sum().reshape(w.shape) if need_w else None
    gh = None
    if need_h:
        a = w * invstd
        b = -a * invstd * s2 / n
        c = -a * s1 / n - b * mean
        gh = torch.addcmul(c.view(shape), g, a.view(shape))
        gh.addcmul_(h, b.view(shape))
    return gh, gw


class BNScale(torch.autograd.Function):
    """``w * BN(h)`` for a non-affine BN in training mode, keeping only ``h`` for the backward.
    The output is in ``out_format`` (the edge's sum is contiguous while ``h`` may be channels_last)."""

    @staticmethod
    def forward(ctx, h: torch.Tensor, w: torch.Tensor, bn: nn.BatchNorm2d,  # type: ignore[override]
                out_format: torch.memory_format = torch.contiguous_format) -> torch.Tensor:
        mean, invstd = _bn_stats(h, bn)
        ctx.save_for_backward(h, w, mean, invstd)
        return _bn_apply(h, mean, invstd, w, out_format)

    @staticmethod
    @once_differentiable
    def backward(ctx, g: torch.Tensor):  # type: ignore[override]
        h, w, mean, invstd = ctx.saved_tensors
        g = g.contiguous(memory_format=_format(h))
        gh, gw = _bn_scale_backward(g, h, w, mean, invstd, ctx.needs_input_grad[0], ctx.needs_input_grad[1])
        return gh, gw, None, None


class BNReLU(torch.autograd.Function):
    """``relu(BN(h))`` for a non-affine BN in training mode (the middle of a separable conv), with a
    backward that is as fast in channels_last as in the default format (oneDNN's is not)."""

    @staticmethod
    def forward(ctx, h: torch.Tensor, bn: nn.BatchNorm2d) -> torch.Tensor:  # type: ignore[override]
        mean, invstd = _bn_stats(h, bn)
        out = _bn_apply(h, mean, invstd, None, _format(h)).relu_()
        ctx.save_for_backward(h, out, mean, invstd)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, g: torch.Tensor):  # type: ignore[override]
        h, out, mean, invstd = ctx.saved_tensors
        g = (g * (out > 0)).contiguous(memory_format=_format(h))
        gh, _ = _bn_scale_backward(g, h, _ONE.to(h), mean, invstd, True, False)
        return gh, None


_ONE = torch.ones(())


def _format(t: torch.Tensor) -> torch.memory_format:
    return torch.channels_last if (t.dim() == 4 and not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last)) else torch.contiguous_format


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
    map (and max pooling's indices) is recomputed in the backward pass."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, w: torch.Tensor, pool: nn.Module, bn: nn.BatchNorm2d) -> torch.Tensor:  # type: ignore[override]
        p, _ = _pool(x, pool)
        mean, invstd = _bn_stats(p, bn)
        ctx.save_for_backward(x, w, mean, invstd)
        ctx.pool = pool
        return _bn_apply(p, mean, invstd, w, _format(p))

    @staticmethod
    @once_differentiable
    def backward(ctx, g: torch.Tensor):  # type: ignore[override]
        x, w, mean, invstd = ctx.saved_tensors
        pool = ctx.pool
        p, indices = _pool(x, pool)
        gp, gw = _bn_scale_backward(g, p, w, mean, invstd, ctx.needs_input_grad[0], ctx.needs_input_grad[1])
        gx = None
        if gp is not None:
            if indices is not None:
                gx = torch.ops.aten.max_pool2d_with_indices_backward(
                    gp, x, _pair(pool.kernel_size), _pair(pool.stride), _pair(pool.padding), _pair(pool.dilation),
                    pool.ceil_mode, indices)
            else:
                gx = torch.ops.aten.avg_pool2d_backward(gp, x, _pair(pool.kernel_size), _pair(pool.stride),
                                                        _pair(pool.padding), pool.ceil_mode, pool.count_include_pad,
                                                        pool.divisor_override)
        return gx, gw, None, None


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


def fused_weighted_sum(ops, x: torch.Tensor, weights: torch.Tensor, idx: Sequence[int],
                       conv_format: torch.memory_format = torch.channels_last) -> torch.Tensor | None:
    """``sum_i weights[i] * ops.ops[i](x)`` over ``idx`` by the fast path (see the module
    docstring); the plain computation for candidates it does not know. ``ops`` is a
    :class:`~dnas.relax.base.SharedReluOps`. The convolutions run in ``conv_format``. None when
    ``idx`` is empty."""
    plans = [op_plan(ops.ops[i], ops._relu_first[i])[0] for i in idx]
    xr = F.relu(x) if any(ops._relu_first[i] and k != "conv" for i, k in zip(idx, plans)) else None
    xc = F.relu(x.contiguous(memory_format=conv_format)) if "conv" in plans else None
    fmt = _format(x)
    out = None
    for i, kind in zip(idx, plans):
        op = ops.ops[i]
        if kind == "conv":
            y = BNScale.apply(_conv_body(op, xc), weights[i], op[-1], fmt)
        elif kind == "pool":
            y = PoolBNScale.apply(x, weights[i], op[0], op[-1])
        else:
            y = weights[i] * ops.run(i, x, xr)
        out = y if out is None else out + y
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
