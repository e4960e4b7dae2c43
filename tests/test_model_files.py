"""Model files: published .safetensors models and training runs' .pt checkpoints,
read by the one checker in sr/model_files.py; nothing in a file ever runs."""
from __future__ import annotations

import hashlib
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file, save_file

from sr.checkpoint import latest_model, load_model, publish_model, save_checkpoint
from sr.errors import UserError
from sr.model_files import list_models, models_for_level, read_weights
from tests.helpers import ROOT, assert_clean_error, model_file, perturbed_model, picture, run_script

# SHA-256 of each shipped model's tensors (sorted by name, raw float32 bytes), taken
# from the .pt files they were converted from: converted, not retrained.
SHIPPED = {2: "5c3d7062294d84e0c5063ec28fc3e38374f1465bdc7ab6fd9bb0543edacab3bc",
           3: "798c840addffddc6f7da86aca9036f566fcc460cba0ae8a7e84f29469b60ae83",
           4: "d5c41a7c463aecd9d86624b91f8da7d4c730c5c17d5994d9ea739544ffcdcba0"}


@pytest.mark.parametrize("scale", sorted(SHIPPED))
def test_shipped_models_keep_the_weights_they_were_trained_to(scale):
    weights = read_weights(ROOT / f"models/srcnn_x{scale}.shipped.safetensors")
    digest = hashlib.sha256(b"".join(weights.state[k].tobytes() for k in sorted(weights.state)))
    assert digest.hexdigest() == SHIPPED[scale]
    assert (weights.scale, weights.architecture, weights.residual) == (scale, "9-5-5", True)
    assert weights.degradation == {"resize": "bicubic", "jpeg": None}
    assert weights.training["data"]["patch"] == 48


def test_a_published_model_is_plain_safetensors_with_its_description(tmp_path):
    model = perturbed_model("9-5-5")
    path = publish_model(tmp_path / "m.safetensors", model, 3, training={"epochs": 7})
    tensors = load_file(path)                         # any safetensors reader
    assert np.array_equal(tensors["conv2.weight"], model.conv2.weight.detach().numpy())
    weights = read_weights(path)
    assert (weights.scale, weights.kernels, weights.filters, weights.residual) == \
        (3, (9, 5, 5), (64, 32), True)
    assert weights.training == {"epochs": 7}
    loaded, _ = load_model(path, scale=3)
    x = torch.rand(1, 1, 19, 23)
    assert torch.equal(loaded(x), model(x))


def test_models_are_read_without_pytorch(tmp_path):
    path = model_file(tmp_path)
    code = (f"import sys; from sr.model_files import read_weights; "
            f"w = read_weights({str(path)!r}); assert 'torch' not in sys.modules; print(w.scale)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True)
    assert result.returncode == 0 and result.stdout.strip() == "2", result.stderr


def test_a_run_checkpoint_is_read_as_a_model(tmp_path):
    model = perturbed_model("9-1-5")
    path = save_checkpoint(tmp_path / "last.pt", model, 2, train={"epochs": 1})
    assert torch.load(path, weights_only=True)["scale"] == 2
    loaded, weights = load_model(path, scale=2)
    assert weights.path == path and torch.equal(loaded.conv1.weight, model.conv1.weight)
    with pytest.raises(UserError, match="x2, not x3"):
        load_model(path, scale=3)


def test_publishing_never_replaces_a_file(tmp_path):
    path = model_file(tmp_path)
    with pytest.raises(UserError, match="already exists"):
        publish_model(path, perturbed_model(), 2)


class Payload:
    """Unpickling this runs code: it must never be unpickled."""
    def __reduce__(self):
        return (os.mkdir, (MARKER,))


MARKER = ""


def test_pickles_are_never_executed(tmp_path):
    """A pickle in models/ (newest, under either suffix) is skipped with one line;
    given with --model it is refused in one line.  Its code never runs."""
    global MARKER
    MARKER = str(tmp_path / "pwned")
    models = tmp_path / "models"
    good = model_file(models, name="srcnn_x2.a.safetensors")
    torch.save({"format": "srcnn-checkpoint", "x": Payload()}, models / "srcnn_x2.zip.pt")
    (models / "srcnn_x2.zzz.safetensors").write_bytes(pickle.dumps(Payload()))
    warnings = []
    assert latest_model(models, 2, warn=warnings.append)[1].path == good
    assert len(warnings) == 2 and all("\n" not in w for w in warnings), warnings
    picture(20, 20).save(tmp_path / "in.png")
    for name in ("srcnn_x2.zip.pt", "srcnn_x2.zzz.safetensors"):
        for command in (("upscale", "-i", tmp_path / "in.png", "-o", tmp_path / "out"),
                        ("eval", "-i", tmp_path)):
            result = run_script("main.py", *command, "--cpu", "--model", models / name)
            assert_clean_error(result, name, "not an SRCNN")
    assert not (tmp_path / "pwned").exists()


def bad_files(folder):
    """{name: (file, words of its one-line error)} for models that must be refused."""
    good = model_file(folder, name="good.safetensors")
    tensors = load_file(good)
    from safetensors import safe_open
    with safe_open(good, framework="numpy") as f:
        meta = f.metadata()
    cases = {"nan": ({"conv1.weight": np.full_like(tensors["conv1.weight"], np.nan)}, {},
                     "NaN or infinite"),
             "huge": ({"conv2.weight": np.full_like(tensors["conv2.weight"], 1e30)}, {},
                      "far beyond what training produces"),
             "shape": ({"conv3.bias": np.zeros(2, np.float32)}, {}, "conv3.bias has shape"),
             "ints": ({"conv3.bias": np.zeros(1, np.int32)}, {}, "not a floating-point"),
             "extra": ({"conv4.weight": np.zeros(1, np.float32)}, {}, "unexpected tensor"),
             "kernels": ({}, {"kernels": "9-4-5"}, "not all odd"),
             "scale": ({}, {"scale": "0"}, "scale 0"),
             "version": ({}, {"format_version": "99"}, "version '99'"),
             "foreign": ({}, {"format": "other"}, "no 'srcnn-upscaler' format")}
    files = {}
    for name, (changed, meta_changes, words) in cases.items():
        path = folder / f"srcnn_x2.{name}.safetensors"
        save_file({**tensors, **changed}, path, metadata={**meta, **meta_changes})
        files[name] = (path, words)
    (folder / "srcnn_x2.text.safetensors").write_text("hello")
    files["text"] = (folder / "srcnn_x2.text.safetensors", "not a readable .safetensors")
    return good, files


def test_every_bad_model_is_a_one_line_error_and_skipped(tmp_path):
    good, files = bad_files(tmp_path)
    for path, words in files.values():
        with pytest.raises(UserError, match=words.replace("(", r"\(")) as e:
            read_weights(path)
        assert str(e.value).startswith(str(path)) and "\n" not in str(e.value)
    warnings = []
    assert [w.path for w in list_models(tmp_path, warn=warnings.append)] == [good]
    assert len(warnings) == len(files)


def test_absurd_weights_are_refused_by_every_command(tmp_path):
    _, files = bad_files(tmp_path / "m")
    path, words = files["huge"]
    picture(20, 20).save(tmp_path / "in.png")
    for command in (("upscale", "-i", tmp_path / "in.png", "-o", tmp_path / "out"),
                    ("eval", "-i", tmp_path), ("export-onnx", "-o", tmp_path / "x.onnx")):
        assert_clean_error(run_script("main.py", *command, "--model", path), words)
    assert not (tmp_path / "out").exists() and not (tmp_path / "x.onnx").exists()


@pytest.mark.parametrize("kind, needle", [
    ("folder", "is a folder, not a model file"),
    ("text", "not a readable .safetensors"),
    ("missing", "no such model file"),
    ("fifo", "not a regular file"),
])
def test_a_model_path_that_is_no_model_says_what_it_is(tmp_path, kind, needle):
    path = tmp_path / f"m.{kind}"
    if kind == "folder":
        path.mkdir()
    elif kind == "text":
        path.write_text("hello")
    elif kind == "fifo":
        os.mkfifo(path)   # opening it would wait for a writer forever
    picture(20, 20).save(tmp_path / "in.png")
    for command in (("eval", "-i", tmp_path, "--cpu"),
                    ("upscale", "-i", tmp_path / "in.png", "-o", tmp_path / "out")):
        result = run_script("main.py", *command, "--model", path, timeout=60)
        assert_clean_error(result, needle)


def test_the_models_folder_is_named_when_it_is_missing_or_a_file(tmp_path):
    picture(20, 20).save(tmp_path / "in.png")
    for command, target in (("eval", tmp_path), ("upscale", tmp_path / "in.png")):
        result = run_script("main.py", command, "-i", target, "--models", tmp_path / "none")
        assert_clean_error(result, "none: no such folder of models")
        result = run_script("main.py", command, "-i", target, "--models", tmp_path / "in.png")
        assert_clean_error(result, "in.png: is a file")


def test_newest_by_creation_time_wins(tmp_path):
    import time
    model_file(tmp_path, name="b_old.safetensors")
    time.sleep(1.1)
    newer = model_file(tmp_path, name="a_new.safetensors")
    assert latest_model(tmp_path, 2)[1].path == newer


def test_a_scale_is_served_by_its_model_or_else_the_x2_model_repeated(tmp_path):
    for scale in (2, 3, 4):
        model_file(tmp_path, scale=scale)
    routes = {s: [w.scale for w in models_for_level(tmp_path, s, 0)]
              for s in (1.2, 1.5, 2.0, 2.1, 2.5, 3.0, 3.4, 4.0, 8.0, 10.0, 64.0)}
    assert routes == {1.2: [2], 1.5: [2], 2.0: [2], 2.1: [2, 2], 2.5: [2, 2], 3.0: [3],
                      3.4: [2, 2], 4.0: [4], 8.0: [2, 4], 10.0: [2, 2, 2, 2],
                      64.0: [2, 2, 2, 2, 4]}
    (tmp_path / "x3").mkdir()   # without an x2 model, the smallest that grows
    model_file(tmp_path / "x3", scale=3)
    assert [w.scale for w in models_for_level(tmp_path / "x3", 4.0, 0)] == [3, 3]
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no x2 model"):
        models_for_level(tmp_path / "empty", 2.0, 0)


def test_without_larger_models_the_x2_model_runs_again(tmp_path):
    """A JPEG level ships x1 and x2 models: x3 and x4 are its x2 model twice."""
    for scale in (1, 2):
        model_file(tmp_path, scale=scale)
    routes = {s: [w.scale for w in models_for_level(tmp_path, s, 0)] for s in (1, 2, 3, 4)}
    assert routes == {1: [1], 2: [2], 3: [2, 2], 4: [2, 2]}
    (tmp_path / "x1").mkdir()
    model_file(tmp_path / "x1", scale=1)
    with pytest.raises(UserError, match="no x3 model"):   # an x1 model cannot grow
        models_for_level(tmp_path / "x1", 3.0, 0)


def test_cli_refuses_a_model_of_another_scale(tmp_path):
    path = model_file(tmp_path, scale=4)
    picture(20, 20).save(tmp_path / "in.png")
    result = run_script("main.py", "upscale", "-i", tmp_path / "in.png", "--model", path,
                        "-o", tmp_path / "out")
    assert_clean_error(result, "x4, not x2")
    assert not (tmp_path / "out").exists()


def test_a_published_model_needs_a_safetensors_name(tmp_path):
    result = run_script("main.py", "train", "--cpu", "-e", 1, "--output",
                        tmp_path / "m.pt", cwd=tmp_path)
    assert_clean_error(result, "m.pt", "ending in .safetensors")
