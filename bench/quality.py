"""Quality table of the shipped models: PSNR (Y, protocol of GUIDE §1) on Set5/Set14.

    python bench/quality.py [--datasets ../shared/datasets] [--scales 2 3 4]

Uses main.py eval's code (sr.evaluation) on each scale's default model (the
newest in models/, or --model-pattern) and prints it beside bicubic and the
published SRCNN/FSRCNN numbers; --ensemble adds the x8 self-ensemble.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sr import cli  # noqa: E402
from sr.checkpoint import latest_model, load_model  # noqa: E402
from sr.evaluation import evaluate_image, mean_row  # noqa: E402
from sr.inference import TorchRunner  # noqa: E402
from sr.pictures import load_rgb as load_image  # noqa: E402

PUBLISHED = {  # (Set5, Set14) PSNR in dB
    "SRCNN 9-5-5 (ImageNet, paper)": {2: (36.66, 32.45), 3: (32.75, 29.30), 4: (30.49, 27.50)},
    "FSRCNN (paper)": {2: (36.94, None), 3: (33.06, None), 4: (30.55, None)},
    "goal (issue)": {2: (36.90, 32.60), 3: (32.90, 29.45), 4: (30.60, 27.60)},
}


def mean_psnr(model, folder: Path, scale: int, ensemble: bool = False) -> dict:
    runner = TorchRunner(model, half=False)   # PyTorch float32: the reference numbers
    rows = [evaluate_image([(runner, scale)], load_image(f), scale, ensemble=ensemble)
            for f in cli.image_files(folder)]
    return mean_row(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", default="../shared/datasets")
    p.add_argument("--sets", nargs="+", default=["Set5", "Set14"])
    p.add_argument("--scales", nargs="+", type=int, default=[2, 3, 4])
    p.add_argument("--models", default="models")
    p.add_argument("--model-pattern", help="e.g. models/srcnn_x{scale}.shipped.safetensors")
    p.add_argument("--ensemble", action="store_true",
                   help="add a row for the x8 self-ensemble (upscale --ensemble)")
    args = p.parse_args()
    results = {}
    for scale in args.scales:
        if args.model_pattern:
            path = Path(args.model_pattern.format(scale=scale))
            model, _ = load_model(path, scale)
        else:
            model, weights = latest_model(args.models, scale)
            path = weights.path
        for name in args.sets:
            start = time.perf_counter()
            results[scale, name] = mean_psnr(model, Path(args.datasets) / name, scale)
            if args.ensemble:
                results[scale, name]["psnr_ensemble"] = mean_psnr(
                    model, Path(args.datasets) / name, scale, ensemble=True)["psnr"]
            print(f"x{scale} {name}: {path} ({time.perf_counter() - start:.0f}s)",
                  file=sys.stderr)
    header = "| | " + " | ".join(f"x{s}" for s in args.scales) + " |"
    print(f"PSNR (dB), Set5 / Set14, Y channel, border shaved by the scale\n\n{header}")
    print("|---" * (len(args.scales) + 1) + "|")
    fmt = lambda v: "—" if v is None else f"{v:.2f}"  # noqa: E731
    rows = [("bicubic (Pillow)", "psnr_bicubic"), ("this project", "psnr")]
    if args.ensemble:
        rows.append(("this project, x8 self-ensemble", "psnr_ensemble"))
    for label, key in rows:
        cells = [" / ".join(fmt(results[s, n][key]) for n in args.sets) for s in args.scales]
        print(f"| {label} | " + " | ".join(cells) + " |")
    for label, table in PUBLISHED.items():
        print(f"| {label} | " + " | ".join(" / ".join(fmt(v) for v in table[s])
                                            for s in args.scales) + " |")
    print_goal_check(results, args.scales, args.sets)


def print_goal_check(results: dict, scales, sets) -> None:
    """Each model number against its goal, unrounded (30.596 prints as 30.60 above)."""
    print()
    for scale in scales:
        for name in sets:
            if name not in ("Set5", "Set14"):
                continue
            goal = PUBLISHED["goal (issue)"][scale][("Set5", "Set14").index(name)]
            ours = results[scale, name]["psnr"]
            verdict = "met" if ours >= goal else f"short by {goal - ours:.3f} dB"
            print(f"x{scale} {name}: {ours:.3f} dB, goal {goal:.2f}: {verdict}")


if __name__ == "__main__":
    main()
