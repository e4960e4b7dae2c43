"""Real pictures (issue 17): JPEG inputs and fractional scales, through `main.py upscale`.

    nice -n 10 python bench/real_pictures.py [--sets Set5 Set14] [--quick]
        [--models models] [--models-pattern 'PATTERN'] [--strategies]

Protocol: GUIDE §1 with its JPEG and fractional variants. The degraded inputs are
written as .jpg / .png files into a temporary folder, `main.py upscale` runs once per
folder, and the written results are scored (PSNR on Y, shave floor(scale)) against the
sharp picture, beside bicubic of the same decoded input (at x1: the decoded JPEG).
Each row runs the default command (`upscale --models M`: the model chosen by the
file's JPEG level) and, for comparison, the clean models (`--denoise off`).
--models-pattern instead names one model per row (it may hold {scale} and {level},
sr.jpeg.level_for_quality of the row's JPEG quality), for probes.
--strategies adds the fractional-scale strategies (docs/real-pictures.md), computed
in this process with the CLI's own pieces (ONNX Runtime runner, Pillow bicubic).
"""
from __future__ import annotations

import argparse
import math
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sr.cli import image_files  # noqa: E402
from sr.imaging import resize, shrunk_pair  # noqa: E402
from sr.pictures import load_rgb  # noqa: E402
from sr.jpeg import level_for_quality  # noqa: E402
from sr.metrics import psnr_y  # noqa: E402
from sr.model_files import model_scale_for, read_weights  # noqa: E402

FRACTIONS = ("1.5", "2", "2.5", "3", "3.5", "4")
SWEEP = ("1.2", "1.5", "1.8", "2", "2.2", "2.5", "2.8", "3", "3.2", "3.5", "3.8", "4")


def pair(hr: Image.Image, scale: Fraction, quality):
    """(sharp, degraded input) by GUIDE §1: sr.imaging.shrunk_pair, the crop to a
    multiple of the numerator p and the bicubic to size x q/p, then JPEG at quality
    (at x1 the sharp picture itself): the crop and shrink `main.py eval` scores."""
    return shrunk_pair(hr, float(scale), quality)


def model_path(pattern: str, scale: float, quality) -> str:
    return pattern.format(scale=model_scale_for(scale), level=level_for_quality(quality))


def upscale_folder(pictures, scale: Fraction, quality, choice):
    """Write the degraded inputs, run main.py upscale on the folder, read the results:
    [(sharp, input, result)] as arrays."""
    with tempfile.TemporaryDirectory(prefix="real_pictures.") as tmp:
        src, out = Path(tmp, "in"), Path(tmp, "out")
        src.mkdir()
        inputs = []
        for i, hr in enumerate(pictures):
            hr, lr = pair(hr, scale, None)
            name = src / f"{i:03d}.{'jpg' if quality else 'png'}"
            if quality:   # the bytes jpeg_roundtrip encodes (Pillow defaults, 4:2:0)
                lr.save(name, "JPEG", quality=quality)
            else:
                lr.save(name)
            inputs.append((hr, name))
        cmd = [sys.executable, "main.py", "upscale", "-i", str(src), "-o", str(out),
               "--scale", str(float(scale)), *choice, "--suffix", "_sr", "--cpu"]
        subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        return [(np.asarray(hr), np.asarray(Image.open(name).convert("RGB")),
                 np.asarray(Image.open(out / f"{name.stem}_sr.png").convert("RGB")))
                for hr, name in inputs]


def score(triples, scale: Fraction):
    """Mean (baseline PSNR, model PSNR): baseline = bicubic of the decoded input."""
    shave = math.floor(scale)
    base = [psnr_y(hr, np.asarray(resize(Image.fromarray(lr), hr.shape[1::-1])), shave)
            for hr, lr, _ in triples]
    ours = [psnr_y(hr, out, shave) for hr, _, out in triples]
    return float(np.mean(base)), float(np.mean(ours))


def table(title, rows, columns):
    """rows: (set, scale, quality, baseline PSNR, PSNR of each column's command or None)."""
    print(f"\n{title}\n\n| set | scale | input | baseline | " +
          " | ".join(f"{c} | gain" for c in columns) + " |")
    print("|---" * (4 + 2 * len(columns)) + "|")
    for name, scale, quality, base, *ours in rows:
        cells = [f"{o:.2f} | {o - base:+.2f}" if o is not None else "- | -" for o in ours]
        print(f"| {name} | x{float(scale):g} | {'q%d' % quality if quality else 'clean'} | "
              f"{base:.2f} | " + " | ".join(cells) + " |")


def row(pictures, scale: Fraction, quality, choices) -> tuple:
    """(baseline PSNR, PSNR of each choice of model): choices are upscale's model
    options, or None where the row has no such command (clean models at x1)."""
    results = [score(upscale_folder(pictures, scale, quality, c), scale) if c else None
               for c in choices]
    base = next(r[0] for r in results if r)
    return (base, *(r[1] if r else None for r in results))


def choices(args, scale: float, quality) -> tuple[list, list]:
    """(column names, upscale options of each): the default command and the clean
    models, or the one model --models-pattern names."""
    if args.models_pattern:
        return ["model"], [["--model", model_path(args.models_pattern, scale, quality)]]
    default = ["--models", args.models]
    clean = None if scale == 1 else default + ["--denoise", "off"]
    return ["clean models", "default (auto)"], [clean, default]


# --- fractional-scale strategies, in this process with the CLI's pieces --------------

def strategies(pictures, scale: Fraction, pattern: str, runners: dict,
               ensemble: bool = False) -> dict:
    """Mean PSNR gain over bicubic of each strategy (names: docs/real-pictures.md);
    ensemble: every network pass is upscale --ensemble's x8 self-ensemble."""
    from sr.inference import OnnxRuntimeRunner, SelfEnsemble
    from sr.upscaling import refine_with

    def refined(k: int, bicubic: Image.Image) -> Image.Image:
        """The x k model (clean) on a bicubic enlargement, as upscale runs it."""
        if k not in runners:
            runners[k] = OnnxRuntimeRunner(read_weights(pattern.format(scale=k, level=0)))
            runners[k] = SelfEnsemble(runners[k]) if ensemble else runners[k]
        return Image.fromarray(refine_with(runners[k], np.asarray(bicubic)))

    def model(k: int, img: Image.Image, factor: int) -> Image.Image:
        """The x k model on img enlarged by the integer factor."""
        return refined(k, resize(img, (img.width * factor, img.height * factor)))

    s, shave = float(scale), math.floor(scale)
    lo, hi = max(2, math.floor(s)), max(2, math.ceil(s))
    gains = {}
    for hr in pictures:
        hr, lr = pair(hr, scale, None)
        size, bicubic = hr.size, resize(lr, hr.size)
        out = {"a nearest on bicubic": refined(min((2, 3, 4), key=lambda k: abs(math.log(s / k))), bicubic)}
        up = model(hi, lr, hi)                                   # (w·hi/s, h·hi/s)
        out["b ceil, shrink"] = resize(up, size)
        out["b' ceil, Lanczos shrink"] = up.resize(size, Image.LANCZOS)
        if s > 2 and lo != hi:
            out["c floor, enlarge"] = resize(model(lo, lr, lo), size)
            out["d mean of b, c"] = Image.blend(out["b ceil, shrink"], out["c floor, enlarge"], 0.5)
        if hi < 4:
            out["e ceil+1, shrink"] = resize(model(hi + 1, lr, hi + 1), size)
        if s > 2:
            twice = model(2, model(2, lr, 2), 2)               # x4 by the x2 model twice
            out["f x2 twice, shrink"] = resize(twice, size)
            out["f' x2 twice, Lanczos shrink"] = twice.resize(size, Image.LANCZOS)
            if "c floor, enlarge" in out:
                out["g mean of f', c"] = Image.blend(out["f' x2 twice, Lanczos shrink"],
                                                     out["c floor, enlarge"], 0.5)
        base = psnr_y(np.asarray(hr), np.asarray(bicubic), shave)
        for name, img in out.items():
            gains.setdefault(name, []).append(psnr_y(np.asarray(hr), np.asarray(img), shave) - base)
    return {name: float(np.mean(g)) for name, g in gains.items()}


def jpeg_rows(args):
    """(set, scale, JPEG quality or None): the issue's rows (Set5 at x2, Set14 at all)."""
    rows = []
    for name in args.sets:
        for s in args.scales if name != "Set5" or args.sets == ["Set5"] else [2]:
            rows += [(name, s, q) for q in [None] + args.qualities]
    return rows + [("Set14", 1, q) for q in args.x1_qualities]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", default=str(ROOT.parent / "shared" / "datasets"))
    p.add_argument("--sets", nargs="+", default=["Set5", "Set14"])
    p.add_argument("--models", default="models", help="folder of models (the default "
                   "command's choice, and the clean ones with --denoise off)")
    p.add_argument("--models-pattern", help="one model per row instead (e.g. "
                   "'runs/x{scale}_l{level}.safetensors')")
    p.add_argument("--clean-pattern", default="models/srcnn_x{scale}.shipped.safetensors",
                   help="the clean models --strategies uses")
    p.add_argument("--quick", action="store_true", help="the first 3 pictures of each set")
    p.add_argument("--scales", nargs="+", type=int, default=[2, 3, 4],
                   help="JPEG rows: integer scales (Set5 only at x2 unless it is the only set)")
    p.add_argument("--qualities", nargs="+", type=int, default=[90, 75, 50],
                   help="JPEG rows: qualities, beside the clean input")
    p.add_argument("--x1-qualities", nargs="*", type=int, default=[10, 20, 40],
                   help="JPEG rows at x1 (artifact removal only), on Set14")
    p.add_argument("--skip-jpeg", action="store_true")
    p.add_argument("--fractions", nargs="+", default=list(FRACTIONS),
                   help="scales of the fractional rows")
    p.add_argument("--skip-fractions", action="store_true")
    p.add_argument("--strategies", action="store_true",
                   help="also the fractional-scale strategies (at the --sweep scales)")
    p.add_argument("--sweep", nargs="+", default=list(SWEEP), help="scales of --strategies")
    p.add_argument("--ensemble", action="store_true",
                   help="--strategies with the x8 self-ensemble (upscale --ensemble)")
    args = p.parse_args()
    count = 3 if args.quick else None
    sets = {n: [load_rgb(f) for f in image_files(Path(args.datasets) / n)][:count]
            for n in args.sets}
    start = time.perf_counter()
    if not args.skip_jpeg:
        rows = []
        for name, s, q in jpeg_rows(args):
            if name in sets:
                columns, options = choices(args, s, q)
                rows.append((name, s, q, *row(sets[name], Fraction(s), q, options)))
        table("JPEG inputs (PSNR-Y dB; baseline: bicubic of the decoded JPEG, at x1 the "
              "JPEG itself)", rows, columns)
    if not args.skip_fractions:
        rows = []
        for name in sets:
            for text in args.fractions:
                s = Fraction(text)
                columns, options = choices(args, float(s), None)
                rows.append((name, s, None, *row(sets[name], s, None, options[-1:])))
        table("Fractional scales, clean PNG, `upscale --scale S` (the x2 model, or "
              "twice, the result shrunk to size)", rows, columns[-1:])
    if args.strategies:
        print("\nFractional-scale strategies: gain over bicubic (dB)\n")
        runners = {}
        for name in sets:
            results = {text: strategies(sets[name], Fraction(text), args.clean_pattern,
                                        runners, args.ensemble) for text in args.sweep}
            names = list(dict.fromkeys(k for r in results.values() for k in r))
            print(f"| {name} | " + " | ".join(f"x{t}" for t in args.sweep) + " |")
            print("|---" * (len(args.sweep) + 1) + "|")
            for n in names:
                print(f"| {n} | " + " | ".join(f"{results[t][n]:+.2f}" if n in results[t]
                                               else "" for t in args.sweep) + " |")
            print()
    print(f"({time.perf_counter() - start:.0f} s)", file=sys.stderr)


if __name__ == "__main__":
    main()
