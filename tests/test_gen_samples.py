import json
import os
import stat
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

import gen_samples
from sr.imaging import degraded_pair, modcrop
from sr.patches import crop_pairs, patches_per_image
from sr.pictures import load_rgb
from tests.helpers import ROOT, assert_clean_error, picture, run_script


def make_raw(folder, sizes=((120, 90), (80, 100), (64, 64))):
    folder.mkdir()
    for i, (w, h) in enumerate(sizes):
        picture(w, h, seed=i).save(folder / f"p{i}.png")
    return folder


def files(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_same_seed_same_files_other_seed_other_files(tmp_path):
    raw = make_raw(tmp_path / "raw")
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        result = run_script("gen_samples.py", 20, "--size", 32, "--seed", seed,
                            "-i", raw, "-o", tmp_path / name)
        assert result.returncode == 0, result.stderr
    a, b, c = (files(tmp_path / n) for n in "abc")
    assert len([n for n in a if n.endswith(".large.png")]) == 20
    assert a == b
    assert a != c


def test_small_patch_is_the_protocol_degradation(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    picture(32, 32, seed=5).save(raw / "one.png")  # one picture exactly one patch big
    result = run_script("gen_samples.py", 1, "--size", 32, "--scale", 2,
                        "-i", raw, "-o", tmp_path / "s")
    assert result.returncode == 0, result.stderr
    large = Image.open(tmp_path / "s" / "00000.large.png")
    small = Image.open(tmp_path / "s" / "00000.small.png")
    assert np.array_equal(np.asarray(large), np.asarray(picture(32, 32, seed=5)))
    assert np.array_equal(np.asarray(small), np.asarray(degraded_pair(large.convert("RGB"), 2)[1]))
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert manifest["scale"] == 2 and manifest["sources"]["00000"] == "one.png"


def test_default_output_folder_and_64_flag(tmp_path):
    make_raw(tmp_path / "images_raw")
    result = run_script("gen_samples.py", 5, "-64", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert Image.open(tmp_path / "samples_gen_64" / "00004.large.png").size == (64, 64)


def test_small_and_unreadable_pictures_are_skipped_with_a_note(tmp_path):
    raw = make_raw(tmp_path / "raw", sizes=((100, 100), (20, 20)))
    (raw / "notes.png").write_text("not a picture")
    result = run_script("gen_samples.py", 4, "--size", 32, "-i", raw, "-o", tmp_path / "s")
    assert result.returncode == 0, result.stderr
    assert "p1.png (20x20) is smaller" in result.stdout
    assert "notes.png" in result.stderr
    assert len(list((tmp_path / "s").glob("*.small.png"))) == 4


def test_empty_or_missing_input_folder_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    assert_clean_error(run_script("gen_samples.py", 4, "-i", tmp_path / "empty",
                                  "-o", tmp_path / "s"), "no pictures")
    assert_clean_error(run_script("gen_samples.py", 4, "-i", tmp_path / "nope",
                                  "-o", tmp_path / "s"), "no such folder")
    assert not (tmp_path / "s").exists()


def test_existing_output_is_kept_unless_overwrite(tmp_path):
    raw = make_raw(tmp_path / "raw")
    out = tmp_path / "s"
    assert run_script("gen_samples.py", 3, "-i", raw, "-o", out).returncode == 0
    before = files(out)
    assert_clean_error(run_script("gen_samples.py", 5, "-i", raw, "-o", out), "already exists")
    assert files(out) == before
    assert run_script("gen_samples.py", 5, "-i", raw, "-o", out, "--overwrite").returncode == 0
    assert len(list(out.glob("*.large.png"))) == 5
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_overwrite_never_deletes_a_folder_it_did_not_write(tmp_path):
    raw = make_raw(tmp_path / "raw")
    pictures = files(raw)
    assert_clean_error(run_script("gen_samples.py", 3, "-i", raw, "-o", raw, "--overwrite"),
                       "is the input folder")
    other = tmp_path / "other"
    other.mkdir()
    (other / "precious.png").write_bytes(b"keep me")
    assert_clean_error(run_script("gen_samples.py", 3, "-i", raw, "-o", other, "--overwrite"),
                       "did not write (precious.png)")
    plain = tmp_path / "plain"
    plain.write_text("a file")
    assert_clean_error(run_script("gen_samples.py", 3, "-i", raw, "-o", plain, "--overwrite"),
                       "is a file")
    assert files(raw) == pictures
    assert (other / "precious.png").read_bytes() == b"keep me"
    assert plain.read_text() == "a file"


def test_size_zero_is_refused_not_replaced_by_the_default(tmp_path):
    raw = make_raw(tmp_path / "raw")
    result = run_script("gen_samples.py", 3, "--size", 0, "-i", raw, "-o", tmp_path / "s")
    assert result.returncode == 2 and "error: --size must be at least" in result.stderr
    assert not (tmp_path / "s").exists()


def test_a_picture_that_modcrop_cuts_below_the_patch_is_skipped(tmp_path):
    """At x3, 32x32 is cut to 30x30 before cropping: too small for a 32 px patch;
    33x33 stays 33x33 and gives patches."""
    raw = make_raw(tmp_path / "raw", sizes=((100, 100), (32, 32), (33, 33)))
    result = run_script("gen_samples.py", 60, "--size", 32, "--scale", 3,
                        "-i", raw, "-o", tmp_path / "s")
    assert result.returncode == 0, result.stderr
    assert "p1.png (32x32) is smaller than a 32 px patch once cut to multiples of 3 (30x30)" \
        in result.stdout
    assert "p2.png" not in result.stdout
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert manifest["count"] == 60 and set(manifest["sources"].values()) == {"p0.png", "p2.png"}


def test_only_pictures_that_modcrop_cuts_below_the_patch_is_a_clean_error(tmp_path):
    raw = make_raw(tmp_path / "raw", sizes=((32, 32), (50, 32)))  # cut to 30x30, 48x30
    result = run_script("gen_samples.py", 4, "--size", 32, "--scale", 3,
                        "-i", raw, "-o", tmp_path / "s")
    assert_clean_error(result, "no picture is at least 32x32 px", "multiples of the scale 3")
    assert not (tmp_path / "s").exists()


def test_a_picture_of_a_refused_kind_is_skipped_up_front_with_its_name(tmp_path):
    raw = make_raw(tmp_path / "raw")
    Image.fromarray(np.full((80, 80), 0.5, np.float32)).save(raw / "float.tif")
    result = run_script("gen_samples.py", 200, "--size", 32, "-i", raw, "-o", tmp_path / "s")
    assert result.returncode == 0, result.stderr
    assert "skipping" in result.stderr and "float.tif: 32-bit float pictures" in result.stderr
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert "float.tif" not in manifest["sources"].values() and manifest["count"] == 200


def test_an_empty_output_folder_is_filled_without_overwrite(tmp_path):
    raw = make_raw(tmp_path / "raw")
    (tmp_path / "s").mkdir()
    result = run_script("gen_samples.py", 3, "-i", raw, "-o", tmp_path / "s")
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "s").glob("*.large.png"))) == 3


def test_contradicting_sizes_and_a_file_as_input_folder_are_refused(tmp_path):
    raw = make_raw(tmp_path / "raw")
    result = run_script("gen_samples.py", 3, "-64", "--size", 32, "-i", raw,
                        "-o", tmp_path / "s")
    assert result.returncode == 2 and "-64 and --size 32 contradict" in result.stderr
    assert_clean_error(run_script("gen_samples.py", 3, "-i", raw / "p0.png",
                                  "-o", tmp_path / "s"), "p0.png: is a file")
    assert not (tmp_path / "s").exists()


def test_a_count_or_seed_out_of_range_is_one_line_not_a_traceback(tmp_path):
    raw = make_raw(tmp_path / "raw")
    for args, rule in (((10 ** 22,), f"count: must be from 1 to 1000000, not {10 ** 22}"),
                       ((0,), "count: must be from 1 to 1000000, not 0"),
                       ((10, "--seed=-1"), "--seed: must be between 0 and 2**32 - 1, not -1"),
                       ((10, "--seed", 2 ** 32), "between 0 and 2**32 - 1, not 4294967296")):
        result = run_script("gen_samples.py", *args, "-i", raw, "-o", tmp_path / "s")
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert rule in result.stderr
    assert not (tmp_path / "s").exists()


def test_the_samples_folder_gets_the_mode_of_a_plain_mkdir(tmp_path):
    """Not mkdtemp's 0700: a new folder follows the umask, an empty one given as -o
    keeps its own mode."""
    raw = make_raw(tmp_path / "raw")
    kept = tmp_path / "kept"
    kept.mkdir()
    kept.chmod(0o751)
    for out in (tmp_path / "new", kept):
        result = run_script("gen_samples.py", 2, "-i", raw, "-o", out, umask=0o027)
        assert result.returncode == 0, result.stderr
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o750
    assert stat.S_IMODE(kept.stat().st_mode) == 0o751


def test_sigterm_cleans_up_like_ctrl_c(tmp_path):
    raw = make_raw(tmp_path / "raw")
    env = dict(os.environ, PYTHONPATH=str(ROOT), TQDM_DISABLE="1")
    run = subprocess.Popen([sys.executable, str(ROOT / "gen_samples.py"), "100000",
                            "-i", str(raw), "-o", str(tmp_path / "s")],
                           env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not list(tmp_path.glob(".s.tmp.*/*.png")) and time.monotonic() < deadline:
            time.sleep(0.05)   # until the hidden folder holds pairs
        run.terminate()        # SIGTERM
        stderr = run.communicate(timeout=60)[1]
    finally:
        run.kill()
    assert run.returncode == 130 and "Traceback" not in stderr, stderr
    assert "interrupted" in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]


def all_at_once(raw, count, size, scale, seed):
    """{name: (large, small) arrays} cut as gen_samples.py cut them before it saved
    each pair as it came: every pair of a picture first, pictures in name order."""
    paths = sorted(raw.iterdir())
    rng = np.random.default_rng(seed)
    counts = patches_per_image([Image.open(p).size for p in paths], count, size, scale, rng)
    pairs = [pair for path, n in zip(paths, counts) if n
             for pair in list(crop_pairs(modcrop(load_rgb(path), scale), n, size, scale, rng))]
    return {f"{i:05d}": tuple(np.asarray(p) for p in pair) for i, pair in enumerate(pairs)}


def test_each_pair_is_saved_before_the_next_is_cut_and_they_are_the_same(tmp_path,
                                                                         monkeypatch):
    """Memory does not grow with the count; the files are those of before."""
    raw = make_raw(tmp_path / "raw")
    saved_before = []   # at each draw of a crop's corner: how many pairs were on disk

    real_rng = np.random.default_rng

    class RecordingRng:   # a pair's crop draws two integers (crop_pairs)
        def __init__(self, seed):
            self.rng = real_rng(seed)

        def integers(self, *args):
            saved_before.append(len(list(tmp_path.glob(".streamed.tmp.*/*.large.png"))))
            return self.rng.integers(*args)

        def __getattr__(self, name):
            return getattr(self.rng, name)
    monkeypatch.setattr(gen_samples.np.random, "default_rng", RecordingRng)
    args = [20, "--size", 32, "--scale", 3, "--seed", 5, "-i", raw, "-o", tmp_path / "streamed"]
    assert gen_samples.main(list(map(str, args))) == 0
    monkeypatch.undo()
    assert saved_before == [i // 2 for i in range(40)]
    expected = all_at_once(raw, 20, 32, 3, seed=5)
    assert sorted(expected) == sorted(n[:5] for n in files(tmp_path / "streamed")
                                      if n.endswith(".large.png"))
    for name, (large, small) in expected.items():
        for kind, want in (("large", large), ("small", small)):
            got = np.asarray(Image.open(tmp_path / "streamed" / f"{name}.{kind}.png"))
            assert np.array_equal(got, want)


@pytest.mark.parametrize("scale", [1, 2])
def test_jpeg_pairs_are_degraded_at_the_quality_the_manifest_records(tmp_path, scale):
    """One quality per picture, drawn by the seed: the same seed, the same files."""
    raw = make_raw(tmp_path / "raw", sizes=((32, 32),) * 3)   # each pair a whole picture
    for name in "ab":
        result = run_script("gen_samples.py", 4, "--size", 32, "--scale", scale, "--jpeg",
                            "20-60", "--seed", 7, "-i", raw, "-o", tmp_path / name)
        assert result.returncode == 0, result.stderr
    assert files(tmp_path / "a") == files(tmp_path / "b")
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["degradation"] == {"resize": "bicubic", "jpeg": [20, 60]}
    for pair, source in manifest["sources"].items():
        quality = manifest["qualities"][source]
        assert 20 <= quality <= 60
        small = np.asarray(Image.open(tmp_path / "a" / f"{pair}.small.png"))
        assert np.array_equal(small, np.asarray(degraded_pair(load_rgb(raw / source), scale,
                                                              quality)[1]))
        assert not np.array_equal(small, np.asarray(degraded_pair(load_rgb(raw / source),
                                                                  scale)[1]))


def test_scale_1_without_jpeg_is_refused(tmp_path):
    raw = make_raw(tmp_path / "raw")
    result = run_script("gen_samples.py", 3, "--scale", 1, "-i", raw, "-o", tmp_path / "s")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert [line for line in result.stderr.splitlines() if "error:" in line] == [
        "gen_samples.py: error: --scale 1 keeps the size: its pairs differ only by JPEG "
        "artifacts, so give --jpeg QMIN-QMAX too"]
    assert not (tmp_path / "s").exists()


def test_old_manifests_load_as_clean_and_bad_degradations_are_refused(tmp_path):
    from sr.errors import UserError
    from sr.training import read_manifest
    (tmp_path / "manifest.json").write_text('{"scale": 3, "degradation": "pillow-bicubic"}')
    assert read_manifest(tmp_path)["degradation"] == {"resize": "bicubic", "jpeg": None}
    for bad in ('{"scale": 1, "degradation": {"resize": "bicubic", "jpeg": null}}',
                '{"degradation": {"resize": "bicubic", "jpeg": [60, 20]}}',
                '{"degradation": {"resize": "nearest", "jpeg": null}}',
                '{"degradation": 7}'):
        (tmp_path / "manifest.json").write_text(bad)
        with pytest.raises(UserError, match="manifest.json: not a manifest of gen_samples.py"):
            read_manifest(tmp_path)
