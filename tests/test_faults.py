"""Faults of issue 19: signals, leftovers, full disks, collisions, misleading messages."""
from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.helpers import ROOT, picture


def start(*args, cwd=None) -> subprocess.Popen:
    """main.py / gen_samples.py (args[0]) running, its output unbuffered."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), TQDM_DISABLE="1", PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, str(ROOT / args[0]), *map(str, args[1:])],
                            cwd=cwd or ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for(ready, proc, seconds=60) -> None:
    deadline = time.monotonic() + seconds
    while not ready():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)


def interrupted(proc, *signals, gap=0.02) -> tuple[str, str]:
    """Send the signals gap seconds apart; (stdout, stderr) once it has ended."""
    try:
        for s in signals:
            proc.send_signal(s)
            time.sleep(gap)
        return proc.communicate(timeout=60)
    finally:
        proc.kill()


def assert_ended_cleanly(proc, err) -> None:
    assert proc.returncode == 130, err
    for sign in ("Traceback", "terminate called", "Exception ignored"):
        assert sign not in err, err


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    """A samples folder as gen_samples.py writes it: 24 pairs of 32 px from 8 pictures."""
    folder = tmp_path_factory.mktemp("samples")
    for i in range(24):
        large = picture(32, 32, seed=i)
        large.save(folder / f"{i:05d}.large.png")
        large.resize((16, 16)).resize((32, 32)).save(folder / f"{i:05d}.small.png")
    (folder / "manifest.json").write_text('{"scale": 2, "sources": {%s}}' % ", ".join(
        f'"{i:05d}": "p{i % 8}.png"' for i in range(24)))
    return folder


def training(samples, runs, *extra):
    return start("main.py", "train", "--cpu", "-n", "-e", 10_000, "-i", samples,
                 "--runs", runs, "--models", runs / "models", "--batch", 2, *extra)


# --- item 5: SIGTERM is Ctrl-C for training ---------------------------------------------

def test_sigterm_stops_training_resumably(samples, tmp_path):
    proc = training(samples, tmp_path)
    wait_for(lambda: list(tmp_path.glob("*/last.pt")), proc)
    out, err = interrupted(proc, signal.SIGTERM)
    assert_ended_cleanly(proc, err)
    assert "resume with: python main.py train --resume" in err
    (run,) = tmp_path.glob("x2-*")
    assert (run / "last.pt").is_file()


# --- item 6: a second interrupt ends promptly and cleanly ---------------------------------

def test_a_second_ctrl_c_ends_training_cleanly(samples, tmp_path):
    proc = training(samples, tmp_path)
    wait_for(lambda: list(tmp_path.glob("*/last.pt")), proc)
    out, err = interrupted(proc, signal.SIGINT, signal.SIGINT)
    assert_ended_cleanly(proc, err)
    assert not list(tmp_path.rglob("*.tmp"))


def test_a_second_ctrl_c_ends_an_upscale_cleanly(tmp_path):
    from tests.helpers import model_file
    model = model_file(tmp_path)
    (tmp_path / "in").mkdir()
    for i in range(40):   # large enough that the job outlasts the test's look-up: 160x120
        picture(480, 360, seed=i).save(tmp_path / "in" / f"p{i}.png")   # was done in time
    for attempt in range(3):   # the crash came in 3 runs of 8; later a lost Ctrl-C (status
        out = tmp_path / f"out{attempt}"   # 0) in about 1 run of 10, a leftover .tmp in 1 of 23
        proc = start("main.py", "upscale", "-i", tmp_path / "in", "-o", out, "--model", model,
                     "--cpu")
        wait_for(lambda: out.is_dir() and any(out.iterdir()), proc)
        assert proc.poll() is None, f"the job ended before Ctrl-C: {sorted(os.listdir(out))}"
        _, err = interrupted(proc, signal.SIGINT, signal.SIGINT, gap=0.01 * (attempt + 1))
        assert_ended_cleanly(proc, err)
        assert not [p.name for p in out.iterdir() if p.name.startswith(".")]


def test_a_ctrl_c_that_python_drops_still_ends_the_run(tmp_path):
    """CPython drops what a __del__ or weakref callback raises: a Ctrl-C landing there
    (the upscale test above once met one in an import's module-lock callback) must not
    leave the job running, deaf to the next ones, to end with status 0."""
    script = tmp_path / "dropped.py"
    script.write_text(f"""import os, signal, sys
sys.path.insert(0, {str(ROOT)!r})
from sr import cli

class Dropper:
    def __del__(self):   # the handler runs in this loop; its KeyboardInterrupt is dropped
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(10 ** 6):
            pass

def main():
    Dropper()
    print("went on")
    return 0

cli.run(main)
""")
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            timeout=60)
    assert "Exception ignored" in result.stderr   # the drop happened
    assert result.stdout == "went on\n"
    assert result.returncode == 130 and result.stderr.endswith("interrupted\n"), result.stderr


def test_a_second_ctrl_c_ends_gen_samples_cleanly(tmp_path):
    (tmp_path / "raw").mkdir()
    for i in range(3):
        picture(200, 160, seed=i).save(tmp_path / "raw" / f"r{i}.png")
    proc = start("gen_samples.py", "100000", "-i", tmp_path / "raw", "-o", tmp_path / "s")
    wait_for(lambda: list(tmp_path.glob(".s.tmp.*/*.png")), proc)
    _, err = interrupted(proc, signal.SIGINT, signal.SIGINT, gap=0.01)
    assert_ended_cleanly(proc, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]


def train_in_process(samples, tmp_path, *extra):
    import main
    return main.main(["train", "--cpu", "-e", "1", "--batch", "2", "-i", str(samples),
                      "--runs", str(tmp_path / "runs"), "--models", str(tmp_path / "models"),
                      *map(str, extra)])


# --- item 2: a bad manifest.json is an input error ----------------------------------------

@pytest.mark.parametrize("manifest", ['[1, 2, 3]', '{"scale": "x"}', '{"scale": 1}',
                                      '{"sources": [1]}', '{"sources": {"00000": [1]}}'])
def test_a_bad_manifest_is_refused_before_the_run(tmp_path, manifest):
    from sr.errors import UserError
    (tmp_path / "S").mkdir()
    (tmp_path / "S" / "manifest.json").write_text(manifest)
    with pytest.raises(UserError, match="manifest.json: not a manifest of gen_samples.py"):
        train_in_process(tmp_path / "S", tmp_path, "-n")
    assert not (tmp_path / "runs").exists()


# --- item 3: a fine-tune that cannot start is refused, not turned into a fresh start -------

@pytest.mark.parametrize("arch, extra, said", [("9-5-5", ["--plain"], "--plain: "),
                                               ("9-5-5", ["--arch", "9-1-5"], "cannot grow")])
def test_the_newest_model_is_refused_as_init_would_be(samples, tmp_path, arch, extra, said):
    from sr.errors import UserError
    from tests.helpers import model_file
    model_file(tmp_path / "models", 2, arch)
    with pytest.raises(UserError, match=said):
        train_in_process(samples, tmp_path, *extra, "--output",
                         tmp_path / "T.safetensors")
    assert not (tmp_path / "runs").exists() and not (tmp_path / "T.safetensors").exists()


# --- item 4: runs started in the same second get their own folders -------------------------

def test_run_folders_are_created_exclusively(tmp_path):
    from sr.cmd_train import new_run_folder
    made = [new_run_folder(tmp_path / "runs" / "x2-08-36-22", {"run": i}) for i in range(3)]
    assert [p.name for p in made] == ["x2-08-36-22", "x2-08-36-22-1", "x2-08-36-22-2"]
    assert (made[2] / "config.json").read_text() == '{\n "run": 2\n}'


# --- item 9: a full disk names the file and leaves nothing half-written --------------------

def no_space(*args):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def fill_disk(monkeypatch, tmp_path, after: int = 0):
    """Writes fail as on a full disk once `after` files were written: to files opened
    by os.fdopen (the atomic writers') and, under tmp_path, by open() (Pillow's)."""
    import builtins
    real_fdopen, real_open = os.fdopen, builtins.open
    opened = []

    def full(f, mode):
        if any(c in mode for c in "wax+"):
            opened.append(f)
            if len(opened) > after:
                f.write = no_space
        return f

    monkeypatch.setattr(os, "fdopen", lambda fd, mode="r", *a, **k:
                        full(real_fdopen(fd, mode, *a, **k), mode))
    monkeypatch.setattr(builtins, "open", lambda file, mode="r", *a, **k: full(
        real_open(file, mode, *a, **k), mode if str(tmp_path) in str(file) else "r"))


def run_cli(capsys, main, *argv):
    """(exit status, stderr) of main(argv) as the command line runs it (sr.cli.run)."""
    from sr import cli
    with pytest.raises(SystemExit) as stop:
        cli.run(lambda: main(list(map(str, argv))))
    return stop.value.code, capsys.readouterr().err


def test_a_full_disk_leaves_no_run_folder_and_names_the_file(samples, tmp_path, monkeypatch,
                                                              capsys):
    import main
    fill_disk(monkeypatch, tmp_path)
    status, err = run_cli(capsys, main.main, "train", "--cpu", "-n", "-e", 1, "-i", samples,
                          "--runs", tmp_path / "runs", "--models", tmp_path / "models")
    assert status == 1 and err.startswith("error: ") and err.count("\n") == 1, err
    assert "config.json: No space left on device" in err
    assert list((tmp_path / "runs").iterdir()) == []


def test_a_full_disk_names_the_json_file_of_eval(tmp_path, monkeypatch, capsys):
    import main
    from tests.helpers import model_file
    (tmp_path / "hr").mkdir()
    picture(24, 24).save(tmp_path / "hr" / "a.png")
    model = model_file(tmp_path)
    fill_disk(monkeypatch, tmp_path)
    status, err = run_cli(capsys, main.main, "eval", "-i", tmp_path / "hr", "--cpu",
                          "--model", model, "--json", tmp_path / "e.json")
    assert (status, err) == (1, f"error: {tmp_path / 'e.json'}: No space left on device\n")
    assert not (tmp_path / "e.json").exists()


def test_a_full_disk_names_the_samples_folder(tmp_path, monkeypatch, capsys):
    import gen_samples
    (tmp_path / "raw").mkdir()
    picture(80, 80).save(tmp_path / "raw" / "r.png")
    fill_disk(monkeypatch, tmp_path)
    status, err = run_cli(capsys, gen_samples.main, 10, "-i", tmp_path / "raw",
                          "-o", tmp_path / "s")
    assert status == 1 and "Traceback" not in err   # the last line: after the progress bar
    assert err.splitlines()[-1] == f"error: {tmp_path / 's'}: No space left on device"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]


@pytest.fixture
def instant_onnx(monkeypatch):
    """torch.onnx.export made instant: a valid one-node graph (what the files hold does
    not matter here)."""
    import types

    import torch
    from onnx import TensorProto, helper

    def export(*args, **kwargs):
        luma, out = (helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", 1, "H", "W"])
                     for name in ("luma", "upscaled"))
        graph = helper.make_graph([helper.make_node("Identity", ["luma"], ["upscaled"])],
                                  "g", [luma], [out])
        return types.SimpleNamespace(model_proto=helper.make_model(graph))
    monkeypatch.setattr(torch.onnx, "export", export)


def test_a_full_disk_leaves_the_pages_old_set_whole(tmp_path, monkeypatch, instant_onnx,
                                                     capsys):
    import main
    from tests.helpers import model_file
    for scale in (2, 3):
        model_file(tmp_path / "models", scale)
    web = tmp_path / "web"
    web.mkdir()
    old = {"srcnn.onnx": "old x2", "srcnn_x3.onnx": "old x3", "models.json": "old index"}
    for name, text in old.items():
        (web / name).write_text(text)
    fill_disk(monkeypatch, tmp_path, after=1)   # room for one model file
    status, err = run_cli(capsys, main.main, "export-onnx", "--models", tmp_path / "models",
                          "--web", web)
    assert (status, err) == (1, f"error: {web / 'srcnn_x3.onnx'}: No space left on device\n")
    assert {p.name: p.read_text() for p in web.iterdir()} == old


# --- item 7: leftovers of killed runs ------------------------------------------------------

def aged(path, hours):
    t = time.time() - hours * 3600
    os.utime(path, (t, t))
    return path


def test_upscale_removes_its_stale_temporaries_only(tmp_path, capsys):
    import main
    from tests.helpers import model_file
    picture(20, 20).save(tmp_path / "p.png")
    out = tmp_path / "out"
    out.mkdir()
    stale = out / ".p.2026-11-28--08-00-00.png.k3j_9x2a.tmp"
    live = out / ".p.2026-11-29--08-00-00-1.png.abcdefgh.tmp"   # a concurrent run's
    others = [out / ".q.2026-11-28--08-00-00.png.k3j_9x2a.tmp",   # not an input's
              out / ".p.2026-11-28--08-00-00.png.tmp"]            # not the writer's name
    for path in [stale, live, *others]:
        path.write_bytes(b"partial")
        aged(path, 0 if path == live else 2)
    assert main.main(["upscale", "-i", str(tmp_path / "p.png"), "-o", str(out), "--cpu",
                      "--model", str(model_file(tmp_path))]) == 0
    said = capsys.readouterr()
    assert f"removed {stale}" in said.out and f"{live}: a temporary" in said.err
    assert not stale.exists() and live.exists() and all(p.exists() for p in others)


def test_gen_samples_removes_its_stale_hidden_folders(tmp_path, capsys):
    import gen_samples
    (tmp_path / "raw").mkdir()
    picture(80, 80).save(tmp_path / "raw" / "r.png")
    stale, live = tmp_path / ".s.tmp.ab_cd3fg", tmp_path / ".s.tmp.zz9xy_01"
    for folder in (stale, live):
        folder.mkdir()
        (folder / "00000.large.png").write_bytes(b"partial")
    aged(stale, 2)
    assert gen_samples.main(["10", "-i", str(tmp_path / "raw"), "-o", str(tmp_path / "s")]) == 0
    assert not stale.exists() and live.exists() and (tmp_path / "s" / "manifest.json").exists()
    assert f"{live}: a temporary" in capsys.readouterr().err


# --- item 8: --suffix is a name part, outputs stay under -o ------------------------------

def test_a_suffix_cannot_leave_the_output_folder(tmp_path):
    import main
    from sr.errors import UserError
    from tests.helpers import model_file
    picture(20, 20).save(tmp_path / "ok.png")
    model = model_file(tmp_path)
    with pytest.raises(UserError, match="--suffix /../../escaped: a part of a file name"):
        main.main(["upscale", "-i", str(tmp_path / "ok.png"), "-o", str(tmp_path / "out" / "d"),
                   "--suffix", "/../../escaped", "--model", str(model), "--cpu"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.png", model.name]


# --- item 10: two upscales in the same second ------------------------------------------

def test_a_time_stamped_name_taken_meanwhile_becomes_the_next_free_one(tmp_path, monkeypatch):
    import main
    import sr.cmd_upscale
    import sr.model_files
    from tests.helpers import model_file
    picture(20, 20).save(tmp_path / "p.png")
    plan = sr.cmd_upscale.plan_targets

    def plan_then_another_run_writes(jobs, *args, **kwargs):
        plan(jobs, *args, **kwargs)
        for job in jobs:   # the other run, started in the same second, is faster
            job.target.parent.mkdir(parents=True, exist_ok=True)
            job.target.write_bytes(b"the other run's")
    monkeypatch.setattr(sr.cmd_upscale, "plan_targets", plan_then_another_run_writes)
    monkeypatch.setattr(sr.model_files, "timestamp", lambda: "2026-11-29--08-36-22")
    assert main.main(["upscale", "-i", str(tmp_path / "p.png"), "-o", str(tmp_path / "out"),
                      "--model", str(model_file(tmp_path)), "--cpu"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "p.2026-11-29--08-36-22-1.png", "p.2026-11-29--08-36-22.png"]


# --- item 12: a repeated -i --------------------------------------------------------------

def test_upscale_takes_every_i(tmp_path):
    import main
    args = main.parse_args(["upscale", "-i", "a.png", "-i", "b.png", "c.png"])
    assert args.input == ["a.png", "b.png", "c.png"]


@pytest.mark.parametrize("argv", [["main.py", "eval", "-i", "A", "-i", "B"],
                                  ["main.py", "train", "-i", "A", "--input", "B"],
                                  ["gen_samples.py", "10", "-i", "A", "-i", "B"]])
def test_a_repeated_single_valued_i_is_refused(argv, capsys):
    import gen_samples
    import main
    parse = main.parse_args if argv[0] == "main.py" else gen_samples.parse_args
    with pytest.raises(SystemExit):
        parse(argv[1:])
    assert "given twice" in capsys.readouterr().err


# --- messages that misled ------------------------------------------------------------------

@pytest.mark.parametrize("argv, said", [
    (["upscale", "-i", "x.png", "--scale", "1e308"], "at most 64), not 1e308"),
    (["eval", "-i", "x", "--scale", "65"], "at most 64), not 65")])
def test_absurd_scales_are_refused(argv, said, capsys):
    import main
    with pytest.raises(SystemExit):
        main.parse_args(argv)
    assert said in capsys.readouterr().err


def test_a_missing_gpu_is_named_as_given():
    import argparse

    import torch

    from sr import cli
    from sr.errors import UserError
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(UserError, match="^--device cuda:7: "):
        cli.pick_device(argparse.Namespace(cpu=False, device="cuda:7"))


@pytest.mark.parametrize("argv", [["-5"], ["10", "--seed", "-1"], ["10", "--size", "-8"]])
def test_gen_samples_says_numbers_are_not_negative(argv, capsys):
    import gen_samples
    with pytest.raises(SystemExit):
        gen_samples.parse_args(argv)
    assert "no number here is negative" in capsys.readouterr().err


def test_gen_samples_accepts_seed_with_equals_and_checks_it(capsys):
    import gen_samples
    with pytest.raises(SystemExit):
        gen_samples.parse_args(["10", "--seed=-1"])
    assert "must be between 0 and 2**32 - 1, not -1" in capsys.readouterr().err


def test_gen_samples_says_a_file_stands_in_the_way(tmp_path):
    import gen_samples
    from sr.errors import UserError
    (tmp_path / "raw").mkdir()
    picture(40, 40).save(tmp_path / "raw" / "r.png")
    (tmp_path / "file").write_text("in the way")
    with pytest.raises(UserError, match="file is a file, not a folder"):
        gen_samples.main(["10", "-i", str(tmp_path / "raw"), "-o", str(tmp_path / "file/sub")])


@pytest.mark.parametrize("command", ["eval", "export-onnx"])
def test_an_unwritable_target_is_refused_before_the_work(tmp_path, monkeypatch, command):
    """As root (these tests' usual user) no mode bit stops a write: the refusal of the
    file system is simulated."""
    import tempfile

    import main
    from sr.errors import UserError
    from tests.helpers import model_file
    model = model_file(tmp_path)
    (tmp_path / "hr").mkdir()
    picture(24, 24).save(tmp_path / "hr" / "a.png")

    def refused(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")
    monkeypatch.setattr(tempfile, "NamedTemporaryFile", refused)
    monkeypatch.setattr("sr.checkpoint.load_model", lambda *a: pytest.fail("worked first"))
    target = tmp_path / "ro" / "out"
    target.parent.mkdir()
    argv = {"eval": ["eval", "-i", str(tmp_path / "hr"), "--json", str(target)],
            "export-onnx": ["export-onnx", "-o", str(target)]}[command]
    with pytest.raises(UserError, match=f"{target.parent}: cannot write .* there "
                                        f"\\(Permission denied\\)"):
        main.main([*argv, "--model", str(model), "--cpu"][:None if command == "eval" else -1])
