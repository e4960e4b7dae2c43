import numpy as np
from PIL import Image

from sr.imaging import (degraded_pair, grey_to_luma, luma, luma_to_grey, modcrop, rgb_to_ycbcr,
                        ycbcr_to_rgb)
from tests.helpers import picture


def test_known_ycbcr_values():
    rgb = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0]]], np.uint8)
    ycc = rgb_to_ycbcr(rgb)
    np.testing.assert_allclose(ycc[0, 0], [16, 128, 128], atol=1e-4)
    np.testing.assert_allclose(ycc[0, 1], [235, 128, 128], atol=1e-3)
    np.testing.assert_allclose(ycc[0, 2], [16 + 65.481, 128 - 37.797, 128 + 112], atol=1e-3)
    np.testing.assert_allclose(luma(rgb), ycc[..., 0], atol=1e-3)


def test_colour_round_trip_is_lossless_in_8_bit():
    rgb = np.random.default_rng(0).integers(0, 256, (64, 64, 3)).astype(np.uint8)
    back = ycbcr_to_rgb(rgb_to_ycbcr(rgb))
    assert np.abs(back - rgb).max() < 1e-3
    assert np.array_equal(np.rint(back).astype(np.uint8), rgb)


def test_grey_luma_matches_rgb_luma():
    grey = np.arange(256, dtype=np.uint8)[None]
    rgb = np.repeat(grey[..., None], 3, axis=2)
    np.testing.assert_allclose(grey_to_luma(grey), rgb_to_ycbcr(rgb)[..., 0], atol=1e-3)
    np.testing.assert_allclose(luma_to_grey(grey_to_luma(grey)), grey, atol=1e-3)


def test_the_degradation_is_bicubic_down_and_up():
    hr = modcrop(picture(51, 37), 3)
    assert hr.size == (51, 36)
    lr = hr.resize((17, 12), Image.BICUBIC).resize((51, 36), Image.BICUBIC)
    assert np.array_equal(np.asarray(degraded_pair(hr, 3)[1]), np.asarray(lr))
