"""Every image kind through `main.py upscale`: alpha, grey, 16-bit, palette, CMYK,
EXIF rotation, ICC profiles.  Each fixture picture is made here."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageCms

import main
from sr.checkpoint import publish_model
from sr.errors import UserError
from sr.imaging import resize
from sr.picture_files import write_png, write_tiff16
from sr.pictures import Picture, read_picture
from tests.helpers import perturbed_model, picture, refine, run_script

SRGB_ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


@pytest.fixture
def model(tmp_path):
    return publish_model(tmp_path / "models" / "srcnn_x2.test.safetensors", perturbed_model("9-1-5"), 2)


def run(tmp_path, model, source, *extra, capsys=None):
    """Upscale one file x2 into tmp_path/out; (output path, stdout).  In float32: these
    tests compare each kind of picture with the PyTorch pipeline exactly (bfloat16,
    which auto picks on CPUs with the units, has its own tests: test_precision.py)."""
    out = tmp_path / "out"
    status = main.main(["upscale", "-i", str(source), "--model", str(model), "-o", str(out),
                        "--suffix", "", "--precision", "float32", *map(str, extra)])
    assert status == 0
    (result,) = out.iterdir()
    return result, capsys.readouterr().out if capsys else ""


def rgb_reference(img: Image.Image, size) -> np.ndarray:
    return refine(perturbed_model("9-1-5"), np.asarray(resize(img.convert("RGB"), size)), 0)


def test_rgba_alpha_is_bicubic_and_hidden_colour_kept(tmp_path, model):
    base = picture(24, 18)
    alpha = Image.new("L", base.size, 255)
    alpha.paste(0, (0, 0, 12, 18))                      # left half fully transparent
    rgba = base.copy()
    rgba.putalpha(alpha)
    rgba.save(tmp_path / "a.png")
    out, _ = run(tmp_path, model, tmp_path / "a.png")
    result = Image.open(out)
    assert result.mode == "RGBA"
    assert np.array_equal(np.asarray(result.getchannel("A")), np.asarray(resize(alpha, (48, 36))))
    # the colour under transparent pixels is the upscaled colour, not black
    assert np.array_equal(np.asarray(result.convert("RGB")), rgb_reference(base, (48, 36)))


def test_la_stays_grey_with_alpha(tmp_path, model):
    grey = picture(20, 14).convert("L")
    la = Image.merge("LA", (grey, Image.new("L", grey.size, 128)))
    la.save(tmp_path / "la.png")
    out, _ = run(tmp_path, model, tmp_path / "la.png")
    assert Image.open(out).mode == "LA" and Image.open(out).size == (40, 28)


def test_grey_goes_through_the_network_as_grey(tmp_path, model):
    grey = picture(21, 15).convert("L")
    grey.save(tmp_path / "g.png")
    out, _ = run(tmp_path, model, tmp_path / "g.png")
    result = Image.open(out)
    assert result.mode == "L"
    want = refine(perturbed_model("9-1-5"), np.asarray(resize(grey, (42, 30))), 0)
    assert np.array_equal(np.asarray(result), want)


def test_16bit_grey_png_keeps_16_bits(tmp_path, model):
    values = (np.asarray(picture(19, 13).convert("L")).astype(np.uint16) * 257
              + np.arange(13 * 19).reshape(13, 19).astype(np.uint16) % 200)
    Image.fromarray(values).save(tmp_path / "scan.png")
    out, _ = run(tmp_path, model, tmp_path / "scan.png")
    result = read_picture(out)
    assert result.bits == 16 and result.grey and result.size == (38, 26)
    assert (result.colour % 257 != 0).mean() > 0.5, "low bytes carry information"
    eight = refine(perturbed_model("9-1-5"), np.asarray(resize(Image.fromarray(
        (values // 257).astype(np.uint8)), (38, 26))), 0)
    assert np.abs(result.colour / 257.0 - eight).mean() < 1.0


@pytest.mark.parametrize("writer, name", [(write_png, "rgb16.png"), (write_tiff16, "rgb16.tif")])
def test_16bit_rgb_png_and_tiff_keep_16_bits(tmp_path, model, writer, name):
    rgb = np.asarray(picture(17, 12)).astype(np.uint16) * 257 + 77
    with open(tmp_path / name, "wb") as f:
        writer(f, Picture(rgb, None, SRGB_ICC))
    assert read_picture(tmp_path / name).colour.tobytes() == rgb.tobytes()   # read exactly
    fmt = "tiff" if name.endswith("tif") else "png"
    out, _ = run(tmp_path, model, tmp_path / name, "--format", fmt)
    result = read_picture(out)
    assert result.bits == 16 and not result.grey and result.size == (34, 24)
    assert result.icc == SRGB_ICC
    assert (result.colour % 257 != 0).mean() > 0.5


def test_16bit_grey_alpha_tiff_is_read_back(tmp_path, model):
    """Pillow cannot open such a TIFF, the kind upscale writes for one; tifffile can."""
    grey = np.asarray(picture(12, 9).convert("L")).astype(np.uint16) * 257 + 3
    alpha = np.full((9, 12), 40000, np.uint16)
    with open(tmp_path / "ga16.tif", "wb") as f:
        write_tiff16(f, Picture(grey, alpha, SRGB_ICC))
    source = read_picture(tmp_path / "ga16.tif")
    assert source.colour.tobytes() == grey.tobytes() and source.icc == SRGB_ICC
    assert source.alpha.tobytes() == alpha.tobytes()
    out, _ = run(tmp_path, model, tmp_path / "ga16.tif", "--format", "tiff")
    result = read_picture(out)
    assert result.describe() == "grey+alpha 16-bit" and result.size == (24, 18)
    assert (result.alpha == 40000).all()


def test_a_damaged_tiff_is_one_line_without_warnings(tmp_path, model):
    (tmp_path / "bad.tif").write_bytes(b"II*\x00" + bytes(range(60)))
    result = run_script("main.py", "upscale", "-i", tmp_path / "bad.tif", "--model", model,
                        "-o", tmp_path / "out")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"error: {tmp_path / 'bad.tif'}: not a readable "
                                          f"image (not a picture, or a format Pillow cannot "
                                          f"read)"], result.stderr


def test_16bit_rgba_png_alpha_kept(tmp_path, model):
    rgb = np.asarray(picture(10, 8)).astype(np.uint16) * 257
    alpha = np.full((8, 10), 40000, np.uint16)
    with open(tmp_path / "rgba16.png", "wb") as f:
        write_png(f, Picture(rgb, alpha))
    out, _ = run(tmp_path, model, tmp_path / "rgba16.png")
    result = read_picture(out)
    assert result.bits == 16 and (result.alpha == 40000).all()


def test_palette_is_converted_and_said(tmp_path, model, capsys):
    picture(20, 16).convert("P", palette=Image.Palette.ADAPTIVE, colors=32).save(
        tmp_path / "p.png")
    out, said = run(tmp_path, model, tmp_path / "p.png", capsys=capsys)
    assert Image.open(out).mode == "RGB" and "palette" in said


def test_palette_with_transparency_keeps_alpha(tmp_path, model, capsys):
    img = picture(20, 16).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    img.save(tmp_path / "pt.png", transparency=0)
    out, said = run(tmp_path, model, tmp_path / "pt.png", capsys=capsys)
    assert Image.open(out).mode == "RGBA" and "palette" in said


def test_cmyk_is_converted_and_said(tmp_path, model, capsys):
    picture(20, 16).convert("CMYK").save(tmp_path / "print.jpg", quality=95)
    out, said = run(tmp_path, model, tmp_path / "print.jpg", capsys=capsys)
    assert Image.open(out).mode == "RGB" and "CMYK" in said


def test_exif_rotation_comes_out_upright(tmp_path, model, capsys):
    wide = picture(30, 20)
    exif = Image.Exif()
    exif[0x0112] = 6                                     # rotate 90 degrees clockwise
    wide.save(tmp_path / "camera.jpg", exif=exif, quality=95)
    out, said = run(tmp_path, model, tmp_path / "camera.jpg", capsys=capsys)
    assert Image.open(out).size == (40, 60) and "orientation" in said


@pytest.mark.parametrize("fmt", ["png", "jpg", "webp", "tiff"])
def test_icc_profile_is_carried(tmp_path, model, fmt):
    picture(16, 12).save(tmp_path / "tagged.jpg", icc_profile=SRGB_ICC, quality=95)
    out, _ = run(tmp_path, model, tmp_path / "tagged.jpg", "--format", fmt)
    assert Image.open(out).info.get("icc_profile") == SRGB_ICC


def test_jpeg_with_alpha_becomes_png(tmp_path, model, capsys):
    rgba = picture(12, 12).convert("RGBA")
    rgba.save(tmp_path / "t.png")
    out, said = run(tmp_path, model, tmp_path / "t.png", "--format", "jpg", capsys=capsys)
    assert out.suffix == ".png" and Image.open(out).mode == "RGBA" and "PNG instead" in said


def test_bilevel_and_32bit_modes(tmp_path, model):
    picture(12, 12).convert("1").save(tmp_path / "bw.png")
    out, _ = run(tmp_path, model, tmp_path / "bw.png")
    assert Image.open(out).mode == "L"
    buffer = io.BytesIO()
    Image.fromarray(np.full((9, 9), 70000, np.int32)).save(buffer, "TIFF")
    assert read_picture_bytes(tmp_path, buffer.getvalue()).bits == 16
    buffer = io.BytesIO()
    Image.fromarray(np.full((9, 9), 0.5, np.float32)).save(buffer, "TIFF")
    with pytest.raises(UserError, match="32-bit float pictures are not supported"):
        read_picture_bytes(tmp_path, buffer.getvalue())


def read_picture_bytes(tmp_path, data: bytes) -> Picture:
    path = tmp_path / "i32.tif"
    path.write_bytes(data)
    return read_picture(path)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_png_writer_round_trip(tmp_path, dtype, channels):
    """Every PNG kind written (libpng) reads back exactly, ICC profile included."""
    rng = np.random.default_rng(channels)
    top = np.iinfo(dtype).max
    colour = rng.integers(0, top, (300, 7) if channels < 3 else (300, 7, 3), dtype=dtype,
                          endpoint=True)
    alpha = rng.integers(0, top, (300, 7), dtype=dtype, endpoint=True) \
        if channels in (2, 4) else None
    for level in (0, 1, 9):
        path = tmp_path / f"w{level}.png"
        with open(path, "wb") as f:
            write_png(f, Picture(colour, alpha, SRGB_ICC), level)
        back = read_picture(path)
        assert back.colour.dtype == dtype and np.array_equal(back.colour, colour)
        assert (back.alpha is None) == (alpha is None)
        assert alpha is None or np.array_equal(back.alpha, alpha)
        assert back.icc == SRGB_ICC
