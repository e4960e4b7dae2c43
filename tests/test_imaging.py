import os

import numpy as np
import pytest
from PIL import Image

from sr.errors import UserError
from sr.imaging import (degrade, grey_to_luma, load_image, luma, luma_to_grey, modcrop,
                        rgb_to_ycbcr, save_image, to_rgb, ycbcr_to_rgb)
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


def test_degrade_is_bicubic_down_and_up():
    hr = modcrop(picture(51, 37), 3)
    assert hr.size == (51, 36)
    lr = hr.resize((17, 12), Image.BICUBIC).resize((51, 36), Image.BICUBIC)
    assert np.array_equal(np.asarray(degrade(hr, 3)), np.asarray(lr))


def test_load_applies_exif_orientation(tmp_path):
    img = picture(40, 20)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    img.save(tmp_path / "r.jpg", exif=exif.tobytes())
    assert load_image(tmp_path / "r.jpg").size == (20, 40)


@pytest.mark.parametrize("content, needle", [
    (None, "no such file"),
    (b"this is text, not a picture\n", "not a readable image"),
])
def test_load_errors_name_the_file(tmp_path, content, needle):
    path = tmp_path / "bad.png"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UserError, match=needle) as e:
        load_image(path)
    assert "bad.png" in str(e.value)


def test_truncated_png_is_an_error(tmp_path):
    picture(64, 64).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[:len(data) // 2])
    with pytest.raises(UserError, match="cut.png"):
        load_image(tmp_path / "cut.png")


def test_save_never_replaces_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out.png"
    save_image(picture(8, 8), target)
    before = target.read_bytes()
    with pytest.raises(UserError, match="already exists"):
        save_image(picture(8, 8, seed=1), target)
    assert target.read_bytes() == before
    assert os.listdir(tmp_path) == ["out.png"]


def test_without_hard_links_a_new_file_is_still_never_replaced(tmp_path, monkeypatch):
    def no_links(*_):
        raise PermissionError(1, "Operation not permitted")   # what FAT answers
    monkeypatch.setattr(os, "link", no_links)
    target = tmp_path / "out.png"
    save_image(picture(8, 8), target)
    before = target.read_bytes()
    assert np.array_equal(np.asarray(Image.open(target)), np.asarray(picture(8, 8)))
    with pytest.raises(UserError, match="already exists"):
        save_image(picture(8, 8, seed=1), target)
    assert target.read_bytes() == before
    assert os.listdir(tmp_path) == ["out.png"]


def test_failed_write_leaves_nothing(tmp_path):
    class Broken:
        def save(self, *a, **k):
            raise OSError("disk full")
    with pytest.raises(OSError):
        save_image(Broken(), tmp_path / "x.png")
    assert os.listdir(tmp_path) == []


def test_to_rgb_reads_16_bit_grey_and_cmyk_as_upscale_does(tmp_path):
    """Training, evaluation and gen_samples.py see the picture `main.py upscale` sees:
    Pillow's convert("RGB") would clip 16-bit grey to white."""
    from sr.pictures import read_picture, to_8bit
    grey16 = np.arange(0, 65536, 257, dtype=np.uint16).reshape(16, 16)
    Image.fromarray(grey16).save(tmp_path / "grey16.png")
    got = np.asarray(to_rgb(load_image(tmp_path / "grey16.png")))
    assert np.array_equal(got, np.repeat(to_8bit(grey16)[..., None], 3, axis=2))
    assert got[0, 1, 0] == 1 and got[-1, -1, 0] == 255
    picture(12, 10).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    assert np.array_equal(np.asarray(to_rgb(load_image(tmp_path / "cmyk.jpg"))),
                          read_picture(tmp_path / "cmyk.jpg").colour)
