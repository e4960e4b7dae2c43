"""upscale chooses the model by the JPEG artifact level (--denoise, or auto from the
file's quantisation tables), and --scale 1 removes artifacts only where there are some."""
from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

from sr.checkpoint import load_model, publish_model
from sr.jpeg import training_qualities
from sr.model_files import read_weights
from tests.helpers import assert_clean_error, perturbed_model, picture, refine, run_script


def jpeg_model(folder, scale: int, level: int, seed: int):
    """A model file trained (in its metadata) for JPEG level `level` (0: clean)."""
    jpeg = list(training_qualities(level)) if level else None
    return publish_model(folder / f"srcnn_x{scale}_l{level}.safetensors",
                         perturbed_model("9-1-5", seed), scale,
                         degradation={"resize": "bicubic", "jpeg": jpeg})


@pytest.fixture
def models(tmp_path):
    """x2 models for the clean case and levels 2 and 3, x1 for level 3."""
    folder = tmp_path / "models"
    for scale, level in ((2, 0), (2, 2), (2, 3), (1, 3)):
        jpeg_model(folder, scale, level, seed=10 * scale + level)
    return folder


@pytest.fixture
def pictures(tmp_path):
    """q75 (level 2), q40 (level 3) and q98 (level 0) JPEGs and a PNG of one picture."""
    img = picture(40, 24)
    for q in (75, 40, 98):
        img.save(tmp_path / f"q{q}.jpg", quality=q)
    img.save(tmp_path / "clean.png")
    return tmp_path


def upscale(*args):
    return run_script("main.py", "upscale", *map(str, args))


def expected(model_path, source, scale: int) -> np.ndarray:
    """What the chosen model makes of the file (PyTorch, float32)."""
    model = load_model(model_path)[0]
    img = Image.open(source).convert("RGB")
    bicubic = img.resize((img.width * scale, img.height * scale), Image.BICUBIC)
    return refine(model, np.asarray(bicubic)).astype(int)


def written(folder, stem: str) -> np.ndarray:
    (path,) = folder.glob(f"{stem}.*")
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


def test_auto_picks_each_files_level_and_says_so(pictures, models):
    out = pictures / "out"
    result = upscale("-i", *(pictures / n for n in ("q75.jpg", "q40.jpg", "q98.jpg",
                                                    "clean.png")),
                     "--models", models, "-o", out, "--precision", "float32")
    assert result.returncode == 0, result.stderr
    said = result.stdout
    assert "q75.jpg: JPEG quality ≈ 75 -> x2 model for JPEG level 2" in said
    assert "q40.jpg: JPEG quality ≈ 40 -> x2 model for JPEG level 3" in said
    assert "q98.jpg: JPEG quality ≈ 98 -> x2 clean model" in said
    assert "clean.png: " not in said.replace("clean.png ->", "")   # no JPEG line
    for stem, level in (("q75", 2), ("q40", 3), ("q98", 0), ("clean", 0)):
        source = next(pictures.glob(f"{stem}.*"))
        want = expected(models / f"srcnn_x2_l{level}.safetensors", source, 2)
        assert np.abs(written(out, stem) - want).max() <= 1, stem   # ORT vs PyTorch


def test_denoise_overrides_the_estimate(pictures, models):
    out = pictures / "out"
    assert upscale("-i", pictures / "clean.png", "--denoise", 2, "--models", models,
                   "-o", out, "--precision", "float32").returncode == 0
    want = expected(models / "srcnn_x2_l2.safetensors", pictures / "clean.png", 2)
    assert np.abs(written(out, "clean") - want).max() <= 1
    assert upscale("-i", pictures / "q40.jpg", "--denoise", "off", "--models", models,
                   "-o", out, "--precision", "float32").returncode == 0
    want = expected(models / "srcnn_x2_l0.safetensors", pictures / "q40.jpg", 2)
    assert np.abs(written(out, "q40") - want).max() <= 1


def test_a_level_without_a_model_falls_back_to_the_clean_one_under_auto(pictures, models):
    (models / "srcnn_x2_l2.safetensors").unlink()
    result = upscale("-i", pictures / "q75.jpg", "--models", models, "-o", pictures / "o")
    assert result.returncode == 0, result.stderr
    assert "JPEG quality ≈ 75 -> x2 clean model (none for JPEG level 2)" in result.stdout
    result = upscale("-i", pictures / "q75.jpg", "--denoise", 2, "--models", models,
                     "-o", pictures / "o2")
    assert_clean_error(result, "no x2 model for JPEG level 2", "--jpeg 60-90")
    assert not (pictures / "o2").exists()


@pytest.mark.parametrize("scale, said", [(2, "then the x2 one"), (1, "twice")])
def test_the_worst_jpegs_get_level_3s_x1_model_first(pictures, models, scale, said):
    """Level 4 (quality 20 and below): level 3's x1 model cleans the picture at its
    own size, then level 3's model of the scale runs on that 8-bit result."""
    picture(40, 24).save(pictures / "q12.jpg", quality=12)
    out = pictures / "out"
    result = upscale("-i", pictures / "q12.jpg", "--scale", scale, "--models", models,
                     "-o", out, "--precision", "float32")
    assert result.returncode == 0, result.stderr
    assert f"quality ≈ 12 -> JPEG level 4: the x1 model for level 3, {said}" in result.stdout
    cleaned = expected(models / "srcnn_x1_l3.safetensors", pictures / "q12.jpg", 1)
    Image.fromarray(cleaned.astype(np.uint8)).save(pictures / "cleaned.png")
    want = expected(models / f"srcnn_x{scale}_l3.safetensors", pictures / "cleaned.png", scale)
    one_pass = expected(models / f"srcnn_x{scale}_l3.safetensors", pictures / "q12.jpg", scale)
    assert np.abs(written(out, "q12") - want).max() <= 2   # ORT vs PyTorch, twice
    assert np.abs(want - one_pass).max() > 2
    if scale == 2:   # without an x1 model for level 3: level 3's model alone
        (models / "srcnn_x1_l3.safetensors").unlink()
        result = upscale("-i", pictures / "q12.jpg", "--models", models, "-o", out / "one",
                         "--precision", "float32")
        assert "JPEG quality ≈ 12 -> x2 model for JPEG level 3" in result.stdout
        assert np.abs(written(out / "one", "q12") - one_pass).max() <= 1


@pytest.mark.parametrize("scale", [3, 4])
def test_above_x2_a_levels_x2_model_runs_twice(pictures, models, scale):
    """JPEG levels ship x1 and x2 models: x3 and x4 are the x2 model on its own 8-bit
    result, the x4 result shrunk to x3 with bicubic."""
    out = pictures / "out"
    result = upscale("-i", pictures / "q75.jpg", "--scale", scale, "--models", models,
                     "-o", out, "--precision", "float32")
    assert result.returncode == 0, result.stderr
    shrunk = ", shrunk to x3" if scale == 3 else ""
    assert f"quality ≈ 75 -> x2 model for JPEG level 2, twice{shrunk}\n" in result.stdout
    model = models / "srcnn_x2_l2.safetensors"
    once = expected(model, pictures / "q75.jpg", 2)
    Image.fromarray(once.astype(np.uint8)).save(pictures / "once.png")
    want = Image.fromarray(expected(model, pictures / "once.png", 2).astype(np.uint8))
    want = np.asarray(want.resize((40 * scale, 24 * scale), Image.BICUBIC)).astype(int)
    assert np.abs(written(out, "q75") - want).max() <= 2   # ORT vs PyTorch, twice
    bicubic = np.asarray(Image.open(pictures / "q75.jpg").convert("RGB").resize(
        (40 * scale, 24 * scale), Image.BICUBIC)).astype(int)
    assert np.abs(want - bicubic).max() > 2


def test_a_level_4_model_of_the_scale_runs_alone(pictures, models):
    """An x1 model of level 4's own serves x1 in one pass; x2, without one, still gets
    two passes of level 3's models."""
    jpeg_model(models, 1, 4, seed=7)
    picture(40, 24).save(pictures / "q12.jpg", quality=12)
    out = pictures / "out"
    result = upscale("-i", pictures / "q12.jpg", "--scale", 1, "--models", models, "-o", out,
                     "--precision", "float32")
    assert "JPEG quality ≈ 12 -> x1 model for JPEG level 4" in result.stdout
    want = expected(models / "srcnn_x1_l4.safetensors", pictures / "q12.jpg", 1)
    assert np.abs(written(out, "q12") - want).max() <= 1
    result = upscale("-i", pictures / "q12.jpg", "--models", models, "-o", out / "x2")
    assert "-> JPEG level 4: the x1 model for level 3, then the x2 one" in result.stdout


def test_scale_1_removes_artifacts_of_a_jpeg_at_its_size(pictures, models):
    out = pictures / "out"
    result = upscale("-i", pictures / "q40.jpg", "--scale", 1, "--models", models, "-o", out,
                     "--precision", "float32")
    assert result.returncode == 0, result.stderr
    assert "-> x1 model for JPEG level 3" in result.stdout
    want = expected(models / "srcnn_x1_l3.safetensors", pictures / "q40.jpg", 1)
    got = written(out, "q40")
    assert got.shape == (24, 40, 3) and np.abs(got - want).max() <= 1


@pytest.mark.parametrize("name, why", [
    ("clean.png", "not a JPEG, so no JPEG artifacts"),
    ("q98.jpg", "JPEG quality ≈ 98, so too few JPEG artifacts"),
    ("q93.jpg", "JPEG quality ≈ 93, so too few JPEG artifacts")])   # above X1_HIGHEST_QUALITY
def test_scale_1_on_a_picture_without_artifacts_is_refused(pictures, models, name, why):
    picture(40, 24).save(pictures / "q93.jpg", quality=93)
    jpeg_model(models, 1, 1, seed=5)   # a level-1 x1 model is there
    result = upscale("-i", pictures / name, "--scale", 1, "--models", models,
                     "-o", pictures / "out")
    assert_clean_error(result, why, "to remove at --scale 1")
    assert not any((pictures / "out").glob("*.*")) if (pictures / "out").exists() else True


def test_scale_1_without_an_x1_model_for_the_level_is_refused(pictures, models):
    result = upscale("-i", pictures / "q75.jpg", "--scale", 1, "--models", models,
                     "-o", pictures / "out")
    assert_clean_error(result, "no x1 model for JPEG level 2", "--scale 1")


@pytest.mark.parametrize("args, needle", [
    (("--scale", 1, "--denoise", "off"), "nothing to do"),
    (("--denoise", 2, "--model", "MODEL"), "--model and --denoise"),
    (("--scale", 1, "--model", "MODEL"), "model is for x2, not x1"),
])
def test_contradictions_are_refused_before_any_work(pictures, models, args, needle):
    args = [models / "srcnn_x2_l0.safetensors" if a == "MODEL" else a for a in args]
    result = upscale("-i", pictures / "q75.jpg", *args, "--models", models,
                     "-o", pictures / "out")
    assert_clean_error(result, needle)
    assert not (pictures / "out").exists()


@pytest.mark.parametrize("jpeg", ['"high"', "[90, 10]", "[0, 50]", "[1.5, 50]", "[1, 2, 3]"])
def test_a_model_claiming_impossible_jpeg_qualities_is_refused(tmp_path, jpeg):
    from safetensors.numpy import load_file, save_file
    good = jpeg_model(tmp_path, 2, 2, seed=0)
    from safetensors import safe_open
    with safe_open(str(good), "np") as f:
        meta = dict(f.metadata())
    meta["degradation"] = '{"resize": "bicubic", "jpeg": %s}' % jpeg
    save_file(load_file(str(good)), str(tmp_path / "bad.safetensors"), metadata=meta)
    with pytest.raises(Exception, match=re.escape("not [low, high] from 1 to 100")):
        read_weights(tmp_path / "bad.safetensors")


def test_models_say_their_level(tmp_path):
    assert [read_weights(jpeg_model(tmp_path, 2, level, 0)).level
            for level in (0, 1, 2, 3, 4)] == [0, 1, 2, 3, 4]


def test_eval_scores_the_worst_jpegs_with_both_passes(tmp_path):
    folder = tmp_path / "models"
    for scale in (1, 2):
        jpeg_model(folder, scale, 3, seed=scale)
    picture(24, 16).save(tmp_path / "a.png")
    result = run_script("main.py", "eval", "-i", tmp_path, "--scale", 2, "--jpeg", 12,
                        "--models", folder)
    assert result.returncode == 0, result.stderr
    assert (f"model {folder / 'srcnn_x1_l3.safetensors'} then "
            f"{folder / 'srcnn_x2_l3.safetensors'}") in result.stdout
    (folder / "srcnn_x1_l3.safetensors").unlink()   # level 3's model alone, as upscale
    result = run_script("main.py", "eval", "-i", tmp_path, "--scale", 2, "--jpeg", 12,
                        "--models", folder)
    assert f"model {folder / 'srcnn_x2_l3.safetensors'}, 1 picture" in result.stdout


@pytest.mark.parametrize("quality, level", [(None, 0), (90, 1), (75, 2), (40, 3)])
def test_eval_scores_the_model_upscale_picks_for_such_a_jpeg(tmp_path, quality, level):
    folder = tmp_path / "models"
    for lv in (0, 1, 2, 3):
        jpeg_model(folder, 2, lv, seed=lv)
    picture(24, 16).save(tmp_path / "a.png")
    jpeg = ("--jpeg", quality) if quality else ()
    result = run_script("main.py", "eval", "-i", tmp_path, "--scale", 2, *jpeg,
                        "--models", folder)
    assert result.returncode == 0, result.stderr
    assert f"model {folder / f'srcnn_x2_l{level}.safetensors'}" in result.stdout


def test_training_fine_tunes_the_model_of_its_own_jpeg_level(tmp_path):
    folder = tmp_path / "models"
    for lv in (0, 2):
        jpeg_model(folder, 2, lv, seed=lv)
    (tmp_path / "raw").mkdir()
    for i in range(3):
        picture(64, 48, seed=30 + i).save(tmp_path / "raw" / f"r{i}.png")
    common = ("main.py", "train", "--cpu", "-e", 1, "--batch", 8, "--runs", tmp_path / "runs",
              "--models", folder, "--from-images", tmp_path / "raw", "--patch", 24,
              "--patches", 8, "--stop-after", 1)
    result = run_script(*common, "--jpeg", "60-90")
    assert result.returncode in (0, 130), result.stderr
    assert f"fine-tuning {folder / 'srcnn_x2_l2.safetensors'}" in result.stdout
    result = run_script(*common, "--jpeg", "10-70", "--scale", 1)
    assert result.returncode in (0, 130), result.stderr
    assert "no x1 model for JPEG level 3" in result.stdout and "starting fresh" in result.stdout
    assert_clean_error(run_script(*common, "--scale", 1), "give --jpeg")


def test_jpeg_levels_and_fractional_scales_combine(pictures, models):
    out = pictures / "out"
    result = upscale("-i", pictures / "q75.jpg", "--scale", 1.5, "--models", models,
                     "-o", out, "--precision", "float32")
    assert result.returncode == 0, result.stderr
    assert "q75.jpg: JPEG quality ≈ 75 -> x2 model for JPEG level 2, shrunk to x1.5\n" \
        in result.stdout
    assert written(out, "q75").shape == (36, 60, 3)
