"""sr/jpeg.py: quality estimate from quantisation tables, the JPEG round trip, levels."""
import io

import numpy as np
import pytest
from PIL import Image

from sr.jpeg import (LEVELS, estimate_quality, file_quality, jpeg_roundtrip, level_for_quality,
                     training_qualities)

QUALITIES = range(20, 96, 5)


def picture(mode="RGB", size=(40, 32)):
    """A small made-up picture: smooth gradients plus noise (tables do not depend on it)."""
    rng = np.random.default_rng(0)
    h, w = size[1], size[0]
    x = np.linspace(0, 255, w)[None, :, None] + np.linspace(0, 80, h)[:, None, None]
    rgb = np.clip(x + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)
    img = Image.fromarray(rgb, "RGB")
    return img.convert("L") if mode == "L" else img


def reopened(img, **params):
    f = io.BytesIO()
    img.save(f, **params)
    f.seek(0)
    return Image.open(f)


@pytest.mark.parametrize("mode, subsampling", [("RGB", -1), ("RGB", 0), ("L", -1)])
def test_estimate_within_3_of_pillow_quality(mode, subsampling):
    # -1: Pillow's default (4:2:0 for colour); 0: 4:4:4; grey has one table only
    for q in QUALITIES:
        jpeg = reopened(picture(mode), format="JPEG", quality=q, subsampling=subsampling)
        assert len(jpeg.quantization) == (1 if mode == "L" else 2)
        assert abs(estimate_quality(jpeg) - q) <= 3, (mode, subsampling, q)


def test_estimate_is_exact_for_libjpeg_tables():
    # stricter than the issue's +-3: standard tables give their quality back
    for q in range(10, 98):
        assert estimate_quality(reopened(picture(), format="JPEG", quality=q)) == q


def test_estimate_of_non_standard_tables_is_the_nearest():
    # the standard q=60 tables with every entry 10% larger: a quality a bit below 60
    jpeg = reopened(picture(), format="JPEG", quality=60)
    tables = {k: [min(255, round(v * 1.1)) for v in t] for k, t in jpeg.quantization.items()}
    custom = reopened(picture(), format="JPEG", qtables=tables)
    assert 53 <= estimate_quality(custom) <= 58


def test_no_estimate_for_png():
    assert estimate_quality(reopened(picture(), format="PNG")) is None
    assert estimate_quality(picture()) is None   # not read from a file at all


def test_file_quality_reads_the_header(tmp_path):
    picture().save(tmp_path / "a.jpg", quality=67)
    picture().save(tmp_path / "b.png")
    (tmp_path / "c.jpg").write_bytes(b"not a picture")
    picture().save(tmp_path / "d.jpg", "MPO", save_all=True, append_images=[picture()],
                   quality=55)   # a JPEG that Pillow opens as MPO
    assert file_quality(tmp_path / "a.jpg") == 67
    assert file_quality(tmp_path / "d.jpg") == 55
    assert file_quality(tmp_path / "b.png") is None
    assert file_quality(tmp_path / "c.jpg") is None


def test_roundtrip_is_a_pillow_save_and_decode():
    img = picture()
    f = io.BytesIO()
    img.save(f, "JPEG", quality=50)
    f.seek(0)
    by_hand = np.asarray(Image.open(f).convert("RGB"))
    got = jpeg_roundtrip(img, 50)
    assert got.mode == "RGB" and got.size == img.size
    assert np.array_equal(np.asarray(got), by_hand)
    assert not np.array_equal(np.asarray(jpeg_roundtrip(img, 90)), by_hand)


def test_roundtrip_of_grey_is_rgb():
    got = jpeg_roundtrip(picture("L"), 75)
    assert got.mode == "RGB"


def test_levels_fall_as_quality_falls():
    levels = [level_for_quality(q) for q in range(100, 0, -1)]
    assert levels == sorted(levels) and levels[0] == 0 and levels[-1] == 4
    assert set(levels) == {0, 1, 2, 3, 4} and level_for_quality(20) == 4
    assert level_for_quality(None) == 0
    assert training_qualities(0) is None
    # each model trains on all of its band [low, next level's low - 1] (down to q10)
    for (level, low, _), (_, above, _) in zip(LEVELS[1:], LEVELS):
        train_low, train_high = training_qualities(level)
        assert train_low <= max(low, 10) and train_high >= above - 1, level


# --- JPEG inputs in the degradation that evaluation and training share ------------------

def test_the_degradation_with_jpeg_is_the_protocols(tmp_path):
    from sr.imaging import degraded_pair, resize
    hr = Image.fromarray(np.random.default_rng(3).integers(0, 256, (32, 48, 3), np.uint8))
    by_hand = resize(jpeg_roundtrip(resize(hr, (24, 16)), 50), (48, 32))
    assert np.array_equal(np.asarray(degraded_pair(hr, 2, 50)[1]), np.asarray(by_hand))
    assert not np.array_equal(np.asarray(degraded_pair(hr, 2)[1]), np.asarray(by_hand))


def test_eval_jpeg_scores_jpeg_inputs(tmp_path):
    import json

    from tests.helpers import model_file, picture, run_script
    (tmp_path / "hr").mkdir()
    picture(64, 48, seed=2).save(tmp_path / "hr" / "a.png")
    model = model_file(tmp_path)
    scores = {}
    for q in (None, 30):
        out = tmp_path / f"e{q}.json"
        jpeg = ("--jpeg", q) if q else ()
        result = run_script("main.py", "eval", "-i", tmp_path / "hr", "--model", model,
                            "--json", out, *jpeg)
        assert result.returncode == 0, result.stderr
        record = json.loads(out.read_text())
        assert record["jpeg"] == q
        scores[q] = record["mean"]["psnr_bicubic"]
    assert scores[30] < scores[None] - 0.5      # the baseline is bicubic of the JPEG


def test_training_on_jpeg_inputs_records_it_in_the_model(tmp_path):
    from sr.model_files import read_weights
    from tests.helpers import assert_clean_error, picture, run_script
    (tmp_path / "raw").mkdir()
    for i in range(4):
        picture(96, 80, seed=20 + i).save(tmp_path / "raw" / f"r{i}.png")
    common = ("main.py", "train", "--cpu", "-n", "-e", 1, "--batch", 8, "--runs",
              tmp_path / "runs")
    result = run_script(*common, "--from-images", tmp_path / "raw", "--patch", 32,
                        "--patches", 32, "--jpeg", "60-80", "--output",
                        tmp_path / "m.safetensors")
    assert result.returncode == 0, result.stderr
    assert "as JPEG q70" in result.stdout              # validation: the range's middle
    assert read_weights(tmp_path / "m.safetensors").degradation == {
        "resize": "bicubic", "jpeg": [60, 80]}
    assert_clean_error(run_script(*common, "--jpeg", "60-80"), "--jpeg sets how")
    assert "qualities from 1 to 100" in run_script(*common, "--jpeg", "90-60").stderr


def test_training_on_gen_samples_jpeg_pairs_records_their_degradation(tmp_path, capsys):
    """An x1 level model from a gen_samples.py --jpeg folder; resuming keeps the range."""
    import json

    import gen_samples
    import main
    from sr.model_files import read_weights
    from tests.helpers import picture
    (tmp_path / "raw").mkdir()
    for i in range(4):
        picture(40, 40, seed=30 + i).save(tmp_path / "raw" / f"r{i}.png")
    assert gen_samples.main(["12", "--size", "16", "--scale", "1", "--jpeg", "20-40", "-i",
                             str(tmp_path / "raw"), "-o", str(tmp_path / "s")]) == 0
    train = ["train", "--cpu", "--runs", str(tmp_path / "runs")]
    assert main.main(train + ["-n", "-e", "1", "--batch", "4", "-i", str(tmp_path / "s"),
                              "--stop-after", "1", "--output",
                              str(tmp_path / "m.safetensors")]) == 130
    assert "training 9-1-5 x1" in capsys.readouterr().out   # the manifest's scale
    (run,) = (tmp_path / "runs").iterdir()
    assert json.loads((run / "config.json").read_text())["degradation"] == {
        "resize": "bicubic", "jpeg": [20, 40]}
    assert main.main(train + ["--resume", str(run)]) == 0
    weights = read_weights(tmp_path / "m.safetensors")
    assert weights.scale == 1 and weights.level == 3   # q30: level 3's band
    assert weights.degradation == {"resize": "bicubic", "jpeg": [20, 40]}


def test_eval_at_scale_1_scores_the_jpeg_itself_as_the_baseline(tmp_path):
    import json

    import main
    from sr.metrics import psnr_y
    from tests.helpers import model_file, picture
    (tmp_path / "hr").mkdir()
    picture(40, 32, seed=3).save(tmp_path / "hr" / "a.png")
    model = model_file(tmp_path, scale=1)
    assert main.main(["eval", "-i", str(tmp_path / "hr"), "--model", str(model), "--scale",
                      "1", "--jpeg", "30", "--json", str(tmp_path / "e.json")]) == 0
    hr = Image.open(tmp_path / "hr" / "a.png").convert("RGB")
    mean = json.loads((tmp_path / "e.json").read_text())["mean"]
    assert mean["psnr_bicubic"] == psnr_y(np.asarray(hr), np.asarray(jpeg_roundtrip(hr, 30)), 1)
