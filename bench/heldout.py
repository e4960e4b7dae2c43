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
from sr.training import (held_out_pictures, load_pictures, split_pictures,  # noqa: E402
                         validation_psnr)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("models", nargs="+", help="checkpoints to score")
    p.add_argument("--images", required=True, help="the training pictures (e.g. T91)")
    p.add_argument("--scale", type=int, required=True)
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--val-seed", type=int, default=1, help="the training run's --val-seed "
                   "(runs recorded before that option: its --seed)")
    args = p.parse_args()
    images = load_pictures(cli.image_files(Path(args.images)), cli.warn)
    _, held = split_pictures(images, args.val_fraction, args.val_seed)
    val = held_out_pictures(held, args.scale)
    print(f"x{args.scale}, {val.summary()}: " + " ".join(Path(n).stem for n in held))
    for path in args.models:
        model, _ = load_model(path, args.scale)
        ours, bicubic = validation_psnr(model, val)
        print(f"{ours:.4f} dB (bicubic {bicubic:.4f})  {path}")
    return 0


if __name__ == "__main__":
    cli.run(main)
