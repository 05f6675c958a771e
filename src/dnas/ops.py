"""Candidate operations and their registry.

An op factory has the signature ``factory(C: int, stride: int, affine: bool) -> nn.Module``
and maps ``C`` channels to ``C`` channels, downsampling by ``stride``. Register your own with::

    from dnas.ops import OPS
    @OPS.register("conv_3x3")
    def conv3(C, stride, affine):
        return ReLUConvBN(C, C, 3, stride, 1, affine)

The eight DARTS candidates follow the reference code exactly (so parameter counts of
published genotypes match): ReLU-conv-BN ordering, separable convs applied twice, dilated
convs once, and a factorized reduce for skip connections across a stride.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from dnas.registry import Registry

OpFactory = Callable[[int, int, bool], nn.Module]
OPS: Registry[OpFactory] = Registry("op")

#: Candidate ops of the DARTS cell space, in the reference order.
DARTS_PRIMITIVES = [
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
]

#: Ops without learnable weights: the share of these in a derived cell is a collapse signal.
PARAMETER_FREE = {"none", "max_pool_3x3", "avg_pool_3x3", "skip_connect"}


#: Switch for :class:`DepthwiseConv2d` and :class:`ChannelsLastMaxPool2d`'s channels_last kernels
#: (benchmarks compare both settings in one run).
CHANNELS_LAST_KERNELS = True


def memory_format_of(t: torch.Tensor) -> torch.memory_format:
    """``torch.channels_last`` for a 4-d tensor laid out so (and not also plain contiguous, as
    1x1 maps are), else ``torch.contiguous_format``."""
    return (torch.channels_last if t.dim() == 4 and not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last)
            else torch.contiguous_format)


def _use_channels_last(x: torch.Tensor) -> bool:
    """Whether a layout kernel should convert ``x``: a CPU tensor whose channels are not already
    innermost (a channels_last tensor, or a channel slice of one, runs the plain kernel as is)."""
    return (CHANNELS_LAST_KERNELS and x.device.type == "cpu" and x.dim() == 4
            and not (x.stride(1) == 1 and x.shape[1] > 1))


def _custom_backward_ok(*tensors: torch.Tensor) -> bool:
    """The custom Functions only where a backward will run: never while exporting or tracing
    (ONNX / TorchScript see plain aten ops) nor without gradients (nothing to save anyway)."""
    return (torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
            and not torch.jit.is_tracing() and not torch.jit.is_scripting())


def _channels_last_call(plain: Callable[[torch.Tensor], torch.Tensor], custom: Callable[[], torch.Tensor],
                        x: torch.Tensor, *params: torch.Tensor) -> torch.Tensor:
    """``plain(x)`` where channels_last does not apply; the memory-saving Function ``custom()``
    where a backward will run; otherwise ``plain`` on a channels_last copy, back in NCHW."""
    if not _use_channels_last(x):
        return plain(x)
    if _custom_backward_ok(x, *params):
        return custom()
    return plain(x.contiguous(memory_format=torch.channels_last)).contiguous()


class _ChannelsLastDepthwise(torch.autograd.Function):
    """A depthwise convolution computed in channels_last that saves only the NCHW input.

    Converting the input and calling ``F.conv2d`` would keep the channels_last copy alive for
    the backward pass beside the NCHW tensor the preceding ReLU saves (measured: DARTS peak RSS
    8.1 -> 9.9 GB); here the copy is made again in the backward pass. The backward is built from
    differentiable ops (``aten.convolution_backward``), so double backward (``hvp: exact``)
    still works."""

    @staticmethod
    def forward(ctx, x, weight, stride, padding, dilation, groups):  # type: ignore[override]
        ctx.save_for_backward(x, weight)
        ctx.conf = (stride, padding, dilation, groups)
        xc = x.contiguous(memory_format=torch.channels_last)
        return F.conv2d(xc, weight, None, stride, padding, dilation, groups).contiguous()

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        x, weight = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.conf
        cl = torch.channels_last
        gx, gw, _ = torch.ops.aten.convolution_backward(
            grad.contiguous(memory_format=cl), x.contiguous(memory_format=cl), weight, None,
            list(stride), list(padding), list(dilation), False, [0, 0], groups,
            [ctx.needs_input_grad[0], ctx.needs_input_grad[1], False])
        return (gx.contiguous() if gx is not None else None), gw, None, None, None, None


class DepthwiseConv2d(nn.Conv2d):
    """A depthwise ``nn.Conv2d`` (same parameters and state-dict keys) that runs large-kernel
    and dilated cases in channels_last on CPU.

    On CPU, PyTorch's NCHW kernels for large or dilated depthwise convolutions are several times
    slower than its channels_last (oneDNN) ones, forward and backward, and two layout copies
    cost far less. Measured with one thread on 32x16x32x32 inputs, forward + backward, values and
    gradients equal: depthwise 5x5 13.6 -> 4.7 ms, dilated 3x3 10.4 -> 4.7 ms, dilated 5x5
    25.8 -> 9.5 ms; a 3x3 depthwise conv and pointwise convs gain nothing and stay as they are.
    Inputs already in channels_last (``channels_last: true``) and non-CPU tensors run unchanged.

    A stride-2, dilation-2 conv with "same" padding (the dilated candidates of a reduction edge)
    runs as a dense stride-1 conv on ``x[::2, ::2]``: exactly the same sums, 1.4-4.7x faster
    forward + backward than oneDNN's kernel here (2 threads, 32x32x32x32 and 32x64x16x16)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        if self._subsampled_same():
            # Stride s and dilation s with "same" padding read only every s-th row and column:
            # the same sums as a dense stride-1 conv on x[::s, ::s] (exact, not an
            # approximation). oneDNN's stride-2 dilated depthwise backward is slow in both
            # layouts (2 threads, 32x32x32x32, 5x5: 8.5 ms NCHW, 19 ms channels_last).
            s = self.stride[0]
            pad = (self.kernel_size[0] // 2, self.kernel_size[1] // 2)
            xs = x[:, :, ::s, ::s]
            if memory_format_of(x) == torch.channels_last:
                xs = xs.contiguous(memory_format=torch.channels_last)  # a channels_last network stays so
            return self._depthwise(xs, (1, 1), pad, (1, 1))
        if (self.kernel_size[0] >= 5 or self.dilation[0] > 1) and self.padding_mode == "zeros":
            return self._depthwise(x, self.stride, self.padding, self.dilation)
        return super().forward(x)

    def _subsampled_same(self) -> bool:
        k, s, d = self.kernel_size, self.stride, self.dilation
        return (self.padding_mode == "zeros" and s[0] == s[1] == d[0] == d[1] > 1 and k[0] % 2 == 1 and k[1] % 2 == 1
                and tuple(self.padding) == (d[0] * (k[0] - 1) // 2, d[1] * (k[1] - 1) // 2))

    def _depthwise(self, x: torch.Tensor, stride, padding, dilation) -> torch.Tensor:
        plain = lambda t: F.conv2d(t, self.weight, self.bias, stride, padding, dilation, self.groups)  # noqa: E731
        if self.bias is not None:  # the channels_last Function has no bias term
            return plain(x)
        return _channels_last_call(
            plain, lambda: _ChannelsLastDepthwise.apply(x, self.weight, stride, padding, dilation, self.groups),
            x, self.weight)


#: Switch for :class:`PointwiseConv2d`'s matrix-product kernels (benchmarks compare both settings in one run).
POINTWISE_MATMUL = True
#: Widest NCHW input :class:`PointwiseConv2d` runs as a batched matrix product (see its docstring).
POINTWISE_MATMUL_MAX_NCHW_CHANNELS = 16


class PointwiseConv2d(nn.Conv2d):
    """A 1x1, stride-1, bias-free ``nn.Conv2d`` (same parameters and state-dict keys) computed
    as a matrix product on CPU.

    oneDNN's 1x1 convolution is slow on the small maps of a search network: 2 threads, batch
    64, forward + backward, 4 -> 4 channels at 32x32 takes 7.9 ms in NCHW against 1.0 ms as a
    batched ``weight @ x`` (8 channels: 5.2 vs 1.2 ms; 16 at 16x16: 0.74 vs 0.72; wider inputs
    gain nothing in NCHW, so they stay convolutions). A channels_last input is an
    ``(N*H*W, C)`` matrix already; one GEMM with the transposed weight beats oneDNN's
    channels_last kernel on most search shapes (16 channels at 16x16: 0.44 vs 0.32 ms; 32 at
    8x8: 0.33 vs 0.21) and keeps the layout. Both are the same sums as the convolution (float
    rounding aside), differentiable twice (``hvp: exact``). Tracing and scripting (export) and
    non-CPU tensors see the plain convolution."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        layout = self._matmul_layout(x)
        if layout is None:
            return super().forward(x)
        n, c, h, w = x.shape
        weight = self.weight.view(self.out_channels, c)
        if layout == torch.channels_last:
            y = x.permute(0, 2, 3, 1).reshape(n * h * w, c) @ weight.t()
            return y.view(n, h, w, self.out_channels).permute(0, 3, 1, 2)
        # bmm with the weight broadcast as a view: torch.matmul would fold the batch into a
        # transposed copy of x and keep it for the backward pass
        return torch.bmm(weight.expand(n, -1, -1), x.reshape(n, c, h * w)).view(n, self.out_channels, h, w)

    def _matmul_layout(self, x: torch.Tensor) -> torch.memory_format | None:
        """The layout ``x`` runs its matrix product in, or None for the plain convolution."""
        if not (POINTWISE_MATMUL and x.device.type == "cpu" and x.dim() == 4 and self.bias is None and self.groups == 1
                and self.kernel_size == (1, 1) and self.stride == (1, 1) and self.padding == (0, 0)
                and not torch.jit.is_tracing() and not torch.jit.is_scripting()):
            return None
        layout = memory_format_of(x)
        if layout == torch.channels_last or (x.is_contiguous() and x.shape[1] <= POINTWISE_MATMUL_MAX_NCHW_CHANNELS):
            return layout
        return None


class _ChannelsLastMaxPool(torch.autograd.Function):
    """Max pooling computed in channels_last that saves the NCHW input and the indices (as
    ``nn.MaxPool2d`` does), not a channels_last copy; differentiable backward."""

    @staticmethod
    def forward(ctx, x, kernel, stride, padding):  # type: ignore[override]
        y, idx = torch.ops.aten.max_pool2d_with_indices(
            x.contiguous(memory_format=torch.channels_last), [kernel] * 2, [stride] * 2, [padding] * 2)
        ctx.save_for_backward(x, idx)
        ctx.conf = (kernel, stride, padding)
        ctx.mark_non_differentiable(idx)
        return y.contiguous()

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        x, idx = ctx.saved_tensors
        kernel, stride, padding = ctx.conf
        cl = torch.channels_last
        gx = torch.ops.aten.max_pool2d_with_indices_backward(
            grad.contiguous(memory_format=cl), x.contiguous(memory_format=cl), [kernel] * 2, [stride] * 2, [padding] * 2,
            [1, 1], False, idx)
        return gx.contiguous(), None, None, None


class ChannelsLastMaxPool2d(nn.MaxPool2d):
    """``nn.MaxPool2d(kernel, stride, padding)`` (square, no dilation, floor mode) run in
    channels_last on CPU: its NCHW kernel is several times slower. Measured with 2 threads,
    forward + backward, same values and gradients: 3x3 stride 1 on 32x16x32x32 (one thread)
    12.8 -> 4.7 ms; 2x2 stride 2 on 64x24x32x32 (PC-DARTS's bypass of a reduction edge) 39 ->
    12 ms, on 64x48x16x16 7.0 -> 1.9 ms. Saves the NCHW input and the indices, as
    nn.MaxPool2d does."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        k, s, p = self.kernel_size, self.stride, self.padding
        if not (isinstance(k, int) and isinstance(s, int) and isinstance(p, int) and self.dilation == 1
                and not self.ceil_mode and not self.return_indices):
            return super().forward(x)
        return _channels_last_call(super().forward, lambda: _ChannelsLastMaxPool.apply(x, k, s, p), x)


class MaxPool3x3(ChannelsLastMaxPool2d):
    """``nn.MaxPool2d(3, stride, padding=1)`` through :class:`ChannelsLastMaxPool2d`."""

    def __init__(self, stride: int):
        super().__init__(3, stride=stride, padding=1)


class ReLUConvBN(nn.Sequential):
    def __init__(self, C_in: int, C_out: int, kernel: int, stride: int, padding: int, affine: bool = True):
        super().__init__(
            nn.ReLU(inplace=False),
            (PointwiseConv2d(C_in, C_out, 1, bias=False) if kernel == 1 and stride == 1 and padding == 0
             else nn.Conv2d(C_in, C_out, kernel, stride=stride, padding=padding, bias=False)),
            nn.BatchNorm2d(C_out, affine=affine),
        )


class DilConv(nn.Sequential):
    """ReLU, depthwise dilated conv, pointwise conv, BN."""

    def __init__(self, C_in: int, C_out: int, kernel: int, stride: int, padding: int, dilation: int, affine: bool = True):
        super().__init__(
            nn.ReLU(inplace=False),
            DepthwiseConv2d(C_in, C_in, kernel, stride, padding, dilation=dilation, groups=C_in, bias=False),
            PointwiseConv2d(C_in, C_out, 1, bias=False),
            nn.BatchNorm2d(C_out, affine=affine),
        )


class SepConv(nn.Sequential):
    """Two stacked depthwise-separable convs (the first carries the stride), as in DARTS."""

    def __init__(self, C_in: int, C_out: int, kernel: int, stride: int, padding: int, affine: bool = True):
        super().__init__(
            nn.ReLU(inplace=False),
            DepthwiseConv2d(C_in, C_in, kernel, stride, padding, groups=C_in, bias=False),
            PointwiseConv2d(C_in, C_in, 1, bias=False),
            nn.BatchNorm2d(C_in, affine=affine),
            nn.ReLU(inplace=False),
            DepthwiseConv2d(C_in, C_in, kernel, 1, padding, groups=C_in, bias=False),
            PointwiseConv2d(C_in, C_out, 1, bias=False),
            nn.BatchNorm2d(C_out, affine=affine),
        )


class Identity(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class Zero(nn.Module):
    """The ``none`` op: a zero tensor of the output shape."""

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class FactorizedReduce(nn.Module):
    """Halve the resolution with two offset stride-2 1x1 convs, concatenated (no information lost).

    A stride-2 1x1 conv reads only every other row and column, so each branch runs as the
    stride-1 conv of a subsampled view (``x[::2, ::2]`` and ``x[1::2, 1::2]``): exactly the
    same sums, and oneDNN's stride-2 1x1 backward is slow on CPU (2 threads, forward + backward
    of the pair: 64x64x32x32 -> 32 channels 42 -> 17 ms; 64x128x16x16 -> 64: 12.4 -> 7.0 ms;
    64x4x32x32: 2.6 -> 1.8 ms). Odd sizes pad the shifted branch with zeros, as the original
    strided version's output padding does; a 1x1 map gives an all-zero shifted branch."""

    def __init__(self, C_in: int, C_out: int, affine: bool = True):
        super().__init__()
        assert C_out % 2 == 0, "FactorizedReduce needs an even number of output channels"
        self.relu = nn.ReLU(inplace=False)
        # stride 1: each runs on its subsampled view (state-dict keys as the strided original's)
        self.conv_1 = nn.Conv2d(C_in, C_out // 2, 1, stride=1, padding=0, bias=False)
        self.conv_2 = nn.Conv2d(C_in, C_out // 2, 1, stride=1, padding=0, bias=False)
        self.bn = nn.BatchNorm2d(C_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        even, shifted = x[:, :, ::2, ::2], x[:, :, 1::2, 1::2]
        if memory_format_of(x) == torch.channels_last:  # a channels_last network stays so
            even, shifted = (t.contiguous(memory_format=torch.channels_last) for t in (even, shifted))
        a = self.conv_1(even)
        if shifted.shape[-1] == 0 or shifted.shape[-2] == 0:  # a 1-pixel side: nothing to shift in
            b = a.new_zeros(a.shape[0], self.conv_2.out_channels, *a.shape[-2:])
        else:
            b = self.conv_2(shifted)
        if b.shape[-2:] != a.shape[-2:]:  # odd input sizes: pad the shifted branch
            b = F.pad(b, (0, a.shape[-1] - b.shape[-1], 0, a.shape[-2] - b.shape[-2]))
        return self.bn(torch.cat([a, b], dim=1))


OPS.register("none", lambda C, stride, affine: Zero(stride))
OPS.register("avg_pool_3x3", lambda C, stride, affine: nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False))
OPS.register("max_pool_3x3", lambda C, stride, affine: MaxPool3x3(stride))
OPS.register("skip_connect", lambda C, stride, affine: Identity() if stride == 1 else FactorizedReduce(C, C, affine))
OPS.register("sep_conv_3x3", lambda C, stride, affine: SepConv(C, C, 3, stride, 1, affine))
OPS.register("sep_conv_5x5", lambda C, stride, affine: SepConv(C, C, 5, stride, 2, affine))
OPS.register("sep_conv_7x7", lambda C, stride, affine: SepConv(C, C, 7, stride, 3, affine))
OPS.register("dil_conv_3x3", lambda C, stride, affine: DilConv(C, C, 3, stride, 2, 2, affine))
OPS.register("dil_conv_5x5", lambda C, stride, affine: DilConv(C, C, 5, stride, 4, 2, affine))
OPS.register(
    "conv_7x1_1x7",
    lambda C, stride, affine: nn.Sequential(
        nn.ReLU(inplace=False),
        nn.Conv2d(C, C, (1, 7), stride=(1, stride), padding=(0, 3), bias=False),
        nn.Conv2d(C, C, (7, 1), stride=(stride, 1), padding=(3, 0), bias=False),
        nn.BatchNorm2d(C, affine=affine),
    ),
)


def channels_last_safe(model: nn.Module) -> bool:
    """Whether ``model`` may run in channels_last memory format on CPU.

    oneDNN (torch 2.13 CPU) corrupts memory in stride-2 1x1 convolutions on channels_last
    tensors with fewer than 8 input channels (reproduced with a bare ``F.conv2d``); models with
    such a conv stay in the default format. :class:`FactorizedReduce` runs stride-1 convs on
    subsampled views and has none."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) and m.stride != (1, 1) and m.in_channels < 8:
            return False
    return True


def make_op(name: str, C: int, stride: int, affine: bool) -> nn.Module:
    """Build a registered op by name."""
    return OPS.get(name, "op")(C, stride, affine)


def is_parameter_free(name: str) -> bool:
    return name in PARAMETER_FREE
