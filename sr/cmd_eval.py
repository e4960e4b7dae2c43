"""`main.py eval`: the evaluation protocol on a folder of high-resolution pictures."""
import json
import math

from sr import cli
from sr.errors import UserError

HELP = ("Evaluation protocol of the SRCNN paper on every picture in a folder: modcrop, "
        "bicubic down and up, Y-channel PSNR/SSIM with the border shaved by the scale "
        "(a fractional scale s: cropped so the picture is its shrink times s exactly, "
        "scored as `upscale --scale s` enlarges it, shaved by floor(s)).")


def add_arguments(p) -> None:
    from sr.inference import PRECISIONS
    p.add_argument("-i", "--input", required=True, action=cli.Once,
                   help="folder of high-resolution pictures")
    p.add_argument("--json", help="also write the numbers to this JSON file (an existing "
                                  "file is kept unless --overwrite)")
    p.add_argument("--overwrite", action="store_true",
                   help="let --json replace an existing file (never one of the pictures)")
    p.add_argument("--ensemble", action="store_true",
                   help="score the x8 self-ensemble (as `upscale --ensemble`)")
    p.add_argument("--jpeg", type=cli.number("a JPEG quality from 1 to 100", 1, 100),
                   metavar="Q", help="score JPEG inputs: the shrunk picture is saved as JPEG "
                   "at quality Q before it is enlarged (bicubic then is of that JPEG; at "
                   "--scale 1 the JPEG itself); the model is the one upscale picks for a "
                   "JPEG of quality Q (its artifact level's)")
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="on the CPU, as for upscale: the pixels upscale would write are "
                        "scored (auto: bfloat16 where the CPU has the units)")
    cli.add_model_options(p)
    cli.add_device_options(p)


def run(args) -> int:
    from sr.evaluation import evaluate_image, format_table, mean_row
    from sr.atomic import write_text_atomic
    # 2.0 -> 2: integer scales print and record as before
    scale = int(args.scale) if args.scale == int(args.scale) else args.scale
    if scale == 1 and not args.jpeg:
        raise UserError("--scale 1 scores JPEG artifact removal: give --jpeg Q too")
    files = cli.image_files(args.input)
    if not files:
        raise UserError(f"{args.input}: no pictures found")
    if args.json:
        cli.check_file_target("--json", args.json, args.overwrite, inputs=files)
    device = cli.pick_device(args)
    from sr.checkpoint import model_from_weights
    from sr.jpeg import level_for_quality
    from sr.model_files import list_models, model_for_scale, model_scale_for, models_for_level
    model_scale = model_scale_for(scale)   # x2.5 by --model: the x3 model, result shrunk
    try:   # --model, else the models upscale picks in --models for such a JPEG, in order
        if args.model:
            route = [model_for_scale(args.model, scale)]
        else:
            route = models_for_level(args.models, scale, level_for_quality(args.jpeg),
                                     list_models(args.models, cli.warn))
    except UserError as e:
        if model_scale == scale or not args.model:
            raise
        raise UserError(f"{e} (x{scale} is scored on the x{model_scale} model's result, "
                        f"shrunk, as upscale makes it)") from None
    from sr.inference import scoring_runner
    from sr.pictures import load_rgb
    runners = {path: scoring_runner(model_from_weights(w).to(device), device, args.precision)
               for path, w in {w.path: w for w in route}.items()}   # one a model
    passes = [(runners[w.path], w.scale) for w in route]
    rows = []
    for path, name in zip(files, row_names(files)):
        img = load_rgb(path)   # its errors name the file already
        try:
            row = evaluate_image(passes, img, scale, args.ensemble, args.jpeg)
        except UserError as e:   # too small, or of a kind that is refused
            raise UserError(f"{path}: {e}") from None
        rows.append(dict(row, image=name))
    mean = mean_row(rows)
    jpeg = f", JPEG q{args.jpeg}" if args.jpeg else ""
    models = " then ".join(str(w.path) for w in route)
    print(f"x{scale}{jpeg}, model {models}, {cli.count_of(len(rows), 'picture')} "
          f"in {args.input}; {passes[-1][0].describe()}")
    print(format_table(rows, mean))
    if args.json:
        record = {"scale": scale, "jpeg": args.jpeg, "models": [str(w.path) for w in route],
                  "ensemble": args.ensemble, "images": rows, "mean": mean}
        with cli.naming(args.json):   # a full disk's error names no file
            write_text_atomic(args.json, json.dumps(json_safe(record), indent=1, allow_nan=False),
                              overwrite=args.overwrite)
    return 0


def row_names(files) -> list[str]:
    """Each picture's name in the table: its stem, or its whole name where two
    pictures share a stem (baby.png and baby.jpg)."""
    stems = [f.stem for f in files]
    return [f.stem if stems.count(f.stem) == 1 else f.name for f in files]


def json_safe(value):
    """value with every infinite or undefined float as None (JSON has neither: a flat
    picture, which bicubic reproduces exactly, has an infinite PSNR)."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    return None if isinstance(value, float) and not math.isfinite(value) else value

