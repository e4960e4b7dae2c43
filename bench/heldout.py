"""PSNR of models on the pictures that training held out, as whole pictures.

    python bench/heldout.py --images path/to/T91 --scale 4 MODEL [MODEL ...]

Training (`main.py train --from-images`) holds out whole pictures for validation
(--val-fraction and --seed pick them) and scores 256 patches of them every epoch.
This scores the same pictures whole, with main.py eval's code: no patch edges
padded by the pipeline, and the number this project chooses runs, recipes and
padding by.  Set5 and Set14 are never used for such choices.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sr import cli  # noqa: E402
from sr.checkpoint import load_model  # noqa: E402
from sr.evaluation import evaluate_image, mean_row  # noqa: E402
from sr.imaging import load_image  # noqa: E402
from sr.training import split_validation  # noqa: E402


def held_out_files(folder: Path, fraction: float, seed: int) -> list[Path]:
    """The pictures `main.py train --from-images folder` holds out (same split)."""
    files = {f.name: f for f in cli.image_files(folder)}
    names = sorted(files)
    _, val = split_validation(names, fraction, seed)
    return [files[names[i]] for i in val]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("models", nargs="+", help="checkpoints to score")
    p.add_argument("--images", required=True, help="the training pictures (e.g. T91)")
    p.add_argument("--scale", type=int, required=True)
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=1, help="the training run's --seed")
    args = p.parse_args()
    files = held_out_files(Path(args.images), args.val_fraction, args.seed)
    pictures = [load_image(f) for f in files]
    print(f"x{args.scale}, {len(files)} held-out pictures: "
          + " ".join(f.stem for f in files))
    for path in args.models:
        model, _ = load_model(path, args.scale)
        mean = mean_row([evaluate_image(model, img, args.scale) for img in pictures])
        print(f"{mean['psnr']:.4f} dB (bicubic {mean['psnr_bicubic']:.4f})  {path}")
    return 0


if __name__ == "__main__":
    cli.run(main)
