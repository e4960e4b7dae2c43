"""PSNR of models on the pictures that training held out, as whole pictures.

    python bench/heldout.py --images path/to/T91 --scale 4 MODEL [MODEL ...]

Training (`main.py train --from-images`) holds out whole pictures (--val-fraction
and --val-seed pick them) and scores them whole every epoch with main.py eval's code.
This scores finished models on the same pictures through the same functions: the
number this project chooses runs, recipes and padding by.  Set5 and Set14 are
never used for such choices.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sr import cli  # noqa: E402
from sr.checkpoint import load_model  # noqa: E402
from sr.training import held_out_pictures, split_folder, validation_psnr  # noqa: E402


def add_model_and_pictures(p) -> None:
    """--images, --scale and --model: for benchmarks of one model on the shipped
    models' split of the training pictures (model_and_split)."""
    p.add_argument("--images", required=True, help="the training pictures (e.g. T91)")
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--model", help="default: models/srcnn_x<scale>.shipped.safetensors")


def model_and_split(args):
    """(model, {name: picture} trained on, {name: picture} held out) for the options of
    add_model_and_pictures; the split is the shipped models' (fraction 0.1, seed 1)."""
    model, _ = load_model(args.model or f"models/srcnn_x{args.scale}.shipped.safetensors", args.scale)
    train, held = split_folder(Path(args.images), 0.1, 1, cli.warn)
    return model, train, held


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("models", nargs="+", help="checkpoints to score")
    p.add_argument("--images", required=True, help="the training pictures (e.g. T91)")
    p.add_argument("--scale", type=int, required=True)
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--val-seed", type=int, default=1, help="the training run's --val-seed "
                   "(runs recorded before that option: its --seed)")
    args = p.parse_args()
    _, held = split_folder(Path(args.images), args.val_fraction, args.val_seed, cli.warn)
    val = held_out_pictures(held, args.scale)
    print(f"x{args.scale}, {val.summary()}: " + " ".join(Path(n).stem for n in held))
    for path in args.models:
        model, _ = load_model(path, args.scale)
        ours, bicubic = validation_psnr(model, val)
        print(f"{ours:.4f} dB (bicubic {bicubic:.4f})  {path}")
    return 0


if __name__ == "__main__":
    cli.run(main)
