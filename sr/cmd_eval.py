"""`main.py eval`: the evaluation protocol on a folder of high-resolution pictures."""
from __future__ import annotations

import json

from sr import cli
from sr.errors import UserError

HELP = ("Evaluation protocol of the SRCNN paper on every picture in a folder: modcrop, "
        "bicubic down and up, Y-channel PSNR/SSIM with the border shaved by the scale.")


def add_arguments(p) -> None:
    p.add_argument("-i", "--input", required=True, help="folder of high-resolution pictures")
    p.add_argument("--json", help="also write the numbers to this JSON file")
    p.add_argument("--ensemble", action="store_true",
                   help="score the x8 self-ensemble (as `upscale --ensemble`)")
    cli.add_model_options(p)
    cli.add_device_options(p)


def run(args) -> int:
    from sr.evaluation import evaluate_image, format_table, mean_row
    from sr.imaging import load_image, write_text_atomic
    device = cli.pick_device(args)
    model, _, model_path = cli.model_for(args, args.scale)
    model.to(device)
    files = cli.image_files(args.input)
    if not files:
        raise UserError(f"{args.input}: no pictures found")
    rows = [dict(evaluate_image(model, load_image(f), args.scale, device=device,
                                ensemble=args.ensemble), image=f.stem)
            for f in files]
    mean = mean_row(rows)
    print(f"x{args.scale}, model {model_path}, {len(rows)} images in {args.input}")
    print(format_table(rows, mean))
    if args.json:
        write_text_atomic(args.json, json.dumps(
            {"scale": args.scale, "model": str(model_path), "ensemble": args.ensemble,
             "images": rows, "mean": mean},
            indent=1))
    return 0
