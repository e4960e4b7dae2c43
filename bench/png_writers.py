"""PNG writers (and the 16-bit reader) measured through the whole `main.py upscale`.

    flock /tmp/bench.lock python bench/png_writers.py --baseline e7dc87a   # 8- and 16-bit
    flock /tmp/bench.lock python bench/png_writers.py --baseline e7dc87a --memory
    flock /tmp/bench.lock python bench/png_writers.py --baseline e7dc87a --encode-only

A 1920x1080 RGB PNG, 8-bit and 16-bit, x2 with a 9-1-5 model (decode, colour,
network, encode, starting Python), median wall time of --repeats runs, candidates
alternating so that all see the same load on a shared machine.  Candidates:

- baseline: `main.py` of the tree at git revision --baseline (`git archive`), e.g.
  the one with the former hand-written parallel PNG writer and 16-bit double decode;
- this tree, with sr.picture_files.encode_png replaced by each entry of ENCODERS
  (`default` is the shipped one).

Then the 16-bit PNG read alone (read_picture of the 3840x2160 result, in process),
baseline against this tree.  --memory: peak resident memory of a 4096x4096 RGB PNG
x2, baseline against this tree (bench/upscale.py --memory's picture).
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(ROOT))


def pillow_png(pixels: np.ndarray, level: int) -> bytes:
    import io

    from PIL import Image
    if pixels.dtype != np.uint8:
        raise SystemExit("Pillow cannot write 16-bit RGB")
    out = io.BytesIO()
    Image.fromarray(pixels if pixels.shape[2] > 1 else pixels[..., 0]).save(
        out, "PNG", compress_level=level)
    return out.getvalue()


def libpng(**options):
    def encode(pixels: np.ndarray, level: int) -> bytes:
        import imagecodecs
        return imagecodecs.png_encode(np.ascontiguousarray(pixels), level, **options)
    return encode


ENCODERS = {   # name -> encode_png(pixels (H, W, C), level) -> PNG bytes
    "libpng, Paeth filter, default strategy": libpng(filter=128),
    "libpng, adaptive filter": libpng(),
    "libpng, Sub filter + RLE (OpenCV's fast)": libpng(filter=16, strategy=3),
    "Pillow compress_level": pillow_png,
}
EIGHT_BIT_ONLY = {"Pillow compress_level"}

# Runs main.py of tree argv[1] with encoder argv[2] ("default": the tree's own).
PATCHED = ("import runpy, sys\n"
           "root, encoder = sys.argv[1], sys.argv[2]\n"
           "sys.path[:0] = [root, sys.argv[3]]\n"
           "if encoder != 'default':\n"
           "    import png_writers, sr.picture_files\n"
           "    sr.picture_files.encode_png = png_writers.ENCODERS[encoder]\n"
           "sys.argv = [root + '/main.py', *sys.argv[4:]]\n"
           "runpy.run_path(sys.argv[0], run_name='__main__')\n")

# Runs argv[1:] and prints its peak resident KiB and CPU seconds (all threads): a
# machine shared with other work stretches wall time far more than CPU time.
LAUNCHER = ("import os, subprocess, sys\n"
            "p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
            "_, status, usage = os.wait4(p.pid, 0)\n"
            "print(usage.ru_maxrss, usage.ru_utime + usage.ru_stime, file=sys.stderr)\n"
            "sys.exit(os.waitstatus_to_exitcode(status))\n")

READ = ("import statistics, sys, time\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "from sr.pictures import read_picture\n"
        "wall, cpu = [], []\n"
        "for _ in range(int(sys.argv[3])):\n"
        "    start, start_cpu = time.perf_counter(), time.process_time()\n"
        "    read_picture(sys.argv[2])\n"
        "    wall.append(time.perf_counter() - start)\n"
        "    cpu.append(time.process_time() - start_cpu)\n"
        "print(statistics.median(wall), statistics.median(cpu))\n")


# Times write_png of tree argv[1] with encoder argv[2] on the array in argv[3]: prints
# the fastest of argv[4] writes, wall and CPU seconds (all threads), in one process.
ENCODE = ("import io, sys, time\n"
          "import numpy as np\n"
          "root, encoder, array, repeats = sys.argv[1:5]\n"
          "sys.path[:0] = [root, sys.argv[5]]\n"
          "import sr.picture_files as pf\n"
          "from sr.pictures import Picture\n"
          "if encoder != 'default':\n"
          "    import png_writers; pf.encode_png = png_writers.ENCODERS[encoder]\n"
          "picture = Picture(np.load(array))\n"
          "pf.write_png(io.BytesIO(), picture, 1)\n"
          "runs = []\n"
          "for _ in range(int(repeats)):\n"
          "    wall, cpu = time.perf_counter(), time.process_time()\n"
          "    pf.write_png(io.BytesIO(), picture, 1)\n"
          "    runs.append((time.perf_counter() - wall, time.process_time() - cpu))\n"
          "print(*min(runs))\n")


def encode_only(candidates: dict, result: Path, tmp: Path, repeats: int) -> None:
    """write_png alone on a result of the command, each candidate in its own process,
    alternating rounds; medians over rounds of each process's fastest write."""
    from sr.pictures import read_picture
    array = tmp / f"{result.stem}.npy"
    np.save(array, read_picture(result).colour)
    runs = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, (root, encoder) in candidates.items():
            out = subprocess.run([sys.executable, "-c", ENCODE, root, encoder, array, "3",
                                  BENCH], check=True, capture_output=True, text=True).stdout
            runs[name].append([float(v) for v in out.split()])
    base = None
    for name, values in runs.items():
        wall, cpu = (statistics.median(v[i] for v in values) for i in range(2))
        base = base or (wall, cpu)
        print(f"  write_png alone, {name:44s} wall {wall:.3f}s x{base[0] / wall:4.2f}  "
              f"CPU {cpu:.3f}s x{base[1] / cpu:4.2f}")


def tree_at(revision: str, folder: Path) -> Path:
    """The project's files at a git revision, unpacked into folder."""
    folder.mkdir()
    archive = subprocess.run(["git", "archive", revision], cwd=ROOT, check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def inputs(tmp: Path) -> dict:
    """{'8-bit': path, '16-bit': path}: 1920x1080 RGB PNGs of dataset pictures (the
    16-bit one: 2x2 means of a 3840x2160 mosaic, so its low bytes carry detail)."""
    from PIL import Image

    from upscale import test_picture
    eight = tmp / "rgb8.png"
    Image.fromarray(test_picture(1920, 1080)).save(eight)
    big = test_picture(3840, 2160, seed=1).astype(np.uint32) * 257
    rgb16 = (big[0::2, 0::2] + big[1::2, 0::2] + big[0::2, 1::2] + big[1::2, 1::2] + 2) // 4
    from sr.picture_files import write_png
    from sr.pictures import Picture
    with open(tmp / "rgb16.png", "wb") as f:
        write_png(f, Picture(rgb16.astype(np.uint16)))
    return {"8-bit": eight, "16-bit": tmp / "rgb16.png"}


def run_timed(cmd: list) -> tuple:
    """(wall seconds, CPU seconds, peak resident MiB) of a command; fails loudly."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", LAUNCHER, *map(str, cmd)],
                          stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(map(str, cmd))}\n{proc.stderr}")
    peak, cpu = proc.stderr.split()[-2:]
    return wall, float(cpu), int(peak) / 1024


def command(root: Path, encoder: str, model: Path, picture: Path, out: Path) -> list:
    from upscale import ours_cmd
    return [sys.executable, "-c", PATCHED, root, encoder, BENCH,
            *ours_cmd(model, picture, out)[2:]]


def compare(candidates: dict, model: Path, picture: Path, tmp: Path, repeats: int) -> None:
    """Whole commands, alternating; prints medians of wall and CPU seconds (ratios to
    the first candidate), peak MiB and file size."""
    runs = {name: [] for name in candidates}        # [(wall, cpu, peak MiB)]
    folder = {name: tmp / "out" / picture.stem / str(i) for i, name in enumerate(candidates)}
    for run in range(repeats + 1):                   # the first round warms the caches
        for name, (root, encoder) in candidates.items():
            measured = run_timed(command(root, encoder, model, picture, folder[name]))
            runs[name] += [measured] if run else []
    median = {name: [statistics.median(r[i] for r in runs[name]) for i in range(3)]
              for name in candidates}
    base = next(iter(median.values()))
    print(f"  {'':44s} {'wall':>7s} {'ratio':>6s} {'CPU':>7s} {'ratio':>6s} "
          f"{'peak':>8s} {'file':>8s}")
    for name in candidates:
        (result,) = folder[name].iterdir()
        wall, cpu, peak = median[name]
        print(f"  {name:44s} {wall:6.2f}s x{base[0] / wall:4.2f} {cpu:6.2f}s "
              f"x{base[1] / cpu:4.2f} {peak:5.0f}MiB {result.stat().st_size / 1e6:6.2f}MB"
              f"  wall runs " + " ".join(f"{r[0]:.2f}" for r in runs[name]))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--baseline", required=True,
                   help="git revision to compare with, or a folder holding that tree")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--memory", action="store_true")
    p.add_argument("--encode-only", action="store_true",
                   help="write_png alone on the command's results, not whole commands")
    args = p.parse_args(argv)
    from upscale import make_model
    with tempfile.TemporaryDirectory(prefix="bench-png-") as tmp:
        tmp = Path(tmp)
        old = Path(args.baseline) if Path(args.baseline).is_dir() else \
            tree_at(args.baseline, tmp / "baseline")
        model = make_model("9-1-5", tmp)
        if args.memory:
            from PIL import Image

            from upscale import test_picture
            big = tmp / "input_4096x4096.png"
            Image.fromarray(test_picture(4096, 4096, seed=2)).save(big)
            for name, root in ((args.baseline, old), ("this tree", ROOT)):
                wall, cpu, peak = run_timed(command(root, "default", model, big, tmp / "m"))
                print(f"4096x4096 x2, {name}: peak {peak:.0f} MiB, {wall:.1f} s, "
                      f"CPU {cpu:.1f} s")
            return
        for kind, picture in inputs(tmp).items():
            candidates = {f"baseline {args.baseline}": (old, "default"),
                          "this tree (libpng, Paeth + RLE)": (ROOT, "default")}
            candidates.update({name: (ROOT, name) for name in ENCODERS
                               if kind == "8-bit" or name not in EIGHT_BIT_ONLY})
            print(f"{kind} RGB PNG 1920x1080 -> 3840x2160, 9-1-5, level 1, "
                  f"median of {args.repeats}:")
            if args.encode_only:
                subprocess.run(command(ROOT, "default", model, picture, tmp / "r" / kind),
                               check=True, stdout=subprocess.DEVNULL)
                encode_only(candidates, next((tmp / "r" / kind).iterdir()), tmp,
                            args.repeats)
                continue
            compare(candidates, model, picture, tmp, args.repeats)
        if args.encode_only:
            return
        result = next((tmp / "out" / "rgb16").glob("*/rgb16.png"))
        for name, root in ((args.baseline, old), ("this tree", ROOT)):
            wall, cpu = subprocess.run([sys.executable, "-c", READ, root, result,
                                        str(args.repeats)], check=True, capture_output=True,
                                       text=True).stdout.split()
            print(f"read_picture of the 16-bit 3840x2160 result, {name}: wall "
                  f"{float(wall):.3f} s, CPU {float(cpu):.3f} s (medians)")


if __name__ == "__main__":
    main()
