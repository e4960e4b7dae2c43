"""Training end to end on small synthetic pictures (seconds, CPU)."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.numpy import load_file

from sr.checkpoint import load_model
from sr.training import held_out_pictures, split_validation
from tests.helpers import ROOT, assert_clean_error, model_file, picture, run_script


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """Training pictures, a patch folder made from them, and evaluation pictures."""
    root = tmp_path_factory.mktemp("train")
    (root / "raw").mkdir()
    (root / "eval").mkdir()
    for i in range(6):
        picture(96, 80, seed=10 + i).save(root / "raw" / f"r{i}.png")
    for i in range(2):
        picture(90, 72, seed=40 + i).save(root / "eval" / f"e{i}.png")
    result = run_script("gen_samples.py", 240, "--size", 32, "-i", root / "raw",
                        "-o", root / "samples")
    assert result.returncode == 0, result.stderr
    return root


def train(ws, run_name, *extra, timeout=300):
    batch = () if "--batch" in extra else ("--batch", 8)
    samples = () if "--from-images" in extra else ("-i", ws / "samples")
    return run_script("main.py", "train", "--cpu", *samples,
                      "--runs", ws / run_name, "--models", ws / f"{run_name}-models",
                      *batch, *extra, timeout=timeout)


def final_weights(folder):
    (last,) = folder.glob("*/last.pt")
    return torch.load(last, weights_only=True)["state_dict"]


def test_train_then_upscale_beats_bicubic(workspace):
    result = train(workspace, "fit", "-n", "-e", 6, "--batch", 4)
    assert result.returncode == 0, result.stderr
    assert "val PSNR" in result.stdout and "saved" in result.stdout
    (model_path,) = (workspace / "fit-models").glob("srcnn_x2.*.safetensors")
    records = [json.loads(line) for line in
               next((workspace / "fit").glob("*/metrics.jsonl")).read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3, 4, 5, 6]
    out = workspace / "eval.json"
    result = run_script("main.py", "eval", "-i", workspace / "eval", "--model", model_path,
                        "--json", out)
    assert result.returncode == 0, result.stderr
    mean = json.loads(out.read_text())["mean"]
    assert mean["psnr"] > mean["psnr_bicubic"] + 0.3, mean


def test_without_new_it_fine_tunes_the_latest_model(workspace):
    assert train(workspace, "tune", "-n", "-e", 1).returncode == 0
    result = train(workspace, "tune", "-e", 1)
    assert result.returncode == 0, result.stderr
    assert "fine-tuning" in result.stdout
    assert len(list((workspace / "tune-models").glob("*.safetensors"))) == 2


def test_a_missing_models_folder_is_said_before_starting_fresh(workspace, tmp_path):
    result = train(workspace, "fresh", "-e", 1, "--models", tmp_path / "typo")
    assert result.returncode == 0, result.stderr
    assert f"{tmp_path / 'typo'}/ does not exist yet: starting fresh" in result.stdout


def test_a_fine_tune_that_only_gets_worse_keeps_the_starting_weights(workspace, tmp_path):
    assert train(workspace, "keep", "-n", "-e", 2, "--output", tmp_path / "start.safetensors")\
        .returncode == 0
    # a learning rate of 1 wrecks the network in the first steps
    result = train(workspace, "keep", "--init", tmp_path / "start.safetensors", "-e", 1, "--lr", 1,
                   "--output", tmp_path / "tuned.safetensors")
    assert result.returncode == 0, result.stderr
    assert "starting weights: val PSNR" in result.stdout
    assert "no epoch beat the starting weights" in result.stdout
    start = {k: torch.from_numpy(v) for k, v in load_file(tmp_path / "start.safetensors").items()}
    tuned = load_file(tmp_path / "tuned.safetensors")
    for key in start:
        torch.testing.assert_close(torch.from_numpy(tuned[key]), start[key], rtol=0, atol=0)
    (run,) = [r for r in (workspace / "keep").iterdir()
              if json.loads((r / "config.json").read_text())["continued_from"]]
    last = torch.load(run / "last.pt", weights_only=True)["state_dict"]
    assert any(not torch.equal(last[k], start[k]) for k in start)  # the epoch did move


def test_arch_grows_the_starting_model_and_never_shrinks_it(workspace, tmp_path):
    start = model_file(tmp_path, arch="9-5-5")
    result = train(workspace, "grow", "--init", start, "--arch", "11-5-5", "-e", 1,
                   "--output", tmp_path / "grown.safetensors")
    assert result.returncode == 0, result.stderr
    assert "grown from 9-5-5 to 11-5-5" in result.stdout
    model, _ = load_model(tmp_path / "grown.safetensors")
    assert model.kernels == (11, 5, 5)
    assert_clean_error(train(workspace, "shrink", "--init", start, "--arch", "9-1-5", "-e", 1),
                       "--arch 9-1-5", "cannot grow into it")


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(workspace):
    assert train(workspace, "whole", "-n", "-e", 2, "--seed", 5).returncode == 0
    stopped = train(workspace, "parts", "-n", "-e", 2, "--seed", 5, "--stop-after", 31)
    assert stopped.returncode == 130 and "--resume" in stopped.stderr
    (run,) = (workspace / "parts").iterdir()
    assert torch.load(run / "last.pt", weights_only=True)["progress"]["step"] == 31
    resumed = train(workspace, "parts", "--resume", run)
    assert resumed.returncode == 0, resumed.stderr
    whole, parts = final_weights(workspace / "whole"), final_weights(workspace / "parts")
    for key in whole:
        torch.testing.assert_close(parts[key], whole[key], rtol=0, atol=1e-6)


def test_resume_keeps_the_runs_settings_and_destination(workspace, tmp_path):
    def main_train(*extra):
        return run_script("main.py", "train", "--cpu", "-i", workspace / "samples",
                          "--runs", tmp_path / "runs", "--batch", 8, *extra, cwd=tmp_path)
    stopped = main_train("-n", "-e", 1, "--models", tmp_path / "mine", "--stop-after", 2)
    assert stopped.returncode == 130, stopped.stderr
    (run,) = (tmp_path / "runs").iterdir()
    assert_clean_error(main_train("--resume", run, "-e", 5),
                       "-e 5 differs from its 1", f"--init {run / 'last.pt'}")
    assert_clean_error(main_train("--resume", run, "--arch", "11-5-5"),
                       "continues the run's own 9-1-5 network", "--arch 11-5-5")
    resumed = main_train("--resume", run)   # no --models: the run's own, not ./models
    assert resumed.returncode == 0, resumed.stderr
    assert len(list((tmp_path / "mine").glob("srcnn_x2.*.safetensors"))) == 1
    assert not (tmp_path / "models").exists()
    assert_clean_error(main_train("--resume", run), "this run has finished")
    assert len(list((tmp_path / "mine").glob("*.safetensors"))) == 1   # not published twice


def test_ctrl_c_saves_a_resumable_checkpoint(workspace):
    env = dict(os.environ, PYTHONPATH=str(ROOT), TQDM_DISABLE="1")
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), "train", "--cpu", "-n", "-e", "500",
         "-i", str(workspace / "samples"), "--runs", str(workspace / "sigint"),
         "--models", str(workspace / "sigint-models"), "--batch", "8"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not list((workspace / "sigint").glob("*/metrics.jsonl")):
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "resume with" in err
    (run,) = (workspace / "sigint").iterdir()
    ckpt = torch.load(run / "last.pt", weights_only=True)
    assert ckpt["progress"]["step"] > 0 and "optimizer" in ckpt
    assert not list((workspace / "sigint-models").glob("*.safetensors"))  # unfinished: not published


def test_torchrun_two_processes_match_one_process(workspace):
    one = train(workspace, "single", "-n", "-e", 1, "--seed", 2)
    assert one.returncode == 0, one.stderr
    env = dict(os.environ, PYTHONPATH=str(ROOT), TQDM_DISABLE="1", OMP_NUM_THREADS="1")
    two = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         str(ROOT / "main.py"), "train", "--cpu", "-n", "-e", "1", "--seed", "2", "--batch",
         "8", "-i", str(workspace / "samples"), "--runs", str(workspace / "ddp"),
         "--models", str(workspace / "ddp-models")],
        env=env, capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    assert "x 2 processes" in two.stdout
    single, ddp = final_weights(workspace / "single"), final_weights(workspace / "ddp")
    for key in single:
        torch.testing.assert_close(ddp[key], single[key], rtol=1e-4, atol=1e-5)
    assert len(list((workspace / "ddp-models").glob("*.safetensors"))) == 1  # rank 0 alone writes


def test_torchrun_refuses_a_batch_smaller_than_its_processes(workspace, tmp_path):
    """A process with an empty share of the batch would average a NaN into the others."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), TQDM_DISABLE="1", OMP_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         str(ROOT / "main.py"), "train", "--cpu", "-n", "-e", "1", "--batch", "1", "-i",
         str(workspace / "samples"), "--runs", str(tmp_path / "runs"), "--models",
         str(tmp_path / "models")],
        env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert result.stderr.count("error: --batch 1 is smaller than the 2 processes") == 1
    assert not list((tmp_path / "runs").glob("*")) and not list((tmp_path / "models").glob("*"))


def test_missing_samples_and_empty_pictures_are_clear_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    assert_clean_error(run_script("main.py", "train", "--cpu", "-n", "-i", tmp_path / "none",
                                  "--runs", tmp_path / "r"), "no such folder")
    assert_clean_error(run_script("main.py", "train", "--cpu", "-n", "--from-images",
                                  tmp_path / "empty", "--runs", tmp_path / "r"),
                       "no readable pictures")


def test_from_images_trains_on_fresh_crops(workspace):
    result = run_script("main.py", "train", "--cpu", "-n", "-e", 2, "--from-images",
                        workspace / "raw", "--patch", 32, "--patches", 64, "--batch", 8,
                        "--rescale", 0.7, "--scale", 3, "--runs", workspace / "img",
                        "--models", workspace / "img-models")
    assert result.returncode == 0, result.stderr
    assert "1 held-out picture (" in result.stdout
    (path,) = (workspace / "img-models").glob("srcnn_x3.*.safetensors")
    assert load_model(path, scale=3)[1].training["data"]["kind"] == "images"


def test_validation_scores_the_held_out_pictures_as_eval_does(workspace, tmp_path):
    result = run_script("main.py", "train", "--cpu", "-n", "-e", 2, "--from-images",
                        workspace / "raw", "--patch", 32, "--patches", 64, "--batch", 8,
                        "--scale", 3, "--runs", workspace / "val", "--output",
                        tmp_path / "model.safetensors")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in
               next((workspace / "val").glob("*/metrics.jsonl")).read_text().splitlines()]
    names = sorted(p.name for p in (workspace / "raw").iterdir())
    _, held = split_validation(names, 0.1, 1)  # the defaults --val-fraction and --val-seed
    (tmp_path / "held").mkdir()
    for i in held:
        shutil.copy(workspace / "raw" / names[i], tmp_path / "held")
    result = run_script("main.py", "eval", "-i", tmp_path / "held", "--scale", 3,
                        "--model", tmp_path / "model.safetensors", "--json", tmp_path / "eval.json")
    assert result.returncode == 0, result.stderr
    mean = json.loads((tmp_path / "eval.json").read_text())["mean"]
    best = max(records, key=lambda r: r["val_psnr"])  # the published model is the best epoch
    assert mean["psnr"] == pytest.approx(best["val_psnr"], abs=1e-9)
    assert mean["psnr_bicubic"] == pytest.approx(best["val_psnr_bicubic"], abs=1e-9)


def test_the_held_out_pictures_follow_val_seed_not_seed(workspace):
    from sr.cmd_train import build_data

    def held_out(**settings):
        config = {"val_fraction": 0.34, "data": {"kind": "images", "path": str(workspace / "raw"),
                  "patch": 32, "patches": 8, "rescale": 1.0}, "scale": 2, **settings}
        return [p.tobytes() for p in build_data(config)[1].pictures]

    assert held_out(seed=2, val_seed=1) == held_out(seed=3, val_seed=1)
    assert len({tuple(held_out(seed=2, val_seed=v)) for v in range(1, 5)}) > 1
    # a run recorded before --val-seed existed resumes with the split its --seed picked
    assert held_out(seed=4) == held_out(seed=0, val_seed=4)


def test_large_held_out_pictures_are_cropped_to_the_validation_budget():
    images = {f"p{i}": picture(300, 200, seed=i) for i in range(4)}
    val = held_out_pictures(images, 2, side=128, budget=3 * 128 * 128)
    assert [p.size for p in val.pictures] == [(128, 128)] * 3
    assert val.pictures[0].tobytes() == images["p0"].crop((86, 36, 214, 164)).tobytes()
    assert len(held_out_pictures(images, 2, side=128, budget=1).pictures) == 1


def test_the_held_out_summary_counts_small_sets_exactly():
    images = {"a": picture(60, 40, seed=1), "b": picture(40, 40, seed=2)}
    assert held_out_pictures(images, 2, side=128, budget=10_000).summary() == \
        "2 held-out pictures (4000 pixels) scored whole"
    assert held_out_pictures({"a": images["a"]}, 2).summary() == \
        "1 held-out picture (2400 pixels) scored whole"


BAD_VALUES = [("--batch", 0), ("--batch", -2), ("--lr", -1), ("--lr", 0), ("--lr", "nan"),
              ("--lr", "inf"), ("--seed", -1), ("--seed", 2 ** 32), ("--val-seed", -1),
              ("-e", 0), ("-e", -1), ("--stop-after", 0), ("--val-fraction", 0),
              ("--val-fraction", 1), ("--val-fraction", -0.5)]
BAD_CROP_VALUES = [("--rescale", 0), ("--rescale", 1.5), ("--patches", 0),
                   ("--teacher-weight", 0), ("--teacher-weight", 1.5)]


@pytest.mark.parametrize("option, value", BAD_VALUES + BAD_CROP_VALUES)
def test_bad_values_are_refused_before_anything_is_written(workspace, option, value):
    name = f"bad{option}{value}"
    crops = ("--from-images", workspace / "raw") if (option, value) in BAD_CROP_VALUES else ()
    result = train(workspace, name, "-n", "-e", 1, *crops, option, value, timeout=120)
    assert_clean_error(result, "--epochs" if option == "-e" else option, str(value))
    assert not (workspace / name).exists() and not (workspace / f"{name}-models").exists()


def test_a_scale_below_1_is_refused_by_argparse(workspace):
    result = train(workspace, "scale0", "-n", "-e", 1, "--scale", 0, timeout=120)
    assert result.returncode == 2 and "the scale must be an integer >= 1" in result.stderr
    assert "Traceback" not in result.stderr and not (workspace / "scale0").exists()


def test_help_says_at_least_one_picture_is_held_out():
    result = run_script("main.py", "train", "--help")
    assert "always held out" in " ".join(result.stdout.split())


@pytest.fixture(scope="module")
def small_samples(workspace):
    """Patch folders of 8 and 16 px sides."""
    for size in (8, 16):
        result = run_script("gen_samples.py", 24, "--size", size, "-i", workspace / "raw",
                            "-o", workspace / f"samples{size}")
        assert result.returncode == 0, result.stderr
    return workspace


@pytest.mark.parametrize("data, start, arch, side, need", [
    ("samples8", ("-n",), "9-1-5", 8, 13),
    ("samples16", ("-n", "--arch", "9-5-5"), "9-5-5", 16, 17),
    ("samples16", ("--init", "MODEL"), "9-5-5", 16, 17),
    ("samples16", (), "9-5-5", 16, 17),  # fine-tunes the newest model in --models
    ("raw", ("-n", "--patch", 12), "9-1-5", 12, 13),
])
def test_patches_too_small_for_the_network_are_refused(small_samples, tmp_path, data, start,
                                                       arch, side, need):
    ws = small_samples
    models = tmp_path / "models"
    model = model_file(models, arch=arch)
    start = tuple(model if s == "MODEL" else s for s in start)
    source = ("--from-images", ws / data) if data == "raw" else ("-i", ws / data)
    result = run_script("main.py", "train", "--cpu", "-e", 1, "--batch", 4, *source, *start,
                        "--runs", tmp_path / "runs", "--models", models, timeout=120)
    assert_clean_error(result, f"patches of {side} px are too small for the {arch} network",
                       f"at least {need} px")
    assert not list((tmp_path / "runs").glob("*"))
    assert list(models.iterdir()) == [model]


def test_a_patch_larger_than_every_picture_is_refused_before_the_run(workspace, tmp_path):
    result = run_script("main.py", "train", "--cpu", "-n", "-e", 1, "--from-images",
                        workspace / "raw", "--patch", 97, "--runs", tmp_path / "runs",
                        "--models", tmp_path / "models")
    assert_clean_error(result, "every training picture is smaller than 97 px (--patch)")
    assert not list((tmp_path / "runs").glob("*"))


@pytest.fixture()
def edge_pictures(tmp_path):
    """A folder of two 33 px pictures, which modcrop cuts to 32 px at x2."""
    (tmp_path / "edge").mkdir()
    for i in range(2):
        picture(33, 33, seed=60 + i).save(tmp_path / "edge" / f"a{i}.png")
    return tmp_path / "edge"


def test_pictures_that_modcrop_cuts_below_the_patch_are_refused_up_front(edge_pictures,
                                                                          tmp_path):
    result = run_script("main.py", "train", "--cpu", "-n", "-e", 1, "--from-images",
                        edge_pictures, "--patch", 33, "--scale", 2, "--runs", tmp_path / "runs",
                        "--models", tmp_path / "models", timeout=120)
    assert_clean_error(result, "every training picture is smaller than 33 px (--patch)",
                       "multiples of the scale 2")
    assert not list((tmp_path / "runs").glob("*"))


def test_pictures_that_modcrop_cuts_below_the_patch_get_no_crops(edge_pictures, tmp_path):
    for i in range(3):
        picture(40, 40, seed=70 + i).save(edge_pictures / f"b{i}.png")
    result = run_script("main.py", "train", "--cpu", "-n", "-e", 1, "--from-images",
                        edge_pictures, "--patch", 33, "--scale", 2, "--patches", 32,
                        "--batch", 8, "--runs", tmp_path / "runs",
                        "--output", tmp_path / "model.safetensors", timeout=120)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "model.safetensors").is_file()


def test_rescaled_pictures_that_modcrop_cuts_below_the_patch_get_no_crops():
    from sr.training import ImageCrops
    # rescaled by ~0.95 to 33 px: cut to 32 px at x2; the 80 px picture always fits
    crops = ImageCrops({"edge": picture(35, 35, seed=1), "big": picture(80, 80, seed=2)},
                       64, 33, 2, seed=0, rescale=0.9)
    for epoch in range(12):
        lr, hr = crops.epoch(epoch)
        assert lr.shape == hr.shape == (64, 1, 33, 33)


@pytest.mark.parametrize("option", ["--runs", "--models", "--output"])
def test_folders_that_cannot_be_written_are_refused_before_training(workspace, tmp_path,
                                                                    option):
    """A file where a folder should be: refused even as root, unlike a read-only folder.
    Refused up front: nothing read, no model looked for (no 'starting fresh' line)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    folders = {"--runs": tmp_path / "runs", "--models": tmp_path / "models"}
    target = blocker / ("x.safetensors" if option == "--output" else "sub")
    folders[option] = target
    result = run_script("main.py", "train", "--cpu", "-e", 1, "--batch", 8,
                        "-i", workspace / "samples", *(a for k, v in folders.items()
                                                       for a in (k, v)), timeout=120)
    assert_clean_error(result, f"{blocker}/{'' if option == '--output' else 'sub'}".rstrip("/"),
                       "cannot write")
    assert result.stdout == ""
    assert not list((tmp_path / "runs").glob("*"))


def test_a_refused_run_leaves_no_empty_folders(tmp_path):
    """The first mistake of a new user (no samples yet) must not leave runs/ behind."""
    result = run_script("main.py", "train", "--cpu", "-n", "-e", 1, cwd=tmp_path)
    assert_clean_error(result, "no samples_gen_* folder")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
@pytest.mark.parametrize("option", ["--runs", "--models"])
def test_read_only_folders_are_refused_before_training(workspace, tmp_path, option):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    folders = {"--runs": tmp_path / "runs", "--models": tmp_path / "models", option: locked}
    try:
        result = run_script("main.py", "train", "--cpu", "-e", 1, "--batch", 8,
                            "-i", workspace / "samples", *(a for k, v in folders.items()
                                                           for a in (k, v)), timeout=120)
    finally:
        locked.chmod(0o755)
    assert_clean_error(result, str(locked), "Permission denied")
    assert result.stdout == ""


def test_an_existing_output_file_is_refused_before_training(workspace, tmp_path):
    (tmp_path / "taken.safetensors").write_text("keep")
    result = train(workspace, "taken", "-n", "-e", 1, "--output", tmp_path / "taken.safetensors")
    assert_clean_error(result, "taken.safetensors", "already exists")
    assert not (workspace / "taken").exists()
    assert (tmp_path / "taken.safetensors").read_text() == "keep"


@pytest.mark.parametrize("extra, said", [
    (("-n", "--init", "MODEL"), "-n starts from random weights and --init"),
    (("-n", "-i", "SAMPLES", "--from-images", "RAW"), "-i reads a samples folder"),
    (("-n", "-i", "SAMPLES", "--patch", 32), "--patch sets how --from-images crops"),
    (("--init", "MODEL", "--plain", "-i", "SAMPLES"), "--plain: "),
    (("-n", "-i", "SAMPLES", "--teacher", "MODEL"), "--teacher needs --from-images"),
    (("-n", "--from-images", "RAW", "--teacher-weight", 0.3), "give --teacher too"),
    (("-n", "--from-images", "RAW", "--teacher", "X3MODEL"), "model is for x3, not x2"),
])
def test_options_that_contradict_each_other_are_refused(workspace, tmp_path, extra, said):
    """Each pair used to run with one of the two silently dropped."""
    model = model_file(tmp_path / "models")
    names = {"MODEL": model, "SAMPLES": workspace / "samples", "RAW": workspace / "raw",
             "X3MODEL": model_file(tmp_path, scale=3)}
    result = run_script("main.py", "train", "--cpu", "-e", 1, "--runs", tmp_path / "runs",
                        "--models", tmp_path / "models", "--output", tmp_path / "out.safetensors",
                        *(names.get(str(e), e) for e in extra), timeout=120)
    assert_clean_error(result, said)
    assert not (tmp_path / "runs").exists() and not (tmp_path / "out.safetensors").exists()


def test_resume_refuses_what_would_start_another_run(workspace, tmp_path):
    def main_train(*extra):
        return run_script("main.py", "train", "--cpu", "--runs", tmp_path / "runs",
                          "--batch", 8, *extra, cwd=tmp_path, timeout=120)
    stopped = main_train("-n", "-i", workspace / "samples", "-e", 1, "--stop-after", 2,
                         "--output", tmp_path / "taken.safetensors")
    assert stopped.returncode == 130, stopped.stderr
    (run,) = (tmp_path / "runs").iterdir()
    model = model_file(tmp_path, scale=3)
    for extra, said in [(("--scale", 3), "--scale 3 (the run is x2)"),
                        (("--init", model), "--init is for a new run"),
                        (("-n",), "-n is for a new run"),
                        (("-i", workspace / "raw"), "the run trains on"),
                        (("--from-images", workspace / "raw"), "the run trains on"),
                        (("--patch", 32), "--patch 32 differs from a samples folder's run"),
                        (("--teacher", model), "--teacher is for a new run"),
                        (("--teacher-weight", 0.2), "--teacher-weight is for a new run")]:
        assert_clean_error(main_train("--resume", run, *extra), said)
    (tmp_path / "taken.safetensors").write_text("keep")   # appeared since the run started
    assert_clean_error(main_train("--resume", run),
                       "taken.safetensors: already exists, and the run would publish")
    assert torch.load(run / "last.pt", weights_only=True)["progress"]["step"] == 2
    assert (tmp_path / "taken.safetensors").read_text() == "keep"


def test_resume_sees_pictures_changed_under_the_same_names(workspace, tmp_path):
    samples = shutil.copytree(workspace / "samples", tmp_path / "samples")
    stopped = run_script("main.py", "train", "--cpu", "-n", "-i", samples, "-e", 1,
                         "--batch", 8, "--runs", tmp_path / "runs", "--models",
                         tmp_path / "models", "--stop-after", 2, timeout=120)
    assert stopped.returncode == 130, stopped.stderr
    (run,) = (tmp_path / "runs").iterdir()
    first = sorted(samples.glob("*.large.png"))[0]
    picture(32, 32, seed=99).save(first)   # same name, other pixels
    assert_clean_error(run_script("main.py", "train", "--cpu", "--resume", run, timeout=120),
                       "the training data changed since this run started")


def test_a_diverging_run_stops_with_advice_instead_of_publishing_nan(workspace):
    result = train(workspace, "diverge", "-n", "--plain", "-e", 3, "--lr", 1e30)
    assert_clean_error(result, "training diverged in epoch 1", "lower --lr")
    assert not list((workspace / "diverge-models").glob("*.safetensors"))


def test_a_failed_publish_says_where_the_trained_weights_are(tmp_path):
    from types import SimpleNamespace

    from sr.checkpoint import save_checkpoint
    from sr.cmd_train import publish
    from sr.errors import UserError
    from tests.helpers import perturbed_model
    run = tmp_path / "run"
    save_checkpoint(run / "best.pt", perturbed_model(), 2, train={"scale": 2},
                    extra={"best_psnr": 30.0})
    (tmp_path / "taken.safetensors").write_text("keep")
    args = SimpleNamespace(output=str(tmp_path / "taken.safetensors"), models="models")
    with pytest.raises(UserError, match=f"kept in {run / 'best.pt'}"):
        publish(args, SimpleNamespace(history=[]), run)
    assert (tmp_path / "taken.safetensors").read_text() == "keep"


def test_an_epoch_larger_than_the_memory_is_refused_before_the_run(workspace, tmp_path):
    result = run_script("main.py", "train", "--cpu", "-n", "-e", 1, "--from-images",
                        workspace / "raw", "--patches", 10 ** 10, "--runs", tmp_path / "runs",
                        "--models", tmp_path / "models", timeout=120)
    assert_clean_error(result, "--patches 10000000000 of 48 px need", "use fewer --patches")
    assert not (tmp_path / "runs").exists()


def ensemble_by_hand(model, plane: torch.Tensor) -> torch.Tensor:
    """The x8 self-ensemble of model on a whole (H, W) luma plane, the plain way:
    turn, run the network (reflect padding), turn back, average."""
    x, total = plane[None, None], torch.zeros(plane.shape, dtype=torch.float64)
    with torch.no_grad():
        for k in range(4):
            for flip in (False, True):
                view = torch.rot90(x, k, (2, 3))
                out = model(view.flip(3) if flip else view)
                out = out.flip(3) if flip else out
                total += torch.rot90(out, -k, (2, 3))[0, 0].double()
    return (total / 8).float()


def test_a_teacher_blends_its_ensemble_output_into_the_targets():
    from sr.imaging import degraded_pair
    from sr.training import ImageCrops, Teacher, luma_plane
    from tests.helpers import perturbed_model
    img = picture(70, 60, seed=3)
    teacher = perturbed_model("9-1-5", seed=4)
    hr, bicubic = (torch.from_numpy(luma_plane(p)) for p in degraded_pair(img, 2))
    expected = 0.7 * hr + 0.3 * ensemble_by_hand(teacher, bicubic)
    crops = ImageCrops({"a.png": img}, 8, 32, 2, seed=0, teacher=Teacher(teacher, 0.3))
    target, given = crops.target_and_input(img)
    assert torch.allclose(torch.from_numpy(target), expected, atol=2e-6)
    assert torch.equal(torch.from_numpy(given), bicubic)
    assert (target != luma_plane(degraded_pair(img, 2)[0])).mean() > 0.9  # it moved
    plain = ImageCrops({"a.png": img}, 8, 32, 2, seed=0)
    assert plain.target_and_input(img)[0].tobytes() == hr.numpy().tobytes()


def test_the_teacher_is_part_of_the_data_hash():
    from sr.training import ImageCrops, Teacher, fingerprint
    from tests.helpers import perturbed_model
    images = {"a.png": picture(40, 40, seed=1)}
    plain = ImageCrops(images, 8, 32, 2, seed=0)
    assert plain.hash == fingerprint(images, [images["a.png"].tobytes()])  # runs before
    hashes = {plain.hash} | {ImageCrops(images, 8, 32, 2, seed=0,
                                       teacher=Teacher(perturbed_model(seed=s), w)).hash
                             for s, w in [(1, 0.5), (2, 0.5), (1, 0.25)]}
    assert len(hashes) == 4


def test_training_with_a_teacher_records_it_and_resumes_only_with_the_same(workspace,
                                                                           tmp_path):
    teacher = model_file(tmp_path)
    stopped = run_script("main.py", "train", "--cpu", "-n", "-e", 1, "--from-images",
                         workspace / "raw", "--patch", 32, "--patches", 64, "--batch", 8,
                         "--teacher", teacher, "--teacher-weight", 0.4,
                         "--runs", tmp_path / "runs", "--models", tmp_path / "models",
                         "--stop-after", 2, timeout=120)
    assert stopped.returncode == 130, stopped.stderr
    (run,) = (tmp_path / "runs").iterdir()
    recorded = torch.load(run / "last.pt", weights_only=True)["train"]["data"]["teacher"]
    assert recorded == {"path": str(teacher), "weight": 0.4}
    kept = teacher.read_bytes()
    model_file(tmp_path, arch="9-5-5", name="other.safetensors").replace(teacher)  # other weights
    assert_clean_error(run_script("main.py", "train", "--cpu", "--resume", run, timeout=120),
                       "the training data changed since this run started")
    teacher.write_bytes(kept)            # the teacher as it was
    resumed = run_script("main.py", "train", "--cpu", "--resume", run, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    (published,) = (tmp_path / "models").glob("srcnn_x2.*.safetensors")
    assert load_model(published)[1].training["data"]["teacher"]["weight"] == 0.4
