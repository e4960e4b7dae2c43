"""`main.py upscale` on files and folders: names, formats, never losing or clobbering a
file, bad files, fractional scales."""
from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

import main
from sr.checkpoint import publish_model
from sr.errors import UserError
from tests.helpers import assert_clean_error, perturbed_model, picture, run_script

STAMP = r"\d{4}-\d{2}-\d{2}--\d{2}-\d{2}-\d{2}"


@pytest.fixture
def model(tmp_path):
    return publish_model(tmp_path / "models" / "srcnn_x2.test.safetensors", perturbed_model("9-1-5"), 2)


def upscale(*args) -> int:
    return main.main(["upscale", *map(str, args)])


def names(folder):
    return sorted(p.name for p in folder.iterdir())


def test_default_name_size_and_format(tmp_path, model):
    picture(23, 17).save(tmp_path / "photo.png")
    assert upscale("-i", tmp_path / "photo.png", "--model", model, "-o", tmp_path / "out") == 0
    (out,) = (tmp_path / "out").iterdir()
    assert re.fullmatch(rf"photo\.{STAMP}\.png", out.name)
    assert Image.open(out).size == (46, 34) and Image.open(out).mode == "RGB"
    assert out.stat().st_mode & 0o044 == 0o044, "outputs readable like any new file"


@pytest.mark.parametrize("fmt, pillow", [("jpg", "JPEG"), ("webp", "WEBP"), ("tiff", "TIFF")])
def test_formats_and_suffix(tmp_path, model, fmt, pillow):
    picture(20, 12).save(tmp_path / "a.png")
    assert upscale("-i", tmp_path / "a.png", "--model", model, "-o", tmp_path / "out",
                   "--format", fmt, "--suffix", "_x2") == 0
    (out,) = (tmp_path / "out").iterdir()
    assert out.name == f"a_x2.{'tif' if fmt == 'tiff' else fmt}"
    assert Image.open(out).format == pillow and Image.open(out).size == (40, 24)


def test_folder_with_bad_files(tmp_path, model, capsys):
    """Good pictures are done, bad ones reported on one line each, .txt ignored."""
    folder = tmp_path / "in"
    folder.mkdir()
    picture(16, 16).save(folder / "good1.png")
    picture(18, 14, seed=1).save(folder / "good2.jpg")
    data = (folder / "good2.jpg").read_bytes()
    (folder / "corrupt.jpg").write_bytes(data[:len(data) // 2])
    (folder / "fake.png").write_text("this is not a picture")
    (folder / "notes.txt").write_text("stray")
    status = upscale("-i", folder, "--model", model, "-o", tmp_path / "out", "--suffix", "")
    err = capsys.readouterr().err
    assert status == 1
    assert names(tmp_path / "out") == ["good1.png", "good2.png"]
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 2 and "corrupt.jpg" in errors[0] + errors[1]
    assert "fake.png" in errors[0] + errors[1] and "Traceback" not in err


def test_bad_file_in_a_subprocess_has_no_traceback(tmp_path, model):
    (tmp_path / "x.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    result = run_script("main.py", "upscale", "-i", tmp_path / "x.png", "--model", model,
                        "-o", tmp_path / "out")
    assert_clean_error(result, "x.png")
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_recursive_folders_keep_their_structure_and_globs(tmp_path, model):
    (tmp_path / "in" / "sub").mkdir(parents=True)
    picture(12, 10).save(tmp_path / "in" / "top.png")
    picture(12, 10, seed=2).save(tmp_path / "in" / "sub" / "deep.png")
    assert upscale("-i", tmp_path / "in", "-r", "--model", model, "-o", tmp_path / "out",
                   "--suffix", "") == 0
    assert (tmp_path / "out" / "top.png").exists()
    assert (tmp_path / "out" / "sub" / "deep.png").exists()
    assert upscale("-i", tmp_path / "in" / "*.png", "--model", model, "-o",
                   tmp_path / "globbed", "--suffix", "") == 0
    assert names(tmp_path / "globbed") == ["top.png"]
    picture(12, 10, seed=3).save(tmp_path / "in" / "sub" / "top.png")   # same name, deeper
    assert upscale("-i", tmp_path / "*", "-r", "--model", model, "-o", tmp_path / "trees",
                   "--suffix", "") == 0   # a folder matched by a pattern keeps its name
    assert (tmp_path / "trees" / "in" / "top.png").exists()
    assert (tmp_path / "trees" / "in" / "sub" / "top.png").exists()
    assert (tmp_path / "trees" / "in" / "sub" / "deep.png").exists()
    assert upscale("-i", str(tmp_path / "in") + "/**/*.png", "-r", "--model", model, "-o",
                   tmp_path / "deep", "--suffix", "") == 0   # kept from the pattern's start
    assert names(tmp_path / "deep") == ["sub", "top.png"]
    assert names(tmp_path / "deep" / "sub") == ["deep.png", "top.png"]


def test_same_stem_twice_gets_two_names(tmp_path, model):
    picture(10, 10).save(tmp_path / "p.png")
    picture(10, 10, seed=1).save(tmp_path / "p.jpg")
    assert upscale("-i", tmp_path / "p.png", tmp_path / "p.jpg", "--model", model,
                   "-o", tmp_path / "out", "--suffix", "") == 0
    assert names(tmp_path / "out") == ["p-jpg.png", "p.png"]


def test_never_replaces_an_input(tmp_path, model, capsys):
    source = tmp_path / "keep.png"
    picture(14, 14).save(source)
    before = source.read_bytes()
    for extra in ([], ["--overwrite"]):
        status = upscale("-i", source, "--model", model, "-o", tmp_path, "--suffix", "",
                         *extra)
        assert status == 1 and source.read_bytes() == before
    assert "inputs are never replaced" in capsys.readouterr().err


def test_existing_outputs_overwrite_and_skip(tmp_path, model, capsys):
    picture(14, 14).save(tmp_path / "a.png")
    out = tmp_path / "out"
    common = ["-i", tmp_path / "a.png", "--model", model, "-o", out, "--suffix", "_big"]
    assert upscale(*common) == 0
    (out / "a_big.png").write_bytes(b"marker")
    assert upscale(*common) == 1                                   # refused, kept
    assert (out / "a_big.png").read_bytes() == b"marker"
    assert upscale(*common, "--skip-existing") == 0
    assert (out / "a_big.png").read_bytes() == b"marker"
    assert "skipped" in capsys.readouterr().out
    assert upscale(*common, "--overwrite") == 0
    assert Image.open(out / "a_big.png").size == (28, 28)


def test_skip_existing_finds_time_stamped_outputs(tmp_path, model, capsys):
    picture(14, 14).save(tmp_path / "a.png")
    picture(14, 14, seed=1).save(tmp_path / "b.png")
    out = tmp_path / "out"
    assert upscale("-i", tmp_path / "a.png", "--model", model, "-o", out) == 0
    assert upscale("-i", tmp_path, "--model", model, "-o", out, "--skip-existing") == 0
    assert len(names(out)) == 2 and "1 skipped" in capsys.readouterr().out


@pytest.mark.parametrize("fmt", ["png", "jpg"])
def test_interrupted_write_leaves_nothing(tmp_path, model, monkeypatch, fmt):
    """Ctrl-C while the file is being written: no output, no temporary file."""
    import sr.picture_files
    picture(30, 30).save(tmp_path / "a.png")

    def interrupt_after(write):
        def writer(self_or_file, *args, **kwargs):
            write(self_or_file, *args, **kwargs)  # bytes are in the temporary file...
            raise KeyboardInterrupt               # ...when the user presses Ctrl-C
        return writer

    if fmt == "png":     # our PNG writer
        monkeypatch.setattr(sr.picture_files, "write_png",
                            interrupt_after(sr.picture_files.write_png))
    else:                # Pillow's writers
        monkeypatch.setattr(Image.Image, "save", interrupt_after(Image.Image.save))
    with pytest.raises(KeyboardInterrupt):
        upscale("-i", tmp_path / "a.png", "--model", model, "-o", tmp_path / "out",
                "--format", fmt)
    assert names(tmp_path / "out") == []


def test_tile_does_not_change_the_file(tmp_path, model):
    picture(37, 29, seed=5).save(tmp_path / "odd.png")
    for tile in (0, 7, 16, 10_000):
        assert upscale("-i", tmp_path / "odd.png", "--model", model, "-o", tmp_path / "out",
                       "--suffix", f"_{tile}", "--tile", tile) == 0
    pixels = {np.asarray(Image.open(p)).tobytes() for p in (tmp_path / "out").iterdir()}
    assert len(pixels) == 1


def test_a_fractional_scale_is_the_x2_models_result_shrunk(tmp_path, capsys):
    """x1.5 runs the x2 network at its own scale (the enlargement it was trained to
    refine), x2.5 runs it again on that 8-bit result, not the x3 one; the result is
    shrunk to size: Lanczos below x2, bicubic above."""
    from sr.checkpoint import load_model
    from tests.helpers import refine
    models = tmp_path / "models"
    publish_model(models / "srcnn_x2.t.safetensors", perturbed_model("9-1-5"), 2)
    publish_model(models / "srcnn_x3.t.safetensors", perturbed_model("9-1-5", seed=1), 3)
    model = load_model(models / "srcnn_x2.t.safetensors")[0]
    small = picture(20, 11)
    small.save(tmp_path / "a.png")
    for scale, size, passes, shrink in [("1.5", (30, 16), 1, Image.LANCZOS),
                                        ("2.5", (50, 28), 2, Image.BICUBIC)]:
        assert upscale("-i", tmp_path / "a.png", "--models", models, "--scale", scale,
                       "-o", tmp_path / scale, "--suffix", "", "--precision", "float32") == 0
        twice = ", twice" if passes == 2 else ""
        assert f"a.png: x2 clean model{twice}, shrunk to x{scale}\n" in \
            capsys.readouterr().out
        expected = small
        for _ in range(passes):
            bicubic = expected.resize((expected.width * 2, expected.height * 2), Image.BICUBIC)
            expected = Image.fromarray(refine(model, np.asarray(bicubic)))
        got = np.asarray(Image.open(tmp_path / scale / "a.png")).astype(int)
        assert np.abs(got - np.asarray(expected.resize(size, shrink))).max() <= passes   # ORT


def test_scale_below_one_is_refused(tmp_path, model):
    with pytest.raises(SystemExit):
        main.parse_args(["upscale", "-i", "x.png", "--scale", "0.5"])


def test_pixel_limit(tmp_path, model, capsys):
    picture(100, 80).save(tmp_path / "big.png")
    assert upscale("-i", tmp_path / "big.png", "--model", model, "-o", tmp_path / "out",
                   "--max-pixels", 5000) == 1
    assert "--max-pixels" in capsys.readouterr().err
    assert upscale("-i", tmp_path / "big.png", "--model", model, "-o", tmp_path / "out",
                   "--max-pixels", 8000) == 0


def test_missing_input_is_one_line(tmp_path, model):
    result = run_script("main.py", "upscale", "-i", tmp_path / "nope.png", "--model", model)
    assert_clean_error(result, "nope.png", "no such file")


def test_cpu_path_does_not_import_torch(tmp_path, model):
    """PyTorch costs seconds and ~700 MB just to import: the CPU path never needs it."""
    import subprocess
    import sys
    from tests.helpers import ROOT
    picture(12, 12).save(tmp_path / "a.png")
    code = ("import sys, main\n"
            f"status = main.main(['upscale', '-i', {str(tmp_path / 'a.png')!r}, '--model', "
            f"{str(model)!r}, '-o', {str(tmp_path / 'out')!r}, '--cpu'])\n"
            "print('torch' in sys.modules, status)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.stdout.strip().splitlines()[-1] == "False 0", result.stderr


def test_output_size_is_checked_before_any_work(tmp_path, model):
    """--scale 1e9 on one pixel used to count 1.5e13 tiles, for ever (now above the
    largest scale); x64 of 300x300 px is still refused at once, in one line."""
    picture(300, 300).save(tmp_path / "one.png")
    result = run_script("main.py", "upscale", "--cpu", "-i", tmp_path / "one.png", "--models",
                        model.parent, "--scale", "64", "-o", tmp_path / "out", timeout=60)
    assert_clean_error(result, "one.png", "19200x19200", "--max-output-pixels")
    assert not (tmp_path / "out").exists()


def test_output_pixel_limit(tmp_path, model, capsys):
    picture(3, 2).save(tmp_path / "small.png")
    image = picture(4, 2)
    exif = image.getexif()
    exif[0x0112] = 6                                   # shown rotated: 2 wide, 4 high
    image.save(tmp_path / "turned.jpg", exif=exif)
    common = ["--models", model.parent, "-o", tmp_path / "out"]
    assert upscale("-i", tmp_path / "small.png", *common, "--max-output-pixels", 20) == 1
    assert "6x4, 24 pixels, above the limit of 20 pixels" in capsys.readouterr().err
    assert upscale("-i", tmp_path / "turned.jpg", *common, "--max-output-pixels", 20) == 1
    assert "4x8, 32 pixels" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    assert upscale("-i", tmp_path / "small.png", *common, "--max-output-pixels", 24) == 0


def test_result_too_large_for_its_format_is_refused_before_work(tmp_path, model, capsys):
    picture(300, 1).save(tmp_path / "strip.png")
    assert upscale("-i", tmp_path / "strip.png", "--models", model.parent, "--scale", 64,
                   "--format", "webp", "-o", tmp_path / "out") == 1
    assert "19200x64 is too large for --format webp" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("option, value", [("--quality", -5), ("--quality", 101),
                                           ("--quality", 500), ("--max-pixels", -1),
                                           ("--max-output-pixels", -1)])
def test_out_of_range_numbers_are_refused_when_parsed(option, value, capsys):
    with pytest.raises(SystemExit):
        main.parse_args(["upscale", "-i", "x.png", "--format", "webp", option, str(value)])
    assert f"argument {option}: must be" in capsys.readouterr().err
    for fine in ("0", "100"):
        assert getattr(main.parse_args(["upscale", "-i", "x.png", option, fine]),
                       option[2:].replace("-", "_")) == int(fine)


def test_small_pixel_limit_is_said_in_pixels(tmp_path, model, capsys):
    picture(20, 20).save(tmp_path / "a.png")
    assert upscale("-i", tmp_path / "a.png", "--model", model, "-o", tmp_path / "out",
                   "--max-pixels", 10) == 1
    assert "20x20 is 400 pixels, above the limit of 10 pixels" in capsys.readouterr().err


def test_output_folder_that_is_a_file_is_said_once(tmp_path, model):
    picture(8, 8).save(tmp_path / "ok.png")
    (tmp_path / "afile").write_text("keep")
    for out, said in [("afile", "afile: is a file"), ("afile/sub", "afile is a file")]:
        with pytest.raises(UserError, match=f"-o .*{said}, not a folder"):
            upscale("-i", tmp_path / "ok.png", "--model", model, "-o", tmp_path / out)
    assert (tmp_path / "afile").read_text() == "keep"


def test_results_under_the_output_folder_are_never_read_again(tmp_path, model, capsys):
    """A pattern, like a folder, leaves out what is under -o: earlier results."""
    shots = tmp_path / "shots"
    shots.mkdir()
    picture(12, 10).save(shots / "a.png")
    assert upscale("-i", shots / "*.png", "--model", model, "-o", shots / "big",
                   "--suffix", "_x2") == 0
    assert upscale("-i", str(shots) + "/**/*.png", "-r", "--model", model,
                   "-o", shots / "big", "--suffix", "_x2", "--overwrite") == 0
    assert names(shots / "big") == ["a_x2.png"]   # not big/big/a_x2_x2.png
    capsys.readouterr()
    assert upscale("-i", shots / "big" / "*.png", "--model", model, "-o", shots / "big",
                   "--suffix", "_x2") == 1
    assert "no pictures match outside -o" in capsys.readouterr().err
    with pytest.raises(UserError, match="is under -o .*never read"):
        upscale("-i", shots / "big", "--model", model, "-o", shots / "big")
    assert names(shots / "big") == ["a_x2.png"]


def test_an_empty_input_name_is_not_the_current_folder(tmp_path, model, capsys,
                                                        monkeypatch):
    monkeypatch.chdir(tmp_path)
    picture(8, 8).save(tmp_path / "here.png")
    assert upscale("-i", "", "--model", model, "-o", tmp_path / "out") == 1
    assert '-i "": an empty name' in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
