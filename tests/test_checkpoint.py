import pickle

import pytest
import torch

from sr.checkpoint import latest_model, load_model, save_checkpoint
from sr.errors import UserError
from tests.helpers import assert_clean_error, model_file, perturbed_model, picture, run_script


def test_round_trip_loads_with_weights_only(tmp_path):
    model = perturbed_model("9-5-5")
    path = save_checkpoint(tmp_path / "m.pt", model, 3, train={"epochs": 7})
    raw = torch.load(path, weights_only=True)
    assert raw["scale"] == 3 and raw["model"]["kernels"] == [9, 5, 5]
    loaded, ckpt = load_model(path, scale=3)
    assert ckpt["train"]["epochs"] == 7
    x = torch.rand(1, 1, 19, 23)
    assert torch.equal(loaded(x), model(x))


def test_other_scale_is_refused(tmp_path):
    path = model_file(tmp_path, scale=3)
    with pytest.raises(UserError, match="x3, not x2"):
        load_model(path, scale=2)


def test_save_does_not_replace(tmp_path):
    path = model_file(tmp_path)
    with pytest.raises(UserError, match="already exists"):
        save_checkpoint(path, perturbed_model(), 2)


class Payload:
    """Unpickling this runs code: it must never be unpickled."""
    def __reduce__(self):
        import pathlib
        return (pathlib.Path.touch, (pathlib.Path(MARKER),))


MARKER = ""


def test_malicious_pickle_is_never_executed_and_skipped(tmp_path):
    global MARKER
    models = tmp_path / "models"
    good = model_file(models, name="srcnn_x2.a.pt")
    MARKER = str(tmp_path / "pwned")
    with open(models / "srcnn_x2.zzz.pt", "wb") as f:
        pickle.dump({"format": "srcnn-checkpoint", "x": Payload()}, f)
    torch.save({"format": "srcnn-checkpoint", "x": Payload()}, models / "srcnn_x2.zip.pt")
    (models / "srcnn_x2.truncated.pt").write_bytes(good.read_bytes()[:100])
    warnings = []
    _, _, path = latest_model(models, 2, warn=warnings.append)
    assert path == good
    assert len(warnings) == 3 and all("not an SRCNN checkpoint" in w for w in warnings)
    assert sum("not loaded, for safety" in w for w in warnings) == 1  # the zip archive
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("name, content, needle", [
    ("folder", None, "is a folder, not a model file"),
    ("text.pt", b"hello", "not a PyTorch zip archive"),
    ("missing.pt", ..., "no such model file"),
])
def test_a_model_path_that_is_no_model_says_what_it_is(tmp_path, name, content, needle):
    path = tmp_path / name
    if content is None:
        path.mkdir()
    elif content is not ...:
        path.write_bytes(content)
    picture(20, 20).save(tmp_path / "in.png")
    commands = [("eval", "-i", tmp_path, "--cpu"),    # reads models with PyTorch
                ("upscale", "-i", tmp_path / "in.png", "-o", tmp_path / "out")]  # NumPy
    for command in commands:
        assert_clean_error(run_script("main.py", *command, "--model", path), needle)


def test_a_missing_models_folder_is_named(tmp_path):
    picture(20, 20).save(tmp_path / "in.png")
    for command, target in (("eval", tmp_path), ("upscale", tmp_path / "in.png")):
        result = run_script("main.py", command, "-i", target, "--models", tmp_path / "none")
        assert_clean_error(result, "none: no such folder of models")


def test_newest_by_creation_time_wins(tmp_path):
    import time
    model_file(tmp_path, name="b_old.pt")
    time.sleep(1.1)
    newer = model_file(tmp_path, name="a_new.pt")
    assert latest_model(tmp_path, 2)[2] == newer


def test_cli_refuses_a_model_of_another_scale(tmp_path):
    path = model_file(tmp_path, scale=4)
    from tests.helpers import picture
    picture(20, 20).save(tmp_path / "in.png")
    result = run_script("main.py", "upscale", "-i", tmp_path / "in.png", "--model", path,
                        "-o", tmp_path / "out")
    assert_clean_error(result, "x4, not x2")
    assert not (tmp_path / "out").exists()


def test_the_pytorch_reader_refuses_what_the_torch_free_one_refuses(tmp_path):
    """eval, train and export load with PyTorch: the same checks as upscale's reader."""
    model = perturbed_model()
    with torch.no_grad():
        model.conv1.weight[0, 0, 0, 0] = float("nan")
    path = save_checkpoint(tmp_path / "nan.pt", model, 2)
    with pytest.raises(UserError, match="weights are not finite"):
        load_model(path)
    picture(20, 20).save(tmp_path / "in.png")
    assert_clean_error(run_script("main.py", "eval", "-i", tmp_path, "--model", path),
                       "weights are not finite")
