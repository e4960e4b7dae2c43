"""--precision on the CPU: which engine and precision run for which CPU, what is
refused, and that bfloat16 keeps the promises (close to float32, exact tiles)."""
from __future__ import annotations

import numpy as np
import pytest

import main
import sr.inference as inference
from sr import cli
from sr.inference import OnnxRuntimeRunner, choose_precision, cpu_runner
from sr.upscaling import refine_with
from tests.helpers import model_file, perturbed_model, picture
from tests.test_upscale_tiling import smooth_picture, weights_of

AMX = {"avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}
ZEN4 = {"avx512f", "avx512_bf16", "avx512_vnni"}


@pytest.mark.parametrize("requested, flags, openvino, want", [
    ("auto", AMX, True, "bfloat16"),
    ("auto", AMX, False, "float32"),           # no engine for it: today's path, said why
    ("auto", ZEN4, True, "bfloat16"),          # AVX512-BF16 alone: measured to pay too
    ("auto", {"avx2", "fma"}, True, "float32"),
    ("auto", set(), True, "float32"),          # flags unknown (not Linux)
    ("float32", AMX, True, "float32"),
    ("bfloat16", AMX, True, "bfloat16"),
    ("bfloat16", ZEN4, True, "bfloat16"),      # asked for: the units are there
])
def test_choice_by_cpu_flags(requested, flags, openvino, want):
    precision, why = choose_precision(requested, flags, openvino)
    assert precision == want and why


@pytest.mark.parametrize("flags, openvino, needle", [
    ({"avx2", "avx512_vnni"}, True, "no bfloat16 units"),
    (AMX, False, "CPU has amx_bf16, but OpenVINO is not installed"),
])
def test_refused_precision_is_one_line(tmp_path, monkeypatch, capsys, flags, openvino,
                                       needle):
    model = model_file(tmp_path)
    picture(12, 12).save(tmp_path / "a.png")
    monkeypatch.setattr(inference, "cpu_flags", lambda: flags)
    monkeypatch.setattr(inference, "openvino_installed", lambda: openvino)
    with pytest.raises(SystemExit) as exit_info:
        cli.run(lambda: main.main(["upscale", "-i", str(tmp_path / "a.png"), "--model",
                                   str(model), "-o", str(tmp_path / "out"), "--cpu",
                                   "--precision", "bfloat16"]))
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code != 0 and len(err) == 1
    assert err[0].startswith("error: --precision bfloat16") and needle in err[0]
    assert not (tmp_path / "out").exists()


def test_without_units_the_float32_path_is_unchanged(tmp_path, monkeypatch, capsys):
    """No bfloat16 units: auto is today's ONNX Runtime float32 runner, byte for byte,
    and the startup line says so and why."""
    weights = weights_of(perturbed_model("9-5-5"))
    runner = cpu_runner(weights, "auto", flags={"avx2", "fma"})
    assert type(runner) is OnnxRuntimeRunner
    bicubic = smooth_picture(30, 40, seed=2)
    assert refine_with(runner, bicubic).tobytes() == \
        refine_with(OnnxRuntimeRunner(weights), bicubic).tobytes()
    model = model_file(tmp_path)
    picture(12, 12).save(tmp_path / "a.png")
    monkeypatch.setattr(inference, "cpu_flags", lambda: {"avx2"})
    assert main.main(["upscale", "-i", str(tmp_path / "a.png"), "--model", str(model),
                      "-o", str(tmp_path / "out"), "--cpu"]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    assert "; ONNX Runtime CPU" in line and "float32 (no bfloat16 units" in line


@pytest.fixture(scope="module")
def bf16_model():
    pytest.importorskip("openvino")
    if not set(inference.BF16_FLAGS) & inference.cpu_flags():
        pytest.skip("this CPU has no bfloat16 units")
    model = perturbed_model("9-5-5", seed=3)
    return model, inference.OpenVinoRunner(weights_of(model))


def test_bfloat16_close_to_float32(bf16_model):
    """bfloat16 convolutions, float32 residual: no 8-bit value more than one level
    off, and few of them (float32's output is the reference; with a trained model on
    photos fewer still: Set5/Set14 PSNR within 0.02 dB, bench/upscale.py --quality)."""
    model, runner = bf16_model
    bicubic = smooth_picture(48, 64, seed=5)
    diff = np.abs(refine_with(runner, bicubic).astype(int)
                  - refine_with(OnnxRuntimeRunner(weights_of(model)), bicubic))
    assert diff.max() <= 1 and (diff > 0).mean() < 0.12     # measured 0.065 (Zen 4)


def test_bfloat16_tiles_are_exact(bf16_model):
    _, runner = bf16_model
    for shape in [(37, 29), (50, 64, 3)]:
        bicubic = smooth_picture(*shape[:2], seed=6, grey=len(shape) == 2)
        whole = refine_with(runner, bicubic, tile=10_000)
        for tile in (5, 16, 17, 30):
            assert refine_with(runner, bicubic, tile=tile).tobytes() == whole.tobytes(), tile


@pytest.mark.parametrize("precision", ["float32", "auto"])
def test_eval_scores_the_pixels_upscale_writes(tmp_path, capsys, precision):
    """eval runs the network as upscale does on this CPU (same engine and precision),
    so its PSNR is that of upscale's file for the protocol's degraded picture."""
    import json

    from PIL import Image

    from sr.imaging import degraded_pair
    from sr.metrics import psnr_y
    hr_folder, low, out = tmp_path / "hr", tmp_path / "low", tmp_path / "out"
    hr_folder.mkdir()
    low.mkdir()
    picture(40, 32, seed=5).save(hr_folder / "a.png")
    model = model_file(tmp_path, arch="9-5-5")
    assert main.main(["eval", "-i", str(hr_folder), "--model", str(model), "--precision",
                      precision, "--json", str(tmp_path / "e.json")]) == 0
    said = capsys.readouterr().out
    hr, _ = degraded_pair(Image.open(hr_folder / "a.png"), 2)
    hr.resize((20, 16), Image.BICUBIC).save(low / "a.png")
    assert main.main(["upscale", "-i", str(low / "a.png"), "--model", str(model), "-o",
                      str(out), "--suffix", "", "--precision", precision]) == 0
    engine = capsys.readouterr().out.split("; ")[1]      # e.g. ONNX Runtime CPU, ...
    assert engine in said
    written = np.asarray(Image.open(out / "a.png"))
    scored = json.loads((tmp_path / "e.json").read_text())["mean"]["psnr"]
    assert scored == pytest.approx(psnr_y(np.asarray(hr), written, 2), abs=1e-9)


@pytest.mark.parametrize("scale, model_scale, sharp_size", [(1.5, 2, (42, 36)),
                                                              (2.5, 3, (40, 35))])
def test_eval_at_a_fractional_scale_scores_what_upscale_writes(tmp_path, capsys, scale,
                                                               model_scale, sharp_size):
    """x1.5 and x2.5: the picture cropped to the largest size that is a whole picture
    times the scale (43x37 -> 42x36, 40x35), bicubic shrunk; the model of the next
    scale runs and its result is shrunk as upscale does; shaved by floor(scale), as GUIDE §1 and
    bench/real_pictures.py do."""
    import json

    from PIL import Image

    from sr.imaging import resize, shrunk_pair
    from sr.metrics import psnr_y
    hr_folder, low, out = tmp_path / "hr", tmp_path / "low", tmp_path / "out"
    hr_folder.mkdir()
    low.mkdir()
    picture(43, 37, seed=5).save(hr_folder / "a.png")
    model = model_file(tmp_path, scale=model_scale, arch="9-5-5")
    assert main.main(["eval", "-i", str(hr_folder), "--model", str(model), "--scale",
                      str(scale), "--json", str(tmp_path / "e.json")]) == 0
    hr, small = shrunk_pair(Image.open(hr_folder / "a.png").convert("RGB"), scale)
    assert hr.size == sharp_size and small.size == (round(sharp_size[0] / scale),
                                                    round(sharp_size[1] / scale))
    small.save(low / "a.png")
    assert main.main(["upscale", "-i", str(low / "a.png"), "--model", str(model), "-o",
                      str(out), "--suffix", "", "--scale", str(scale)]) == 0
    written, hr = np.asarray(Image.open(out / "a.png")), np.asarray(hr)
    record = json.loads((tmp_path / "e.json").read_text())
    shave = int(scale)   # floor(scale): 1 at x1.5, 2 at x2.5
    assert record["scale"] == scale
    assert record["mean"]["psnr"] == pytest.approx(psnr_y(hr, written, shave), abs=1e-9)
    bicubic = np.asarray(resize(small, sharp_size))
    assert record["mean"]["psnr_bicubic"] == psnr_y(hr, bicubic, shave)
