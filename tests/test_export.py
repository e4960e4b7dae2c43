"""ONNX export: metadata for the browser page, numerical agreement with torch, the CLI."""
from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch

import main
import srcnn
from sr.checkpoint import publish_model
from sr.model_files import read_weights
from sr.errors import UserError
from sr.export import export_onnx, read_metadata


def small_model(architecture="9-1-5", seed=0):
    """A narrow SRCNN whose last layer is not zero, so it is not the identity."""
    torch.manual_seed(seed)
    model = srcnn.build(architecture, filters=(8, 4))
    with torch.no_grad():
        model.conv3.weight.normal_(0, 0.05)
        model.conv3.bias.fill_(0.01)
    return model.eval()


def test_export_writes_metadata_and_matches_torch(tmp_path):
    model = small_model("9-5-5")
    path = export_onnx(model, 3, tmp_path / "m.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]  # no .onnx.data
    meta = read_metadata(path)
    assert meta["scale"] == "3"
    assert meta["architecture"] == "9-5-5"
    assert meta["radius"] == str(model.radius) == "8"
    assert meta["residual"] == "true"
    assert meta["colour_space"] == "bt601-studio-luma/255"

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).random((2, 1, 23, 37), dtype=np.float32)  # odd, batch 2
    (got,) = session.run(None, {"luma": x})
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    assert got.shape == x.shape
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)


def test_export_command_fills_the_web_folder(tmp_path):
    models, web = tmp_path / "models", tmp_path / "web"
    publish_model(models / "srcnn_x2.shipped.safetensors", small_model("9-5-5"), 2)
    publish_model(models / "srcnn_x2.zz-newer.safetensors", small_model("9-1-5", seed=1), 2)
    publish_model(models / "srcnn_x3.a.safetensors", small_model("9-1-5", seed=2), 3)
    (web / "srcnn.onnx").parent.mkdir()
    (web / "srcnn.onnx").write_bytes(b"an older export, replaced without --overwrite")

    assert main.main(["export-onnx", "--models", str(models), "--web", str(web)]) == 0

    assert read_metadata(web / "srcnn.onnx")["architecture"] == "9-5-5"  # shipped wins
    assert read_metadata(web / "srcnn_x3.onnx")["scale"] == "3"
    index = json.loads((web / "models.json").read_text())
    assert [(m["file"], m["scale"]) for m in index["models"]] == [
        ("srcnn.onnx", 2), ("srcnn_x3.onnx", 3)]


def test_export_to_a_file_never_replaces_without_overwrite(tmp_path):
    models = tmp_path / "models"
    publish_model(models / "x2.safetensors", small_model(), 2)
    target = tmp_path / "out.onnx"
    target.write_bytes(b"keep me")
    with pytest.raises(UserError, match="already exists"):
        main.main(["export-onnx", "--models", str(models), "-o", str(target)])
    assert target.read_bytes() == b"keep me"
    with pytest.raises(UserError, match="no x4 model"):
        main.main(["export-onnx", "--models", str(models), "--scale", "4"])


def test_export_never_replaces_the_checkpoint_it_reads(tmp_path):
    checkpoint = publish_model(tmp_path / "m.safetensors", small_model(), 2)
    before = checkpoint.read_bytes()
    with pytest.raises(UserError, match="one of the inputs"):
        main.main(["export-onnx", "--model", str(checkpoint), "-o", str(checkpoint),
                   "--overwrite"])
    web = tmp_path / "web"   # a checkpoint that carries the page's name
    page_named = publish_model(web / "srcnn.onnx", small_model(), 2)
    with pytest.raises(UserError, match="checkpoint being exported"):
        main.main(["export-onnx", "--model", str(page_named), "--web", str(web)])
    assert checkpoint.read_bytes() == before
    assert read_weights(page_named).scale == 2   # still the model file


def test_export_checks_where_it_writes_before_exporting(tmp_path, monkeypatch):
    import sr.export
    monkeypatch.setattr(sr.export, "export_onnx", lambda *a, **k: pytest.fail("exported"))
    checkpoint = publish_model(tmp_path / "models" / "x2.safetensors", small_model(), 2)
    (tmp_path / "afile").write_text("in the way")
    web = tmp_path / "web"
    web.mkdir()
    (web / "srcnn_x5.onnx").write_text("not ONNX")   # the index could not be written
    for args, said in [(["-o", str(tmp_path / "new") + "/"], "names a folder"),
                       (["-o", str(tmp_path / "afile" / "x.onnx")], "afile is a file"),
                       (["--web", str(tmp_path / "afile" / "web")], "afile is a file"),
                       (["--web", str(web)], "srcnn_x5.onnx: not a readable ONNX file")]:
        with pytest.raises(UserError, match=said):
            main.main(["export-onnx", "--model", str(checkpoint), *args])
    assert sorted(p.name for p in web.iterdir()) == ["srcnn_x5.onnx"]


def test_ctrl_c_inside_the_exporter_stays_an_interrupt():
    """The exporter wraps what it catches, Ctrl-C too, in errors of its own."""
    import os
    import signal
    import time

    from sr.export import interrupt_kept
    with pytest.raises(KeyboardInterrupt):
        with interrupt_kept():
            try:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(5)
            except KeyboardInterrupt as e:
                raise RuntimeError("an exporter's own error") from e
    with pytest.raises(RuntimeError, match="not an interrupt"):   # others pass unchanged
        with interrupt_kept():
            raise RuntimeError("not an interrupt")


def test_export_command_exports_every_jpeg_level_with_its_level(tmp_path):
    """Per (scale, level) one file: clean ones keep their names, level ones are
    srcnn_x<s>_jpeg<L>.onnx (x1 too); models.json says each level and the bounds."""
    from sr.jpeg import LEVELS
    models, web = tmp_path / "models", tmp_path / "web"
    level2 = {"resize": "bicubic", "jpeg": [60, 90]}
    publish_model(models / "srcnn_x2.shipped.safetensors", small_model(), 2)
    publish_model(models / "srcnn_x2_jpeg2.shipped.safetensors", small_model(seed=1), 2,
                  degradation=level2)
    publish_model(models / "srcnn_x2.zz-newer.safetensors", small_model(seed=2), 2,
                  degradation=level2)   # newer, but the shipped one wins
    publish_model(models / "x1.safetensors", small_model(seed=3), 1,
                  degradation={"resize": "bicubic", "jpeg": [10, 70]})

    assert main.main(["export-onnx", "--models", str(models), "--web", str(web)]) == 0
    index = json.loads((web / "models.json").read_text())
    assert index["levels"] == [[level, low] for level, low, _ in LEVELS]
    assert [(m["file"], m["scale"], m["level"]) for m in index["models"]] == [
        ("srcnn_x1_jpeg3.onnx", 1, 3), ("srcnn.onnx", 2, 0), ("srcnn_x2_jpeg2.onnx", 2, 2)]
    meta = read_metadata(web / "srcnn_x2_jpeg2.onnx")
    assert meta["level"] == "2" and json.loads(meta["degradation"]) == level2
    assert read_metadata(web / "srcnn.onnx")["level"] == "0"
    session = ort.InferenceSession(str(web / "srcnn_x2_jpeg2.onnx"))   # the shipped one
    x = np.random.default_rng(1).random((1, 1, 20, 20), dtype=np.float32)
    with torch.no_grad():
        want = small_model(seed=1)(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(session.run(None, {"luma": x})[0], want, atol=1e-4)

    # --scale 1 alone keeps the others; -o takes the scale's clean model
    (web / "srcnn_x1_jpeg3.onnx").unlink()
    assert main.main(["export-onnx", "--models", str(models), "--web", str(web),
                      "--scale", "1"]) == 0
    assert len(json.loads((web / "models.json").read_text())["models"]) == 3
    assert main.main(["export-onnx", "--models", str(models), "-o", str(tmp_path / "o.onnx")]) == 0
    assert read_metadata(tmp_path / "o.onnx")["level"] == "0"
