"""The commands as a user runs them: outputs, and clean errors for bad input."""
import json

import numpy as np
import pytest
from PIL import Image

from sr import cli
from sr.imaging import resize
from tests.helpers import (assert_clean_error, model_file, perturbed_model, picture, refine,
                           run_script)


def test_upscale_writes_a_new_file_next_to_nothing_else(tmp_path):
    models = tmp_path / "models"
    model_file(models)
    picture(31, 22).save(tmp_path / "photo.jpg", quality=95)
    for _ in range(2):
        result = run_script("main.py", "upscale", "-i", tmp_path / "photo.jpg",
                            "--models", models, "-o", tmp_path / "out")
        assert result.returncode == 0, result.stderr
    outputs = sorted((tmp_path / "out").iterdir())
    assert len(outputs) == 2 and all(p.name.startswith("photo.") for p in outputs)
    assert Image.open(outputs[0]).size == (62, 44)


def test_upscale_output_is_the_shared_pipeline(tmp_path):
    path = model_file(tmp_path)
    img = picture(27, 19, seed=3)
    img.save(tmp_path / "in.png")
    result = run_script("main.py", "upscale", "-i", tmp_path / "in.png", "--model", path,
                        "-o", tmp_path / "out", "--tile", 8, "--precision", "float32")
    assert result.returncode == 0, result.stderr
    (out,) = (tmp_path / "out").iterdir()
    expected = refine(perturbed_model(), np.asarray(resize(img, (54, 38))), tile=0)
    assert np.array_equal(np.asarray(Image.open(out)), expected)


def test_bad_inputs_give_one_line_and_no_output(tmp_path):
    path = model_file(tmp_path)
    (tmp_path / "text.png").write_text("hello")
    picture(64, 64).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[:len(data) // 3])
    for name, needle in [("missing.png", "no such file"), ("text.png", "not a readable"),
                         ("cut.png", "cut.png")]:
        result = run_script("main.py", "upscale", "-i", tmp_path / name, "--model", path,
                            "-o", tmp_path / "out")
        assert_clean_error(result, name, needle)
        assert not list((tmp_path / "out").glob("*")) if (tmp_path / "out").exists() else True


def test_no_model_is_a_clear_error(tmp_path):
    picture(10, 10).save(tmp_path / "in.png")
    (tmp_path / "empty").mkdir()
    result = run_script("main.py", "upscale", "-i", tmp_path / "in.png",
                        "--models", tmp_path / "empty", "--scale", 3)
    assert_clean_error(result, "no x3 model")


def test_help_explains_every_command():
    helps = [run_script("main.py", command, "--help")
             for command in ("train", "upscale", "eval", "export-onnx")]
    helps.append(run_script("gen_samples.py", "--help"))
    for result in helps:
        assert result.returncode == 0 and "usage:" in result.stdout
        text = " ".join(result.stdout.split())
        assert "(default: None)" not in text and "(default: False)" not in text, text


def test_eval_json_never_replaces_a_picture_or_an_existing_file(tmp_path):
    path = model_file(tmp_path)
    (tmp_path / "pics").mkdir()
    picture(40, 36).save(tmp_path / "pics" / "a.png")
    before = (tmp_path / "pics" / "a.png").read_bytes()
    (tmp_path / "old.json").write_text("keep")

    def evaluate(json_path, *extra):
        return run_script("main.py", "eval", "-i", tmp_path / "pics", "--model", path,
                          "--json", json_path, *extra)
    assert_clean_error(evaluate(tmp_path / "pics" / "a.png", "--overwrite"),
                       "one of the inputs")
    assert_clean_error(evaluate(tmp_path / "old.json"), "already exists")
    assert_clean_error(evaluate(tmp_path / "pics"), "is a folder")
    assert (tmp_path / "pics" / "a.png").read_bytes() == before
    assert (tmp_path / "old.json").read_text() == "keep"
    assert evaluate(tmp_path / "old.json", "--overwrite").returncode == 0
    assert '"mean"' in (tmp_path / "old.json").read_text()


def test_eval_names_an_unreadable_picture_once(tmp_path):
    path = model_file(tmp_path)
    (tmp_path / "pics").mkdir()
    (tmp_path / "pics" / "bad.png").write_text("not a picture")
    result = run_script("main.py", "eval", "-i", tmp_path / "pics", "--model", path)
    assert_clean_error(result, "bad.png: not a readable image")
    assert result.stderr.count("bad.png:") == 1


def test_eval_names_a_picture_too_small_to_score(tmp_path):
    path = model_file(tmp_path, scale=3)
    (tmp_path / "pics").mkdir()
    picture(40, 36).save(tmp_path / "pics" / "big.png")
    picture(17, 40).save(tmp_path / "pics" / "thin.png")  # cropped to 15 px; needs 2*3 + 11
    result = run_script("main.py", "eval", "-i", tmp_path / "pics", "--model", path,
                        "--scale", 3)
    assert_clean_error(result, "thin.png", "15x39 px", "too small to score at x3", "17 px")
    picture(18, 40).save(tmp_path / "pics" / "thin.png")
    assert run_script("main.py", "eval", "-i", tmp_path / "pics", "--model", path,
                      "--scale", 3).returncode == 0


@pytest.mark.parametrize("command", [("eval", "-i", "."), ("export-onnx", "-o", "x.onnx")])
def test_a_model_scale_below_1_is_refused(tmp_path, command):
    result = run_script("main.py", *command, "--scale", 0, cwd=tmp_path)
    kind = "a number" if command[0] == "eval" else "an integer"   # eval takes x2.5 too
    assert result.returncode == 2 and f"the scale must be {kind} >= 1" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "x.onnx").exists()


def test_unwritable_outputs_are_one_line_errors(tmp_path):
    path = model_file(tmp_path)
    (tmp_path / "afile").write_text("in the way")
    (tmp_path / "adir").mkdir()
    assert_clean_error(run_script("main.py", "export-onnx", "--model", path, "-o",
                                  tmp_path / "afile" / "x.onnx"),
                       "afile/x.onnx: cannot write there")
    assert_clean_error(run_script("main.py", "export-onnx", "--model", path, "-o",
                                  tmp_path / "adir", "--overwrite"), "adir: is a folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir", "afile", path.name]


def test_a_refused_file_operation_is_one_line(capsys):
    def main():
        raise PermissionError(13, "Permission denied", "/data/out.png")
    with pytest.raises(SystemExit) as stop:
        cli.run(main)
    assert stop.value.code == 1
    assert capsys.readouterr().err == "error: /data/out.png: Permission denied\n"


def test_an_unknown_option_is_reported_with_its_command_usage():
    result = run_script("main.py", "upscale", "-i", "x.png", "--bogus")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "main.py upscale: error: unrecognized arguments: --bogus" in result.stderr
    assert "usage: main.py upscale" in result.stderr


def test_hidden_files_in_a_folder_are_not_pictures(tmp_path):
    """macOS leaves ._name.png companions on shared drives: not pictures to eval."""
    path = model_file(tmp_path)
    (tmp_path / "pics").mkdir()
    picture(40, 36).save(tmp_path / "pics" / "a.png")
    (tmp_path / "pics" / "._a.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    result = run_script("main.py", "eval", "-i", tmp_path / "pics", "--model", path)
    assert result.returncode == 0, result.stderr
    assert "1 picture in" in result.stdout


def test_eval_json_is_strict_json_and_names_are_unique(tmp_path):
    """Bicubic reproduces a flat picture exactly: an infinite PSNR, which JSON cannot
    hold; two pictures of one stem keep apart by their extensions."""
    path = model_file(tmp_path)
    (tmp_path / "pics").mkdir()
    Image.new("RGB", (40, 36), (120, 80, 60)).save(tmp_path / "pics" / "flat.png")
    picture(40, 36).save(tmp_path / "pics" / "a.png")
    picture(40, 36, seed=1).save(tmp_path / "pics" / "a.bmp")
    result = run_script("main.py", "eval", "-i", tmp_path / "pics", "--model", path,
                        "--json", tmp_path / "out.json")
    assert result.returncode == 0, result.stderr

    def refuse(constant):
        raise AssertionError(f"{constant} is not JSON")
    numbers = json.loads((tmp_path / "out.json").read_text(), parse_constant=refuse)
    rows = {row["image"]: row for row in numbers["images"]}
    assert sorted(rows) == ["a.bmp", "a.png", "flat"]
    assert rows["flat"]["psnr_bicubic"] is None and rows["flat"]["ssim_bicubic"] == 1.0
    assert numbers["mean"]["psnr_bicubic"] is None
    assert rows["a.png"]["psnr"] != rows["a.bmp"]["psnr"]


def test_eval_checks_its_json_target_before_any_work(tmp_path):
    path = model_file(tmp_path)
    (tmp_path / "pics").mkdir()
    picture(40, 36).save(tmp_path / "pics" / "a.png")
    (tmp_path / "afile").write_text("keep")
    for target, said in [(tmp_path / "afile" / "x.json", "afile is a file"),
                         (str(tmp_path / "new") + "/", "names a folder")]:
        result = run_script("main.py", "eval", "-i", tmp_path / "pics", "--model", path,
                            "--json", target)
        assert_clean_error(result, said)
        assert result.stdout == ""   # no table: refused before the evaluation
    assert not (tmp_path / "new").exists() and (tmp_path / "afile").read_text() == "keep"
    assert_clean_error(run_script("main.py", "eval", "-i", "", "--model", path),
                       "an empty folder name")


@pytest.mark.parametrize("name, said", [("foo", "not a device name PyTorch knows"),
                                        ("meta", "this PyTorch cannot use it")])
def test_an_unusable_device_is_one_line(tmp_path, name, said):
    path = model_file(tmp_path)
    (tmp_path / "pics").mkdir()
    picture(40, 36).save(tmp_path / "pics" / "a.png")
    for command in (["eval", "-i", tmp_path / "pics"],
                    ["upscale", "-i", tmp_path / "pics", "-o", tmp_path / "out"]):
        result = run_script("main.py", *command, "--model", path, "--device", name)
        assert_clean_error(result, f"--device {name}: {said}")
    assert not (tmp_path / "out").exists()
