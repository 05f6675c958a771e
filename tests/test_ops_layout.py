"""The layout kernels of the DARTS ops (dnas.ops.DepthwiseConv2d, ChannelsLastMaxPool2d / MaxPool3x3,
PointwiseConv2d's matrix products) compute what
the plain NCHW modules compute - values, input and weight gradients to float tolerance - keep
the state-dict keys of nn.Conv2d, and hand back the input's memory format."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import dnas.ops
from dnas.ops import ChannelsLastMaxPool2d, DepthwiseConv2d, MaxPool3x3, PointwiseConv2d, make_op


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


@pytest.mark.parametrize("c_in,c_out,channels_last", [(4, 4, False), (8, 16, False), (32, 16, False), (4, 4, True), (16, 32, True)])
def test_pointwise_conv_matches_nn_conv2d(c_in, c_out, channels_last):
    """The matrix-product 1x1 conv: values, input and weight gradients equal nn.Conv2d's, the
    output keeps the input's layout, and the double backward of hvp: exact agrees too."""
    torch.manual_seed(c_in + c_out)
    ref = nn.Conv2d(c_in, c_out, 1, bias=False)
    ours = PointwiseConv2d(c_in, c_out, 1, bias=False)
    ours.load_state_dict(ref.state_dict())
    x0 = torch.randn(3, c_in, 7, 9)
    if channels_last:
        x0 = x0.contiguous(memory_format=torch.channels_last)
    assert (ours._matmul_layout(x0) is not None) == (channels_last or c_in <= dnas.ops.POINTWISE_MATMUL_MAX_NCHW_CHANNELS)
    x = x0.clone().requires_grad_()
    y_ref, y = ref(x), ours(x)
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    assert y.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    g_ref = torch.autograd.grad(y_ref.square().sum(), [x, ref.weight], create_graph=True)
    g = torch.autograd.grad(y.square().sum(), [x, ours.weight], create_graph=True)
    for a, b in zip(g, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-4)
    hv_ref = torch.autograd.grad(g_ref[0].square().sum(), x)[0]
    hv = torch.autograd.grad(g[0].square().sum(), x)[0]
    torch.testing.assert_close(hv, hv_ref, rtol=1e-4, atol=1e-3)


def test_pointwise_conv_is_a_convolution_when_traced_or_switched_off(monkeypatch):
    """Exports see the plain convolution; the module switch turns the matrix product off."""
    m = PointwiseConv2d(4, 4, 1, bias=False)
    traced = torch.jit.trace(m, torch.randn(1, 4, 5, 5))
    assert "conv" in str(traced.graph).lower() and "bmm" not in str(traced.graph)
    assert m._matmul_layout(torch.randn(1, 4, 5, 5)) == torch.contiguous_format
    monkeypatch.setattr(dnas.ops, "POINTWISE_MATMUL", False)
    assert m._matmul_layout(torch.randn(1, 4, 5, 5)) is None
    assert isinstance(make_op("sep_conv_3x3", 4, 1, True)[2], PointwiseConv2d)
    assert isinstance(make_op("dil_conv_3x3", 4, 2, True)[2], PointwiseConv2d)


@pytest.mark.parametrize("size", [8, 9])
@pytest.mark.parametrize("channels_last", [False, True])
def test_channels_last_max_pool_2x2_matches_nn_max_pool_on_a_channel_slice(size, channels_last):
    """PC-DARTS's bypass pooling (2x2, stride 2) of a channel slice (not contiguous), as the
    reduction edge feeds it: same values and gradients as nn.MaxPool2d, the input's layout."""
    torch.manual_seed(size)
    x0 = torch.randn(3, 8, size, size)
    if channels_last:
        x0 = x0.contiguous(memory_format=torch.channels_last)
    outs = []
    for pool in (nn.MaxPool2d(2, 2), ChannelsLastMaxPool2d(2, 2)):
        x = x0.clone().requires_grad_()
        y = pool(x[:, 2:])
        outs.append((y, torch.autograd.grad((y * y.detach().cos()).sum(), x)[0]))
    assert torch.equal(outs[1][0], outs[0][0]) and torch.equal(outs[1][1], outs[0][1])
    assert (outs[1][0].stride(1) == 1) == channels_last  # channels stay innermost for a channels_last network
