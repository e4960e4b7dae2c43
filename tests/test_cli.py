"""The commands as a user runs them: outputs, and clean errors for bad input."""
import numpy as np
from PIL import Image

from sr.imaging import resize
from sr.upscaling import refine
from tests.helpers import assert_clean_error, model_file, perturbed_model, picture, run_script


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
                        "-o", tmp_path / "out", "--tile", 8)
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
    result = run_script("main.py", "upscale", "-i", tmp_path / "in.png",
                        "--models", tmp_path / "none", "--scale", 3)
    assert_clean_error(result, "no x3 model")


def test_help_explains_every_command():
    for command in ("train", "upscale", "eval", "export-onnx"):
        result = run_script("main.py", command, "--help")
        assert result.returncode == 0 and "usage:" in result.stdout
