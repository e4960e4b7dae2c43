"""Faults of issue 19: signals, leftovers, full disks, collisions, misleading messages."""
from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.helpers import ROOT, assert_clean_error, picture


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
    for i in range(40):
        picture(160, 120, seed=i).save(tmp_path / "in" / f"p{i}.png")
    for attempt in range(3):   # the crash came in 3 runs of 8
        out = tmp_path / f"out{attempt}"
        proc = start("main.py", "upscale", "-i", tmp_path / "in", "-o", out, "--model", model,
                     "--cpu")
        wait_for(lambda: out.is_dir() and any(out.iterdir()), proc)
        _, err = interrupted(proc, signal.SIGINT, signal.SIGINT, gap=0.01 * (attempt + 1))
        assert_ended_cleanly(proc, err)
        assert not [p.name for p in out.iterdir() if p.name.startswith(".")]


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
        train_in_process(samples, tmp_path, *extra, "--output", tmp_path / "T.pt")
    assert not (tmp_path / "runs").exists() and not (tmp_path / "T.pt").exists()


# --- item 4: runs started in the same second get their own folders -------------------------

def test_run_folders_are_created_exclusively(tmp_path):
    from sr.cmd_train import new_run_folder
    made = [new_run_folder(tmp_path / "runs" / "x2-08-36-22", {"run": i}) for i in range(3)]
    assert [p.name for p in made] == ["x2-08-36-22", "x2-08-36-22-1", "x2-08-36-22-2"]
    assert (made[2] / "config.json").read_text() == '{\n "run": 2\n}'


# --- item 9: a full disk names the file and leaves nothing half-written --------------------

def no_space(*args):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.fixture
def full_disk(monkeypatch, tmp_path):
    """Writes fail as on a full disk: to files opened by os.fdopen (the atomic writers')
    and, under tmp_path, by open() (Pillow's)."""
    import builtins
    real_fdopen, real_open = os.fdopen, builtins.open

    def full(f, mode):
        if any(c in mode for c in "wax+"):
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


def test_a_full_disk_leaves_no_run_folder_and_names_the_file(samples, tmp_path, full_disk,
                                                              capsys):
    import main
    status, err = run_cli(capsys, main.main, "train", "--cpu", "-n", "-e", 1, "-i", samples,
                          "--runs", tmp_path / "runs", "--models", tmp_path / "models")
    assert status == 1 and err.startswith("error: ") and err.count("\n") == 1, err
    assert "config.json: No space left on device" in err
    assert list((tmp_path / "runs").iterdir()) == []
