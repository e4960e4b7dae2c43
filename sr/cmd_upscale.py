"""`main.py upscale`: bicubic interpolation refined by the network."""
from __future__ import annotations

import sys
from pathlib import Path

from sr import cli
from sr.errors import UserError
from sr.tiling import DEFAULT_TILE

HELP = ("Upscale pictures: bicubic interpolation, then the network refines the luma "
        "(BT.601 YCbCr); chroma stays interpolated. Existing files are never replaced.")


def add_arguments(p) -> None:
    p.add_argument("-i", "--input", nargs="+", required=True, help="picture file(s)")
    p.add_argument("-o", "--output", default="images_upscaled", help="output folder")
    p.add_argument("--tile", type=int, default=DEFAULT_TILE,
                   help="tile side in pixels (0: whole image at once); results are identical")
    cli.add_model_options(p)
    cli.add_device_options(p)


def output_path(out_dir: Path, source: Path, stamp: str) -> Path:
    """out_dir/<stem>.<stamp>.png, with -1, -2... added rather than replacing a file."""
    candidate = out_dir / f"{source.stem}.{stamp}.png"
    n = 1
    while candidate.exists() or candidate.resolve() == source.resolve():
        candidate = out_dir / f"{source.stem}.{stamp}-{n}.png"
        n += 1
    return candidate


def upscale_file(model, source: Path, args, device) -> str:
    from tqdm import tqdm
    from sr.checkpoint import timestamp
    from sr.imaging import load_image, save_image
    from sr.tiling import count_tiles
    from sr.upscaling import output_size, upscale_image
    img = load_image(source)
    w, h = output_size(img.size, args.scale)
    with tqdm(total=count_tiles(h, w, args.tile), unit="tile", leave=False,
              desc=source.name, disable=None) as bar:
        out = upscale_image(model, img, args.scale, args.tile, device, bar.update)
    target = save_image(out, output_path(Path(args.output), source, timestamp()))
    return f"{source} -> {target} ({w}x{h})"


def run(args) -> int:
    device = cli.pick_device(args)
    model, _, model_path = cli.model_for(args, args.scale)
    model.to(device)
    print(f"model {model_path} (x{args.scale}) on {device}")
    failed = 0
    for source in map(Path, args.input):
        try:
            print(upscale_file(model, source, args, device))
        except UserError as e:
            print(f"error: {e}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0
