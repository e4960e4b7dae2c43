"""JPEG level 4 (sr/jpeg.py TWO_PASSES): one pass against two, by JPEG quality.

    nice -n 10 python bench/two_passes.py [--sets T91 Set5 Set14] [--scales 1 2 3 4]
        [--qualities 10 15 20 25 30] [--models models]

For each picture of each set, at each scale and quality: the protocol's JPEG input
(GUIDE §1; at x1 the picture itself saved as JPEG), then
- one pass: level 3's route (its model of the scale; above x2 its x2 model twice), as
  `upscale --denoise 3` runs it;
- two passes: level 3's x1 model at the input's size first, then the same route, as
  level 4 (`upscale --denoise 4`) runs them where it has no model of its own.
Prints the mean PSNR-Y gain of each over the baseline (bicubic of the decoded JPEG;
at x1 the decoded JPEG) and the difference, computed in this process with the CLI's
own pieces (sr.upscaling.upscale_picture, the ONNX Runtime / OpenVINO CPU runner).
T91 (the training pictures) is where level 4's quality bound was chosen; Set5 and
Set14 show how it carries over.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sr.cli import image_files  # noqa: E402
from sr.imaging import resize, shrunk_pair  # noqa: E402
from sr.inference import cpu_runner  # noqa: E402
from sr.model_files import list_models, models_for_level  # noqa: E402
from sr.pictures import Picture, load_rgb  # noqa: E402
from sr.metrics import psnr_y  # noqa: E402
from sr.upscaling import upscale_picture  # noqa: E402


def gains(pictures, scale: int, quality: int, passes, first) -> tuple[float, float]:
    """Mean gain (dB) over the baseline of level 3's passes, and of them after first."""
    one, two = [], []
    for img in pictures:
        hr, small = shrunk_pair(img, scale, quality)
        hr, small_pixels = np.asarray(hr), np.asarray(small)
        base = psnr_y(hr, np.asarray(resize(small, hr.shape[1::-1])), scale)
        for out, route in ((one, passes), (two, [first] + passes)):
            result = upscale_picture(route, Picture(small_pixels), scale, 0).colour
            out.append(psnr_y(hr, result, scale) - base)
    return float(np.mean(one)), float(np.mean(two))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sets", nargs="+", default=["T91", "Set5", "Set14"])
    p.add_argument("--datasets", default=str(ROOT.parent / "shared" / "datasets"))
    p.add_argument("--scales", nargs="+", type=int, default=[1, 2, 3, 4])
    p.add_argument("--qualities", nargs="+", type=int, default=[10, 15, 20, 25, 30])
    p.add_argument("--models", default=str(ROOT / "models"))
    args = p.parse_args()
    available = list_models(args.models)
    runners = {w.path: cpu_runner(w) for w in available if w.level == 3}
    routes = {s: [(runners[w.path], w.scale) for w in
                  models_for_level(args.models, s, 3, available)] for s in {1, *args.scales}}
    print("| set | scale | " + " | ".join(f"q{q}" for q in args.qualities) + " |")
    print("|---" * (2 + len(args.qualities)) + "|")
    for name in args.sets:
        start = time.perf_counter()
        pictures = [load_rgb(f) for f in image_files(Path(args.datasets) / name)]
        for scale in args.scales:
            cells = []
            for q in args.qualities:
                one, two = gains(pictures, scale, q, routes[scale], routes[1][0])
                cells.append(f"{one:+.2f} → {two:+.2f} ({two - one:+.2f})")
            print(f"| {name} | x{scale} | " + " | ".join(cells) + " |", flush=True)
        print(f"({name}: {time.perf_counter() - start:.0f} s)", file=sys.stderr)
    print("\ncells: one pass → two passes (difference), mean PSNR-Y gain over the "
          "baseline in dB")


if __name__ == "__main__":
    main()
