"""Make docs/comparison.png: a crop of a picture shrunk by the scale, enlarged back
by bicubic and by `main.py upscale` (the shipped model), beside the original.

    python tools/comparison.py                      # coffee sample, x3 -> docs/comparison.png
    python tools/comparison.py --scale 2 --box 300 220 460 330 -o /tmp/x2.png

Steps: crop the picture to a multiple of the scale, shrink it with Pillow's bicubic
filter (the evaluation protocol's degradation), enlarge that with Pillow's bicubic,
and upscale the same small picture with `main.py upscale --model <shipped model>`.
The labels carry each result's PSNR on luma over the whole picture (border of
`scale` pixels shaved), the number `main.py eval` prints.  The crop is magnified
with nearest-neighbour so that single pixels stay visible.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sr.imaging import modcrop, resize  # noqa: E402
from sr.metrics import psnr_y  # noqa: E402


def shipped_model(scale: int) -> Path:
    """The shipped model of this scale, whatever its file format."""
    found = sorted((ROOT / "models").glob(f"srcnn_x{scale}.shipped.*"))
    if not found:
        sys.exit(f"no shipped x{scale} model in models/")
    return found[0]


def upscale_with_cli(small: Path, scale: int, model: Path, folder: Path) -> Path:
    """Run the real command on the shrunk picture; return the file it wrote."""
    subprocess.run([sys.executable, str(ROOT / "main.py"), "upscale", "-i", str(small),
                    "--scale", str(scale), "--model", str(model), "-o", str(folder),
                    "--suffix", ".srcnn"], check=True, cwd=ROOT)
    return folder / f"{small.stem}.srcnn.png"


def panel(img: Image.Image, box, zoom: int, label: str, font) -> Image.Image:
    """The box of img magnified by zoom (nearest), with a caption strip below it."""
    crop = img.crop(box)
    crop = crop.resize((crop.width * zoom, crop.height * zoom), Image.NEAREST)
    strip = 26
    out = Image.new("RGB", (crop.width, crop.height + strip), "white")
    out.paste(crop, (0, 0))
    ImageDraw.Draw(out).text((6, crop.height + 4), label, fill="black", font=font)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("-i", "--input", default=str(ROOT / "web/samples/coffee.png"))
    p.add_argument("--scale", type=int, default=3)
    p.add_argument("--box", type=int, nargs=4, default=(318, 228, 438, 318),
                   metavar=("LEFT", "TOP", "RIGHT", "BOTTOM"),
                   help="crop of the full-size picture to show")
    p.add_argument("--zoom", type=int, default=2, help="nearest-neighbour magnification")
    p.add_argument("--model", help="model file (default: the shipped one of --scale)")
    p.add_argument("-o", "--output", default=str(ROOT / "docs/comparison.png"))
    args = p.parse_args()

    s = args.scale
    model = Path(args.model) if args.model else shipped_model(s)
    hr = modcrop(Image.open(args.input).convert("RGB"), s)
    small = resize(hr, (hr.width // s, hr.height // s))
    bicubic = resize(small, hr.size)
    with tempfile.TemporaryDirectory() as tmp:
        small_path = Path(tmp) / "small.png"
        small.save(small_path)
        ours = Image.open(upscale_with_cli(small_path, s, model, Path(tmp) / "out"))
        ours.load()

    ref = np.asarray(hr)
    scores = {name: psnr_y(ref, np.asarray(img), s) for name, img in
              (("bicubic", bicubic), ("srcnn", ours))}
    font = ImageFont.load_default(size=15)
    panels = [panel(bicubic, args.box, args.zoom, f"bicubic x{s}: {scores['bicubic']:.2f} dB",
                    font),
              panel(ours, args.box, args.zoom, f"SRCNN x{s}: {scores['srcnn']:.2f} dB", font),
              panel(hr, args.box, args.zoom, "original", font)]
    gap = 6
    sheet = Image.new("RGB", (sum(q.width for q in panels) + gap * (len(panels) - 1),
                              panels[0].height), "white")
    x = 0
    for q in panels:
        sheet.paste(q, (x, 0))
        x += q.width + gap
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.output, optimize=True)
    print(f"{args.output}: {Path(args.input).name} x{s}, crop {tuple(args.box)}, "
          f"model {model.relative_to(ROOT) if model.is_relative_to(ROOT) else model}; "
          f"PSNR (luma, whole picture, {s} px shaved): bicubic {scores['bicubic']:.2f} dB, "
          f"SRCNN {scores['srcnn']:.2f} dB")


if __name__ == "__main__":
    main()
