"""What writing 8-bit RGB costs the network's luma, and why the project still rounds
each channel to the nearest level.

    python bench/rounding.py --images path/to/T91 --scale 4 [--model FILE]

On the pictures training holds out (bench/heldout.py's), the network's luma is put
back with the interpolated chroma (sr.upscaling.colour_steps) and scored three ways
against the sharp picture: as floats (clipped to the RGB cube, before any rounding),
rounded to the nearest level per channel (what `main.py upscale` writes), and
"luma-targeted": of the 8 neighbouring levels (floor/ceil per channel) the one whose
luma is nearest the float one.  Luma PSNR is the evaluation protocol's; RGB PSNR
counts the colour too.  Nothing here is used by the project.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from heldout import add_model_and_pictures, model_and_split  # noqa: E402
from sr import cli  # noqa: E402
from sr.imaging import (RGB_TO_YCBCR, degraded_pair, luma, rgb_to_ycbcr,  # noqa: E402
                        to_uint8, ycbcr_to_rgb)
from sr.metrics import psnr  # noqa: E402
from sr.training import held_out_pictures  # noqa: E402

CORNERS = np.array([[(m >> 2) & 1, (m >> 1) & 1, m & 1] for m in range(8)], np.float64)


def luma_targeted(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) float RGB -> uint8 RGB: per pixel, the floor/ceil corner whose luma
    is nearest the float picture's."""
    rgb = np.clip(rgb.astype(np.float64), 0, 255)
    target = rgb @ RGB_TO_YCBCR[0]                                  # (H, W)
    corners = np.minimum(np.floor(rgb)[..., None, :] + CORNERS, 255)  # (H, W, 8, 3)
    pick = np.abs(corners @ RGB_TO_YCBCR[0] - target[..., None]).argmin(-1)
    return np.take_along_axis(corners, pick[..., None, None], -2)[..., 0, :].astype(np.uint8)


def shaved_psnr(a: np.ndarray, b: np.ndarray, shave: int) -> float:
    return psnr(a[shave:-shave, shave:-shave], b[shave:-shave, shave:-shave])


def scores(model, img, scale: int) -> list[float]:
    """[luma PSNR float, nearest, luma-targeted, RGB PSNR nearest, luma-targeted]."""
    hr, bicubic = (np.asarray(p) for p in degraded_pair(img, scale))
    ycc = rgb_to_ycbcr(bicubic)                                     # (H, W, 3) 0..255
    with torch.inference_mode():
        y = model(torch.from_numpy(ycc[..., 0] / 255.0)[None, None])[0, 0].numpy()
    ycc[..., 0] = y * 255.0
    rgb = ycbcr_to_rgb(ycc)
    nearest, targeted = to_uint8(rgb), luma_targeted(rgb)
    sharp = luma(hr)
    lumas = [luma(np.clip(rgb, 0, 255)), luma(nearest), luma(targeted)]
    return ([shaved_psnr(sharp, y, scale) for y in lumas]
            + [shaved_psnr(hr, x.astype(np.float64), scale) for x in (nearest, targeted)])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_model_and_pictures(p)
    args = p.parse_args()
    model, _, held = model_and_split(args)
    rows = np.array([scores(model, img, args.scale)
                     for img in held_out_pictures(held, args.scale).pictures])
    mean = rows.mean(axis=0)
    print(f"x{args.scale}, {len(rows)} held-out pictures, mean PSNR dB")
    print(f"luma: float {mean[0]:.4f}, nearest level {mean[1]:.4f}, "
          f"luma-targeted {mean[2]:.4f}")
    print(f"RGB:  nearest level {mean[3]:.4f}, luma-targeted {mean[4]:.4f}")


if __name__ == "__main__":
    cli.run(main)
