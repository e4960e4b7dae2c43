import pickle

import pytest
import torch

from sr.checkpoint import latest_model, load_model, save_checkpoint
from sr.errors import UserError
from tests.helpers import assert_clean_error, model_file, perturbed_model, run_script


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
    (models / "srcnn_x2.truncated.pt").write_bytes(good.read_bytes()[:100])
    warnings = []
    _, _, path = latest_model(models, 2, warn=warnings.append)
    assert path == good
    assert len(warnings) == 2 and all("not an SRCNN checkpoint" in w for w in warnings)
    assert not (tmp_path / "pwned").exists()


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
