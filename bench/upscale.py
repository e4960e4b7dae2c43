"""Benchmark of `main.py upscale` against the original approach, in one run.

    flock /tmp/bench.lock python bench/upscale.py               # 1920x1080 x2, both models
    flock /tmp/bench.lock python bench/upscale.py --memory      # + peak RSS, 4096x4096 x2
    flock /tmp/bench.lock python bench/upscale.py --tiles 64 128 256 512   # tile sweep
    flock /tmp/bench.lock python bench/upscale.py --arch 9-5-5 --quality   # + PSNR by precision

Whole command: the wall time of `python main.py upscale` (decode, colour,
network, encode, and starting Python) on a 1920x1080 RGB PNG, x2, against the
original approach run the same way (bench/original_upscale.py: one whole-image
float32 PyTorch forward pass with per-layer zero padding, Pillow's default PNG
encoder).  The two alternate, repeats times each; medians are reported.

Network alone: the default path's network on the 3840x2160 luma plane (tiles,
workers) and the original's forward pass, as GFLOP/s = 2 x multiply-adds x output
pixels / seconds, and as a fraction of a float32 4096x4096 matrix product
measured in the same run (the machine's practical ceiling), for each precision
this CPU can run (--precision of the upscale command: float32, and bfloat16 where
the CPU has the units) against a matrix product in that precision.

--quality: Set5/Set14 PSNR of the shipped x2/x3/x4 models in each precision, by
the evaluation protocol (sr.imaging.degraded_pair, sr.metrics.psnr_y) with the
upscale command's runners.

The test picture is a mosaic of the pictures in ../shared/datasets (real detail,
so PNG encoding costs what it costs on photos); without ../shared, a synthetic one.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MACS = {"9-1-5": 8032, "9-5-5": 57184, "11-5-5": 59744}  # multiply-adds per output pixel
DATASETS = ROOT.parent / "shared" / "datasets"


def test_picture(width: int, height: int, seed: int = 0) -> np.ndarray:
    """(height, width, 3) uint8: a mosaic of dataset pictures at their own resolution."""
    from PIL import Image
    rng = np.random.default_rng(seed)
    files = sorted(DATASETS.glob("*/*.png"))
    if not files:   # synthetic: smooth shapes plus grain
        y, x = np.mgrid[0:height, 0:width]
        base = 128 + 60 * np.sin(x / 37.0)[..., None] * np.cos(y / 23.0)[..., None]
        return np.clip(base + rng.normal(0, 12, (height, width, 3)), 0, 255).astype(np.uint8)
    canvas = np.zeros((height, width, 3), np.uint8)
    top = 0
    while top < height:
        left, row_height = 0, 0
        while left < width:
            tile = np.asarray(Image.open(files[rng.integers(len(files))]).convert("RGB"))
            h, w = min(tile.shape[0], height - top), min(tile.shape[1], width - left)
            canvas[top:top + h, left:left + w] = tile[:h, :w]
            left, row_height = left + w, max(row_height, h)
        top += row_height
    return canvas


def make_model(arch: str, folder: Path) -> Path:
    """A checkpoint with fixed random weights (speed does not depend on the values)."""
    import torch
    import srcnn
    from sr.checkpoint import save_checkpoint
    torch.manual_seed(0)
    model = srcnn.build(arch)
    with torch.no_grad():
        model.conv3.weight.normal_(0, 1e-3)
    return save_checkpoint(folder / f"bench_{arch}.pt", model, 2, overwrite=True)


# Peak memory is read by a small launcher: Linux keeps a process's peak resident size
# across exec, so a child forked straight from this (large) process would report ours.
LAUNCHER = ("import os, subprocess, sys\n"
            "p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
            "_, status, usage = os.wait4(p.pid, 0)\n"
            "print(usage.ru_maxrss, file=sys.stderr)\n"
            "sys.exit(os.waitstatus_to_exitcode(status))\n")


def run_timed(cmd: list) -> tuple:
    """(wall seconds, peak resident MiB) of a command; fails loudly."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", LAUNCHER, *map(str, cmd)], cwd=ROOT,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(map(str, cmd))}\n"
                         f"{proc.stderr}")
    return seconds, int(proc.stderr.strip().splitlines()[-1]) / 1024


def ours_cmd(model: Path, picture: Path, out: Path, tile: int = 0,
             precision: str = "float32") -> list:
    return [sys.executable, "main.py", "upscale", "-i", str(picture), "-o", str(out),
            "--model", str(as_safetensors(model)), "--scale", "2", "--cpu", "--overwrite", "--suffix", "",
            "--tile", str(tile), "--precision", precision]


def as_safetensors(model: Path) -> Path:
    """The checkpoint as the .safetensors file `upscale` reads from models/.  A run's
    .pt works too, but reading one imports PyTorch: about 490 MiB of resident memory
    and 1-2 s that the command with a published model never spends."""
    from sr.model_files import read_weights, write_model
    path = model.with_suffix(".safetensors")
    write_model(read_weights(model), path, overwrite=True)
    return path


def precisions() -> list:
    """The precisions the upscale command can run on this CPU."""
    from sr.errors import UserError
    from sr.inference import PRECISIONS, choose_precision, cpu_flags, openvino_installed
    found = []
    for precision in PRECISIONS[1:]:
        try:
            found.append(choose_precision(precision, cpu_flags(), openvino_installed())[0])
        except UserError as e:
            print(f"({e})")
    return found


def original_cmd(model: Path, picture: Path, out: Path) -> list:
    return [sys.executable, str(ROOT / "bench" / "original_upscale.py"), str(model),
            str(picture), str(out / f"{picture.stem}.original.png")]


def matmul_ceiling(precision: str = "float32", repeats: int = 5) -> float:
    """GFLOP/s of a 4096x4096 matrix product in PyTorch in that precision: the best of
    repeats (a ceiling, so the run least disturbed by anything else on the machine)."""
    import torch
    a, b = (torch.randn(4096, 4096).to(getattr(torch, precision)) for _ in range(2))
    a @ b
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * 4096 ** 3 / min(times) / 1e9


def network_seconds_ours(model_path: Path, luma: np.ndarray, tile: int, repeats: int,
                         precision: str = "float32") -> float:
    """The CPU path's network over a luma plane: tiles and workers, no colour."""
    from sr.inference import cpu_runner
    return network_seconds(cpu_runner(read_model(model_path), precision), luma, tile, repeats)


def read_model(path):
    """The one reader of model files here (.safetensors, or a training run's .pt)."""
    from sr.model_files import read_weights
    return read_weights(path)


def quality(found: list) -> None:
    """Set5/Set14 PSNR of the shipped models in each precision (evaluation protocol)."""
    from sr.imaging import degraded_pair
    from sr.pictures import load_rgb as load_image
    from sr.inference import cpu_runner
    from sr.metrics import psnr_y
    from sr.upscaling import refine_with
    print(f"\nPSNR (dB), shipped models, Set5 / Set14 means: {' | '.join(found)}")
    for scale in (2, 3, 4):
        weights = read_model(ROOT / "models" / f"srcnn_x{scale}.shipped.safetensors")
        cells = []
        for precision in found:
            runner = cpu_runner(weights, precision)
            for name in ("Set5", "Set14"):
                scores = []
                for file in sorted((DATASETS / name).glob("*.png")):
                    hr, bicubic = (np.asarray(p) for p in degraded_pair(load_image(file), scale))
                    scores.append(psnr_y(hr, refine_with(runner, bicubic), scale))
                cells.append(float(np.mean(scores)))
        deltas = [f"{c - cells[i % 2]:+.3f}" for i, c in enumerate(cells) if i >= 2]
        print(f"  x{scale}: " + " | ".join(f"{cells[i]:.3f} / {cells[i + 1]:.3f}"
                                          for i in range(0, len(cells), 2))
              + (f"   (vs float32: {' / '.join(deltas)})" if deltas else ""))


def variant_runners(model_path: Path) -> dict:
    """The alternatives tried for the CPU path (bench/upscale.py --variants)."""
    import sr.inference as inference
    from sr.checkpoint import model_from_weights
    from sr.inference import OnnxRuntimeRunner, TorchRunner
    weights = read_model(model_path)

    class OneSessionTwoThreads(OnnxRuntimeRunner):
        def _new_session(self):
            import onnxruntime as ort
            options = ort.SessionOptions()
            options.intra_op_num_threads = 2
            return ort.InferenceSession(self._model, options,
                                        providers=["CPUExecutionProvider"])

    saved, inference.BLOCK = inference.BLOCK, 1
    try:
        plain_last_layer = OnnxRuntimeRunner(weights)       # 32 -> 1 channel as exported
    finally:
        inference.BLOCK = saved
    return {"ONNX Runtime, 1 session x 2 threads": OneSessionTwoThreads(weights, workers=1),
            "ONNX Runtime, last layer not blocked": plain_last_layer,
            "PyTorch, forward_valid on tiles": TorchRunner(model_from_weights(weights))}


def network_seconds(runner, luma: np.ndarray, tile: int, repeats: int) -> float:
    from sr.tiling import map_tiles
    out = np.empty_like(luma)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        map_tiles(runner, luma, out, tile, lambda w: (w, w), lambda y, _: y)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def network_seconds_original(model_path: Path, luma: np.ndarray, repeats: int) -> float:
    """One whole-plane float32 forward pass with per-layer zero padding."""
    import torch
    sys.path.insert(0, str(ROOT / "bench"))
    from original_upscale import original_forward
    from sr.checkpoint import load_model
    model, _ = load_model(model_path)
    x = torch.from_numpy(luma)[None, None]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        original_forward(model, x)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def gpu_network(arch: str, model_path: Path, device: str, repeats: int) -> None:
    """Network Mpix/s on a 3840x2160 output on a GPU: float32, and float16 (the default
    for residual models), with the upscale command's runner and automatic tile."""
    import torch
    from sr.checkpoint import model_from_weights
    from sr.inference import TorchRunner
    from sr.tiling import auto_tile
    luma = np.random.default_rng(1).random((2160, 3840), dtype=np.float32)
    tile = auto_tile(device, torch.cuda.mem_get_info(torch.device(device))[0])
    for half in (False, True):
        runner = TorchRunner(model_from_weights(read_model(model_path)), device, half=half,
                             tune=True)
        network_seconds(runner, luma, tile, 1)              # warm-up: cuDNN tuning
        seconds = network_seconds(runner, luma, tile, repeats)   # results come back to
        # the host each tile (.cpu()), so the clock stops after the GPU is done
        print(f"  {arch} on {torch.cuda.get_device_name(device)}, "
              f"{'float16' if half else 'float32'}, tile {tile}: "
              f"{3840 * 2160 / seconds / 1e6:.0f} Mpix/s (host->device->host included)")


def bench_commands(model, picture, out, repeats, found) -> dict:
    """Whole-command seconds of the original and of ours in each precision, alternated
    so that all see the same load: {name: [seconds of each run]}."""
    out.mkdir(exist_ok=True)
    cmds = {"original": original_cmd(model, picture, out)}
    cmds.update({p: ours_cmd(model, picture, out, precision=p) for p in found})
    for cmd in cmds.values():
        run_timed(cmd)                                # warm the file cache, compile caches
    runs = {name: [] for name in cmds}
    for _ in range(repeats):
        for name, cmd in cmds.items():
            runs[name].append(run_timed(cmd)[0])
    return runs


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", nargs="+", default=["9-1-5", "9-5-5"], choices=list(MACS))
    p.add_argument("--size", default="1920x1080", help="input size WxH (output is x2)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--tiles", type=int, nargs="*", default=None,
                   help="also time the network alone at these tile sides")
    p.add_argument("--memory", action="store_true",
                   help="peak resident memory of a 4096x4096 RGB PNG x2 with the defaults")
    p.add_argument("--skip-commands", action="store_true", help="network numbers only")
    p.add_argument("--variants", action="store_true",
                   help="also time the alternatives tried for the CPU path (network only)")
    p.add_argument("--quality", action="store_true",
                   help="Set5/Set14 PSNR of the shipped models in each precision")
    p.add_argument("--gpu", metavar="DEVICE",
                   help="only the network on this GPU (e.g. cuda), 3840x2160 output")
    args = p.parse_args(argv)
    from PIL import Image
    from sr.tiling import CPU_TILE
    width, height = (int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory(prefix="bench-upscale-") as tmp:
        tmp = Path(tmp)
        if args.gpu:
            for arch in args.arch:
                gpu_network(arch, make_model(arch, tmp), args.gpu, max(args.repeats, 5))
            return
        picture = tmp / f"input_{width}x{height}.png"
        Image.fromarray(test_picture(width, height)).save(picture)
        out_w, out_h = 2 * width, 2 * height
        mpix = out_w * out_h / 1e6
        luma = np.random.default_rng(1).random((out_h, out_w), dtype=np.float32)
        print(f"input {width}x{height} RGB PNG -> {out_w}x{out_h} ({mpix:.1f} Mpix); "
              f"{os.cpu_count()} CPUs; medians of {args.repeats}")
        found = precisions()
        for arch in args.arch:
            model = make_model(arch, tmp)
            gflops = lambda s: 2 * MACS[arch] * mpix * 1e6 / s / 1e9   # noqa: E731
            net_orig = network_seconds_original(model, luma, max(1, args.repeats - 1))
            print(f"\n{arch}: network, original (whole image, zero pad, float32) "
                  f"{mpix / net_orig:6.2f} Mpix/s {gflops(net_orig):6.1f} GFLOP/s")
            for precision in found:
                ceiling = matmul_ceiling(precision)
                net = network_seconds_ours(model, luma, CPU_TILE, args.repeats, precision)
                ceiling = max(ceiling, matmul_ceiling(precision))   # before and after
                print(f"  network, ours {precision:8s} ({CPU_TILE} px tiles) {mpix / net:6.2f} "
                      f"Mpix/s {gflops(net):6.1f} GFLOP/s = {gflops(net) / ceiling:.2f} of the "
                      f"{precision} 4096^2 matmul ({ceiling:.0f} GFLOP/s); "
                      f"x{net_orig / net:.2f} the original")
                for tile in args.tiles or []:
                    s = network_seconds_ours(model, luma, tile, args.repeats, precision)
                    print(f"    tile {tile:5d}: {mpix / s:6.2f} Mpix/s, "
                          f"{gflops(s) / ceiling:.2f} of ceiling")
            if args.variants:
                ceiling = matmul_ceiling()
                for name, runner in variant_runners(model).items():
                    s = network_seconds(runner, luma, CPU_TILE, args.repeats)
                    print(f"    {name}: {mpix / s:6.2f} Mpix/s, "
                          f"{gflops(s) / ceiling:.2f} of the float32 ceiling")
            if not args.skip_commands:
                runs = bench_commands(model, picture, tmp / "out", args.repeats, found)
                base = statistics.median(runs["original"])
                for name, times in runs.items():
                    s = statistics.median(times)
                    print(f"  whole command, {name:8s}: {s:6.2f} s ({mpix / s:.2f} Mpix/s), "
                          f"x{base / s:.2f} the original; runs {_fmt(times)}")
        if args.quality:
            quality(found)
        if args.memory:
            big = tmp / "input_4096x4096.png"
            Image.fromarray(test_picture(4096, 4096, seed=2)).save(big)
            for precision in found:
                seconds, peak = run_timed(ours_cmd(make_model("9-1-5", tmp), big, tmp / "out",
                                                   precision=precision))
                print(f"\nmemory: 4096x4096 RGB PNG x2 (9-1-5, defaults, {precision}): peak "
                      f"resident {peak:.0f} MiB, {seconds:.1f} s")


def _fmt(values) -> str:
    return " ".join(f"{v:.2f}" for v in values)


if __name__ == "__main__":
    main()
