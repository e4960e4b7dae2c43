"""`main.py eval`: the evaluation protocol on a folder of high-resolution pictures."""
from __future__ import annotations

import json
from pathlib import Path

from sr import cli
from sr.errors import UserError

HELP = ("Evaluation protocol of the SRCNN paper on every picture in a folder: modcrop, "
        "bicubic down and up, Y-channel PSNR/SSIM with the border shaved by the scale.")


def add_arguments(p) -> None:
    p.add_argument("-i", "--input", required=True, help="folder of high-resolution pictures")
    p.add_argument("--json", help="also write the numbers to this JSON file (an existing "
                                  "file is kept unless --overwrite)")
    p.add_argument("--overwrite", action="store_true",
                   help="let --json replace an existing file (never one of the pictures)")
    p.add_argument("--ensemble", action="store_true",
                   help="score the x8 self-ensemble (as `upscale --ensemble`)")
    cli.add_model_options(p)
    cli.add_device_options(p)


def run(args) -> int:
    from sr.evaluation import format_table, mean_row
    from sr.imaging import write_text_atomic
    device = cli.pick_device(args)
    model, _, model_path = cli.model_for(args, args.scale)
    model.to(device)
    files = cli.image_files(args.input)
    if not files:
        raise UserError(f"{args.input}: no pictures found")
    if args.json:
        check_json_target(Path(args.json), files, args.overwrite)
    rows = [dict(evaluate_file(model, f, args.scale, device, args.ensemble), image=f.stem)
            for f in files]
    mean = mean_row(rows)
    print(f"x{args.scale}, model {model_path}, {cli.count_of(len(rows), 'picture')} in "
          f"{args.input}")
    print(format_table(rows, mean))
    if args.json:
        write_text_atomic(args.json, json.dumps(
            {"scale": args.scale, "model": str(model_path), "ensemble": args.ensemble,
             "images": rows, "mean": mean},
            indent=1), overwrite=args.overwrite)
    return 0


def check_json_target(target: Path, pictures, overwrite: bool) -> None:
    """Before any work: --json must not be a folder, one of the pictures, or (without
    --overwrite) an existing file."""
    if target.is_dir():
        raise UserError(f"--json {target}: is a folder, not a file")
    if any(target.resolve() == p.resolve() for p in pictures):
        raise UserError(f"--json {target}: is one of the pictures being evaluated")
    if target.exists() and not overwrite:
        raise UserError(f"--json {target}: already exists; use --overwrite to replace it")


def evaluate_file(model, path: Path, scale: int, device, ensemble: bool) -> dict:
    """evaluate_image of one file; a picture it cannot score (too small, of a kind
    that is refused) is named in the error.  load_image's errors name it already."""
    from sr.evaluation import evaluate_image
    from sr.imaging import load_image
    img = load_image(path)
    try:
        return evaluate_image(model, img, scale, device=device, ensemble=ensemble)
    except UserError as e:
        raise UserError(f"{path}: {e}") from None
