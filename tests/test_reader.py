"""The one picture reader (sr/pictures.py): kinds, limits, orientation and one-line
errors, the same for every command.  Each picture is made here, tiny."""
from __future__ import annotations

import builtins
import io
import os
import signal
import subprocess

import numpy as np
import pytest
import tifffile
from PIL import Image, ImageCms, ImageOps

from sr.errors import UserError
from sr.picture_files import png_chunk, write_png
from sr.pictures import FLOAT_REFUSED, Picture, load_rgb, read_picture, to_8bit
from tests.helpers import ROOT, assert_clean_error, picture, run_script

SRGB_ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def exif_png(path, pixels: np.ndarray, orientation: int) -> None:
    """A 16-bit PNG (written by write_png) with an eXIf chunk, after IHDR, holding this
    orientation, and an ICC profile."""
    buffer = io.BytesIO()
    write_png(buffer, Picture(pixels, None, SRGB_ICC))
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = buffer.getvalue()
    path.write_bytes(data[:33] + png_chunk(b"eXIf", exif.tobytes()[6:]) + data[33:])


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientations_turn_as_pillow_does(tmp_path, orientation):
    """8-bit (Pillow decodes) and 16-bit (libpng decodes): one turning rule, Pillow's."""
    img = picture(7, 5)
    exif = Image.Exif()
    exif[0x0112] = orientation
    img.save(tmp_path / "o.png", exif=exif)
    want = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "o.png")))
    assert np.array_equal(read_picture(tmp_path / "o.png").colour, want)
    exif_png(tmp_path / "o16.png", np.asarray(img).astype(np.uint16) * 257 + 1, orientation)
    got = read_picture(tmp_path / "o16.png")
    assert got.bits == 16 and got.icc == SRGB_ICC
    assert np.array_equal(got.colour, want.astype(np.uint16) * 257 + 1)
    assert ("applied" in "".join(got.notes)) == (orientation != 1)


def test_invalid_orientation_is_ignored_and_said(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 9
    picture(6, 4).save(tmp_path / "nine.jpg", exif=exif, quality=95)
    got = read_picture(tmp_path / "nine.jpg")
    assert got.size == (6, 4)
    assert got.notes == ["EXIF orientation 9 ignored (invalid: not 1 to 8)"]


def test_16bit_grey_alpha_png_reads_at_full_precision(tmp_path):
    grey = np.arange(35, dtype=np.uint16).reshape(5, 7) * 1000 + 3
    alpha = np.full((5, 7), 40001, np.uint16)
    with open(tmp_path / "ga.png", "wb") as f:
        write_png(f, Picture(grey, alpha, SRGB_ICC))
    got = read_picture(tmp_path / "ga.png")
    assert got.describe() == "grey+alpha 16-bit" and got.notes == []
    assert np.array_equal(got.colour, grey) and np.array_equal(got.alpha, alpha)
    assert got.icc == SRGB_ICC


def test_16bit_png_limit_is_checked_before_decoding(tmp_path, monkeypatch):
    import imagecodecs
    with open(tmp_path / "big.png", "wb") as f:
        write_png(f, Picture(np.zeros((30, 40, 3), np.uint16)))
    monkeypatch.setattr(imagecodecs, "png_decode", lambda *a: pytest.fail("decoded"))
    with pytest.raises(UserError, match="40x30 is 1200 pixels, above the limit of 1000"):
        read_picture(tmp_path / "big.png", max_pixels=1000)


def test_eight_bit_views_agree_with_upscale(tmp_path):
    """Training, evaluation and gen_samples.py see the picture `main.py upscale` sees:
    Pillow's convert("RGB") would clip 16-bit grey to white."""
    grey16 = np.arange(0, 65536, 257, dtype=np.uint16).reshape(16, 16)
    Image.fromarray(grey16).save(tmp_path / "grey16.png")
    got = np.asarray(load_rgb(tmp_path / "grey16.png"))
    assert np.array_equal(got, np.repeat(to_8bit(grey16)[..., None], 3, axis=2))
    assert got[0, 1, 0] == 1 and got[-1, -1, 0] == 255
    picture(12, 10).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    assert np.array_equal(np.asarray(load_rgb(tmp_path / "cmyk.jpg")),
                          read_picture(tmp_path / "cmyk.jpg").colour)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    picture(40, 20).save(tmp_path / "r.jpg", exif=exif.tobytes())
    assert load_rgb(tmp_path / "r.jpg").size == (20, 40)


@pytest.mark.parametrize("content, needle", [
    (None, "bad.png: no such file or folder"),
    (b"this is text, not a picture\n", "bad.png: not a readable image"),
])
def test_errors_name_the_file(tmp_path, content, needle):
    path = tmp_path / "bad.png"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UserError, match=needle):
        load_rgb(path)


@pytest.mark.parametrize("bits", [8, 16])
def test_truncated_png_is_an_error(tmp_path, bits):
    """Pillow's decoder (8 bits) and libpng's (16 bits) both end in one line."""
    with open(tmp_path / "full.png", "wb") as f:
        write_png(f, Picture(np.asarray(picture(64, 64)).astype(f"uint{bits}")))
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[:len(data) // 2])
    with pytest.raises(UserError, match="cut.png: damaged or unsupported image"):
        load_rgb(tmp_path / "cut.png")


def test_a_named_pipe_is_refused_before_open(tmp_path):
    """open() on a pipe with no writer waits forever: the alarm turns that into a failure."""
    os.mkfifo(tmp_path / "p.png")
    old = signal.signal(signal.SIGALRM, lambda *_: pytest.fail("blocked in open()"))
    signal.alarm(5)
    try:
        with pytest.raises(UserError, match="p.png: is a named pipe, not a picture file"):
            read_picture(tmp_path / "p.png")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def test_stdin_is_refused_in_one_line(tmp_path):
    """`-i /dev/stdin` with a pipe on stdin: an error, not a wait for the pipe to end."""
    try:
        result = run_script("main.py", "upscale", "-i", "/dev/stdin", "-o", tmp_path,
                            stdin=subprocess.PIPE, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("blocked reading /dev/stdin")
    assert_clean_error(result, "/dev/stdin: is a named pipe, not a picture file")


def test_a_symlink_loop_is_called_one(tmp_path):
    os.symlink(tmp_path / "b.png", tmp_path / "a.png")
    os.symlink(tmp_path / "a.png", tmp_path / "b.png")
    with pytest.raises(UserError, match="a.png: a loop of symbolic links"):
        read_picture(tmp_path / "a.png")


def test_permission_denied_is_called_so(tmp_path, monkeypatch):
    """As root chmod changes nothing, so open() is made to answer as for a user."""
    picture(4, 4).save(tmp_path / "locked.png")
    real_open = builtins.open

    def refusing_open(file, *args, **kw):
        if str(file).endswith("locked.png"):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kw)
    monkeypatch.setattr(builtins, "open", refusing_open)
    with pytest.raises(UserError, match="locked.png: permission denied$"):
        read_picture(tmp_path / "locked.png")


@pytest.mark.parametrize("shape", [(5, 6, 3), (5, 6)])
def test_float_tiff_gets_the_float_refusal(tmp_path, shape):
    tifffile.imwrite(tmp_path / "f.tif", np.full(shape, 0.5, np.float32),
                     photometric="rgb" if len(shape) == 3 else "minisblack")
    with pytest.raises(UserError, match=f"f.tif: {FLOAT_REFUSED}"):
        read_picture(tmp_path / "f.tif")


def test_gen_samples_says_the_bomb_limit_clearly(tmp_path, capsys):
    import gen_samples
    Image.new("1", (9500, 9500)).save(tmp_path / "bomb.png")     # 90.2 Mpix, 11 kB
    assert gen_samples.read_sizes([tmp_path / "bomb.png"]) == []
    said = capsys.readouterr().err
    assert "above the limit of 89.5 Mpix (a guard against decompression bombs)" in said
    assert "DOS attack" not in said


def test_rotated_16bit_tiff_is_turned(tmp_path):
    """tifffile decodes 16-bit TIFF; its Orientation tag turns it like any other."""
    rgb = np.arange(5 * 7 * 3, dtype=np.uint16).reshape(5, 7, 3) * 300
    tifffile.imwrite(tmp_path / "r.tif", rgb, photometric="rgb",
                     extratags=[(274, "H", 1, 6, True)])        # Orientation: 90 cw
    assert np.array_equal(read_picture(tmp_path / "r.tif").colour, np.rot90(rgb, -1))


def test_reader_modules_import_without_a_cycle():
    """sr.imaging (colour) needs nothing of the reader, and the reader none of it."""
    code = ("import sys; import sr.imaging; assert 'sr.pictures' not in sys.modules; "
            "import sr.pictures; assert 'sr.picture_files' not in sys.modules")
    subprocess.run([os.sys.executable, "-c", code], cwd=ROOT, check=True)
