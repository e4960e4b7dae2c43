"""The fast backend computes the same network: against PyTorch and against the
exported ONNX file."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from sr.inference import OnnxRuntimeRunner, TorchRunner, blocked_last_layer
from sr.upscaling import refine_with
from tests.helpers import perturbed_model, refine
from tests.test_upscale_tiling import smooth_picture, weights_of


@pytest.mark.parametrize("arch", ["9-1-5", "9-5-5", "11-5-5"])
def test_onnxruntime_matches_torch_forward_valid(arch):
    model = perturbed_model(arch)
    runner = OnnxRuntimeRunner(weights_of(model))
    r = model.radius
    for h, w in [(20, 24), (13, 7), (1, 1)]:           # whole blocks and ragged ones
        x = torch.rand(h + 2 * r, w + 2 * r, generator=torch.Generator().manual_seed(h))
        with torch.inference_mode():
            want = model.forward_valid(x[None, None])[0, 0].numpy()
        got = runner(x.numpy())
        assert got.shape == (h, w)
        np.testing.assert_allclose(got, want, atol=2e-6)


@pytest.mark.parametrize("arch", ["9-1-5", "9-5-5", "11-5-5"])
def test_onnxruntime_same_8bit_results_as_torch(arch):
    """Different float kernels may flip a rounding by one level on rare pixels."""
    model = perturbed_model(arch)
    picture = smooth_picture(96, 128, seed=4)
    fast = refine_with(OnnxRuntimeRunner(weights_of(model)), picture, 0)
    slow = refine(model, picture, 0)
    diff = np.abs(fast.astype(int) - slow)
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3


def test_onnxruntime_matches_the_exported_onnx_file(tmp_path):
    """The fast path computes the browser's network: export_onnx's file on a window
    (which pads it once more) agrees inside the halo."""
    from sr.export import export_onnx
    model = perturbed_model("9-1-5")
    path = export_onnx(model, 2, tmp_path / "srcnn.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    r = model.radius
    window = np.random.default_rng(5).random((40 + 2 * r, 36 + 2 * r), dtype=np.float32)
    exported = session.run(None, {"luma": window[None, None]})[0][0, 0, r:-r, r:-r]
    np.testing.assert_allclose(OnnxRuntimeRunner(weights_of(model))(window), exported,
                               atol=2e-6)


def test_blocked_last_layer_is_the_same_convolution():
    weight = np.random.default_rng(6).normal(size=(1, 3, 5, 5)).astype(np.float32)
    blocked, bias = blocked_last_layer(weight, np.array([0.5], np.float32), 4)
    h = torch.rand(1, 3, 16, 16)
    want = torch.nn.functional.conv2d(h, torch.from_numpy(weight)) + 0.5       # (1, 1, 12, 12)
    got = torch.nn.functional.conv2d(h, torch.from_numpy(blocked), torch.from_numpy(bias),
                                     stride=4)
    got = torch.nn.functional.pixel_shuffle(got, 4)                             # (1, 1, 12, 12)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_torch_half_keeps_float32_sum_and_quality():
    """The GPU's float16 path, run on the CPU: no value more than one level off, and
    on average less than 1/50 of a level (float16 moves only a few roundings)."""
    model = perturbed_model("9-1-5")
    picture = smooth_picture(40, 40, seed=7)
    try:
        half = refine_with(TorchRunner(model, "cpu", half=True), picture, 0)
    except RuntimeError as e:   # an old CPU build without float16 convolutions
        pytest.skip(f"no float16 convolution on this CPU build: {e}")
    diff = np.abs(half.astype(int) - refine(model, picture, 0))
    assert diff.max() <= 1 and diff.mean() < 1 / 50
