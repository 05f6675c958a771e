"""The channels_last kernels of the DARTS ops (dnas.ops.DepthwiseConv2d, MaxPool3x3) compute what
the plain NCHW modules compute - values, input and weight gradients to float tolerance - keep
the state-dict keys of nn.Conv2d, and hand back the input's memory format."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import dnas.ops
from dnas.ops import DepthwiseConv2d, MaxPool3x3, make_op


@pytest.mark.parametrize("kernel,dilation,stride", [(3, 1, 1), (5, 1, 1), (5, 1, 2), (3, 2, 1), (3, 2, 2), (5, 2, 1), (7, 1, 2)])
def test_depthwise_conv_matches_nn_conv2d(kernel, dilation, stride):
    torch.manual_seed(kernel * 10 + dilation + stride)
    pad = dilation * (kernel - 1) // 2
    ref = nn.Conv2d(6, 6, kernel, stride, pad, dilation=dilation, groups=6, bias=False)
    ours = DepthwiseConv2d(6, 6, kernel, stride, pad, dilation=dilation, groups=6, bias=False)
    ours.load_state_dict(ref.state_dict())  # same keys and shapes
    x = torch.randn(3, 6, 13, 13, requires_grad=True)
    y_ref, y = ref(x), ours(x)
    assert y.is_contiguous() and y.shape == y_ref.shape
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-6)
    g_ref = torch.autograd.grad(y_ref.square().sum(), [x, ref.weight])
    g = torch.autograd.grad(y.square().sum(), [x, ours.weight])
    for a, b in zip(g, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kernel", [3, 5])
@pytest.mark.parametrize("size", [12, 13])
@pytest.mark.parametrize("channels_last", [False, True])
def test_stride2_dilated_depthwise_conv_is_the_dense_conv_of_every_other_pixel(kernel, size, channels_last):
    """Stride 2 with dilation 2 runs as a stride-1 conv on x[::2, ::2]: same values and
    gradients as nn.Conv2d at even and odd sizes, and a channels_last input stays so."""
    torch.manual_seed(kernel + size)
    ref = nn.Conv2d(16, 16, kernel, 2, kernel - 1, dilation=2, groups=16, bias=False)
    ours = DepthwiseConv2d(16, 16, kernel, 2, kernel - 1, dilation=2, groups=16, bias=False)
    ours.load_state_dict(ref.state_dict())
    assert ours._subsampled_same()
    x = torch.randn(3, 16, size, size)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    y_ref, y = ref(x), ours(x)
    assert y.shape == y_ref.shape
    assert y.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-6)
    g_ref = torch.autograd.grad(y_ref.square().sum(), [x, ref.weight])
    g = torch.autograd.grad(y.square().sum(), [x, ours.weight])
    for a, b in zip(g, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-4)
    # not the same-padded case (another padding): the ordinary dilated path
    assert not DepthwiseConv2d(16, 16, kernel, 2, 1, dilation=2, groups=16, bias=False)._subsampled_same()


@pytest.mark.parametrize("stride", [1, 2])
def test_max_pool_matches_nn_max_pool_and_keeps_the_format(stride):
    torch.manual_seed(stride)
    x = torch.randn(2, 5, 11, 11, requires_grad=True)
    ref, ours = nn.MaxPool2d(3, stride, 1)(x), MaxPool3x3(stride)(x)
    assert torch.equal(ours, ref) and ours.is_contiguous()
    assert torch.equal(torch.autograd.grad(ours.sum(), x)[0], torch.autograd.grad(ref.sum(), x)[0])
    xc = x.detach().contiguous(memory_format=torch.channels_last)
    out = MaxPool3x3(stride)(xc)  # channels_last in, channels_last out (whole-model channels_last)
    assert out.is_contiguous(memory_format=torch.channels_last) and torch.equal(out, ref.detach())


def test_ops_use_the_layout_kernels_and_the_switch_turns_them_off(monkeypatch):
    sep5 = make_op("sep_conv_5x5", 4, 1, True)
    assert isinstance(sep5[1], DepthwiseConv2d) and isinstance(make_op("max_pool_3x3", 4, 1, True), MaxPool3x3)
    sd = sep5.state_dict()  # checkpoints written before the change load unchanged
    assert sd["1.weight"].shape == (4, 1, 5, 5) and sd["5.weight"].shape == (4, 1, 5, 5) and "2.weight" in sd
    torch.manual_seed(0)
    x = torch.randn(2, 4, 8, 8)
    on = sep5(x)
    monkeypatch.setattr(dnas.ops, "CHANNELS_LAST_KERNELS", False)
    torch.testing.assert_close(sep5(x), on, rtol=1e-5, atol=1e-6)


def test_layout_kernels_support_double_backward():
    """hvp: exact differentiates the gradient again: the custom backward passes must be differentiable."""
    torch.manual_seed(3)
    for ref, ours in [(nn.Conv2d(4, 4, 5, 1, 2, groups=4, bias=False), DepthwiseConv2d(4, 4, 5, 1, 2, groups=4, bias=False)),
                      (nn.MaxPool2d(3, 1, 1), MaxPool3x3(1))]:
        ours.load_state_dict(ref.state_dict())
        x = torch.randn(2, 4, 9, 9, requires_grad=True)
        hv = []
        for m in (ref, ours):
            (g,) = torch.autograd.grad(m(x).square().sum(), x, create_graph=True)
            hv.append(torch.autograd.grad(g.square().sum(), x)[0])
        torch.testing.assert_close(hv[1], hv[0], rtol=1e-4, atol=1e-5)
