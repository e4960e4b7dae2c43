"""The x8 self-ensemble (`upscale --ensemble`, `eval --ensemble`): the right average,
exact under tiling, and wired into both commands."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import main
from sr.checkpoint import publish_model
from sr.inference import OnnxRuntimeRunner, SelfEnsemble, TorchRunner
from sr.model_files import model_for_scale
from tests.helpers import perturbed_model, picture


def turned_forwards(model, x: torch.Tensor) -> torch.Tensor:
    """Mean of forward_valid over the 8 rotations/mirrors of x (H, W), turned back."""
    outs = []
    for k in range(4):
        for mirror in (False, True):
            v = torch.rot90(x, k, (0, 1))
            v = v.flip(1) if mirror else v
            with torch.inference_mode():
                y = model.forward_valid(v[None, None])[0, 0]
            y = y.flip(1) if mirror else y
            outs.append(torch.rot90(y, -k, (0, 1)))
    return torch.stack(outs).double().mean(0)


def test_ensemble_is_the_mean_of_the_eight_turned_outputs():
    model = perturbed_model("9-1-5")
    r = model.radius
    x = torch.rand(9 + 2 * r, 14 + 2 * r, generator=torch.Generator().manual_seed(3))
    got = SelfEnsemble(TorchRunner(model))(x.numpy())
    plain = TorchRunner(model)(x.numpy())
    assert got.shape == plain.shape == (9, 14)
    np.testing.assert_allclose(got, turned_forwards(model, x).numpy(), atol=1e-6)
    assert np.abs(got - plain).max() > 1e-4, "a non-symmetric network: the mean differs"


@pytest.fixture
def model(tmp_path):
    return publish_model(tmp_path / "models" / "srcnn_x2.test.safetensors", perturbed_model("9-5-5"), 2)


def test_ensemble_tiles_give_the_same_file(tmp_path, model):
    picture(37, 29, seed=5).save(tmp_path / "odd.png")
    for tile in (0, 9, 10_000):
        assert main.main(["upscale", "-i", str(tmp_path / "odd.png"), "--model", str(model),
                          "-o", str(tmp_path / "out"), "--suffix", f"_{tile}",
                          "--tile", str(tile), "--ensemble"]) == 0
    assert main.main(["upscale", "-i", str(tmp_path / "odd.png"), "--model", str(model),
                      "-o", str(tmp_path / "plain")]) == 0
    files = {np.asarray(Image.open(p)).tobytes() for p in (tmp_path / "out").iterdir()}
    (plain,) = (tmp_path / "plain").iterdir()
    assert len(files) == 1
    assert np.asarray(Image.open(plain)).tobytes() not in files


def test_ensemble_same_with_onnxruntime_and_torch(model):
    w = model_for_scale(model, 2)
    x = np.random.default_rng(1).random((40, 31), dtype=np.float32)
    ort = SelfEnsemble(OnnxRuntimeRunner(w))(x)
    ref = SelfEnsemble(TorchRunner(perturbed_model("9-5-5")))(x)
    np.testing.assert_allclose(ort, ref, atol=2e-6)


def test_eval_ensemble_json(tmp_path, model):
    hr = tmp_path / "hr"
    hr.mkdir()
    picture(40, 32, seed=2).save(hr / "a.png")
    for flag, name in (([], "plain.json"), (["--ensemble"], "ens.json")):
        assert main.main(["eval", "-i", str(hr), "--scale", "2", "--model", str(model),
                          "--json", str(tmp_path / name), *flag]) == 0
    plain, ens = (json.loads((tmp_path / n).read_text()) for n in ("plain.json", "ens.json"))
    assert (plain["ensemble"], ens["ensemble"]) == (False, True)
    assert plain["mean"]["psnr_bicubic"] == ens["mean"]["psnr_bicubic"]
    assert plain["mean"]["psnr"] != ens["mean"]["psnr"]
