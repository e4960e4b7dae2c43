"""Upscaling a picture: interpolate with bicubic, refine the luma with the network.

refine() is the single pipeline behind `main.py upscale`, evaluation and the
validation PSNR during training, so their numbers always agree.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

from sr.imaging import (grey_to_luma, luma_to_grey, resize, rgb_to_ycbcr, to_uint8,
                        ycbcr_to_rgb)
from sr.tiling import DEFAULT_TILE, run_luma


def refine(model, bicubic: np.ndarray, tile: int = DEFAULT_TILE, device="cpu",
           on_tile=None) -> np.ndarray:
    """Bicubic-interpolated 8-bit picture -> refined 8-bit picture of the same shape.

    bicubic: (H, W, 3) RGB or (H, W) grey, uint8.  RGB: luma goes through the
    network, chroma (Cb, Cr) is kept as interpolated.  Grey: its luma alone.
    """
    if bicubic.ndim == 2:
        y = run_luma(model, grey_to_luma(bicubic) / 255.0, tile, device, on_tile)
        return to_uint8(luma_to_grey(y * 255.0))
    ycc = rgb_to_ycbcr(bicubic)                        # (H, W, 3) on 0..255
    y = run_luma(model, ycc[..., 0] / 255.0, tile, device, on_tile)
    ycc[..., 0] = y * 255.0
    return to_uint8(ycbcr_to_rgb(ycc))


def output_size(size, scale: float):
    """(width, height) of the result: each side times scale, rounded."""
    return tuple(max(1, int(round(side * scale))) for side in size)


def upscale_image(model, img: Image.Image, scale: float, tile: int = DEFAULT_TILE,
                  device="cpu", on_tile=None) -> Image.Image:
    """Upscale a decoded picture by scale; RGB and grey, with or without alpha.

    Alpha is interpolated with bicubic only; colour under transparent pixels is
    kept as it is (Pillow does not premultiply RGBA when resizing).
    """
    size = output_size(img.size, scale)
    alpha = None
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("LA" if img.mode == "LA" else "RGBA")
        alpha = resize(img.getchannel("A"), size)
        img = img.convert("L" if img.mode == "LA" else "RGB")
    elif img.mode not in ("RGB", "L"):
        img = img.convert("RGB")
    out = Image.fromarray(refine(model, np.asarray(resize(img, size)), tile, device, on_tile))
    if alpha is not None:
        out.putalpha(alpha)
    return out
