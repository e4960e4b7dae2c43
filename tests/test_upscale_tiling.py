"""Tiles are exact: tiled == untiled, byte for byte, for both architectures and
both backends, on odd sizes; and refine() still computes what it always did."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from sr.imaging import rgb_to_ycbcr, to_uint8, ycbcr_to_rgb
from sr.inference import OnnxRuntimeRunner, TorchRunner
from sr.tiling import halo_window, tile_boxes
from sr.upscaling import refine_batch, refine_with
from sr.model_files import Weights
from tests.helpers import perturbed_model, refine


def weights_of(model) -> Weights:
    return Weights("memory", 2, model.kernels, model.filters, model.residual, "",
                   {k: v.detach().numpy().copy() for k, v in model.state_dict().items()})


def smooth_picture(height: int, width: int, seed: int = 0, grey: bool = False) -> np.ndarray:
    """A bicubic-looking uint8 picture: random pixels enlarged 3x with bicubic."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (height // 3 + 1, width // 3 + 1) + (() if grey else (3,)),
                         dtype=np.uint8)
    img = Image.fromarray(small).resize((width, height), Image.BICUBIC)
    return np.asarray(img)


def run_luma(model, y: np.ndarray) -> np.ndarray:
    """The whole-image PyTorch pass: (H, W) luma -> (H, W), padded once by r."""
    r = model.radius
    padded = np.pad(np.asarray(y, dtype=np.float32), r, mode="reflect")  # (H+2r, W+2r)
    with torch.inference_mode():
        return model.forward_valid(torch.from_numpy(padded)[None, None])[0, 0].numpy()


def old_refine(model, bicubic: np.ndarray) -> np.ndarray:
    """refine() as it was before tiles carried the colour conversion (whole image)."""
    ycc = rgb_to_ycbcr(bicubic)
    y = run_luma(model, ycc[..., 0] / 255.0)
    ycc[..., 0] = y * 255.0
    return to_uint8(ycbcr_to_rgb(ycc))


def test_tile_boxes_cover_the_plane_once():
    covered = np.zeros((23, 41), int)
    for top, bottom, left, right in tile_boxes(23, 41, 8):
        covered[top:bottom, left:right] += 1
    assert (covered == 1).all()


@pytest.mark.parametrize("r", [3, 8])  # 8: beyond the picture, mirrored again
def test_halo_window_mirrors_like_padding(r):
    image = np.arange(5 * 7).reshape(5, 7)
    padded = np.pad(image, r, mode="reflect")
    for box in [(0, 2, 0, 3), (3, 5, 4, 7), (1, 4, 2, 5), (0, 5, 0, 7)]:
        top, bottom, left, right = box
        want = padded[top:bottom + 2 * r, left:right + 2 * r]
        assert (halo_window(image, box, r) == want).all()
    assert (halo_window(np.array([[4]]), (0, 1, 0, 1), 2) == 4).all()  # a 1x1 picture


@pytest.mark.parametrize("arch", ["9-1-5", "9-5-5", "11-5-5"])
def test_refine_unchanged_for_evaluation(arch):
    """The torch path gives exactly what the whole-image code gave (evaluation numbers)."""
    model = perturbed_model(arch)
    picture = smooth_picture(45, 61)
    assert (refine(model, picture, tile=0) == old_refine(model, picture)).all()


@pytest.mark.parametrize("arch", ["9-1-5", "9-5-5", "11-5-5"])
def test_refine_batch_equals_one_by_one(arch):
    """Training's validation (one call for many patches) scores what eval would."""
    model = perturbed_model(arch)
    patches = np.stack([smooth_picture(24, 24, seed=s) for s in range(5)])
    batch = refine_batch(model, patches)
    one_by_one = np.stack([refine(model, p, tile=0) for p in patches])
    assert batch.shape == patches.shape
    assert (batch == one_by_one).all()
    assert (batch != patches).any()   # the model did something


@pytest.mark.parametrize("arch", ["9-1-5", "9-5-5", "11-5-5"])
@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_tiled_equals_untiled_on_odd_sizes(arch, backend):
    model = perturbed_model(arch)
    runner = TorchRunner(model) if backend == "torch" else OnnxRuntimeRunner(weights_of(model))
    for shape, grey in [((47, 83), False), ((31, 29), True)]:
        picture = smooth_picture(*shape, seed=1, grey=grey)
        whole = refine_with(runner, picture, tile=10_000)
        for tile in (5, 16, 17, 30):
            tiled = refine_with(runner, picture, tile=tile)
            assert tiled.tobytes() == whole.tobytes(), (tile, shape)


@pytest.mark.parametrize("arch", ["9-1-5", "9-5-5", "11-5-5"])
def test_tiled_equals_untiled_16bit(arch):
    model = perturbed_model(arch)
    runner = OnnxRuntimeRunner(weights_of(model), workers=2)
    picture = smooth_picture(37, 53, seed=2).astype(np.uint16) * 257 + 91
    whole = refine_with(runner, picture, tile=0)
    assert whole.dtype == np.uint16
    assert refine_with(runner, picture, tile=11).tobytes() == whole.tobytes()


def test_parallel_workers_give_the_same_bytes():
    model = perturbed_model("9-1-5")
    picture = smooth_picture(70, 90, seed=3)
    one = refine_with(OnnxRuntimeRunner(weights_of(model), workers=1), picture, 16)
    two = refine_with(OnnxRuntimeRunner(weights_of(model), workers=2), picture, 16)
    assert one.tobytes() == two.tobytes()


def test_progress_callback_once_per_tile():
    model = perturbed_model("9-1-5")
    calls = []
    refine_with(OnnxRuntimeRunner(weights_of(model)), smooth_picture(20, 33), 8,
                on_tile=lambda: calls.append(1))
    assert len(calls) == 3 * 5


@pytest.mark.parametrize("height, width", [(1, 1), (2, 5), (7, 3)])
def test_pictures_smaller_than_the_halo(height, width):
    """Narrower than the radius: mirrored again and again, like np.pad(mode="reflect")."""
    model = perturbed_model("9-5-5")
    picture = smooth_picture(height, width)
    whole = refine(model, picture, tile=0)
    assert (whole == old_refine(model, picture)).all()
    assert (refine(model, picture, tile=1) == whole).all()
