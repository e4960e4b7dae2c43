"""Upscaling a picture: interpolate with bicubic, refine the luma with the network.

refine_with() is the single pipeline behind `main.py upscale`, evaluation and the
validation PSNR during training, so their numbers always agree.  What runs the
network underneath is a runner (sr/inference.py): ONNX Runtime for the upscale
command on the CPU, PyTorch elsewhere.
"""
import math

import numpy as np
from PIL import Image

from sr.imaging import grey_to_luma, luma_to_grey, rgb_to_ycbcr, to_uint8, ycbcr_to_rgb
from sr.inference import TorchRunner
from sr.pictures import Picture
from sr.tiling import DEFAULT_TILE, halo_window, map_tiles

# 16-bit values v are v / 257 on the 0..255 scale of the colour formulas (65535 -> 255).
STEPS_16BIT = np.float32(257.0)


def to_uint16(x: np.ndarray) -> np.ndarray:
    """Round to the nearest integer (ties to even) and clip to 0..65535."""
    return np.clip(np.rint(x), 0, 65535).astype(np.uint16)


def colour_steps(pixels: np.ndarray):
    """(to_luma, from_luma) for map_tiles, by the kind of pixels, (H, W, 3) RGB or (H, W)
    grey, uint8 or uint16: RGB's luma (BT.601 Y / 255) goes through the network, Cb and
    Cr stay as interpolated; grey's luma alone, and the result is grey again."""
    wide = pixels.dtype == np.uint16
    if pixels.ndim == 3:
        def to_luma(window):
            ycc = rgb_to_ycbcr(window / STEPS_16BIT if wide else window)  # (h, w, 3) 0..255
            return ycc[..., 0] / 255.0, ycc

        def from_luma(y, ycc):
            ycc[..., 0] = y * 255.0
            rgb = ycbcr_to_rgb(ycc)
            return to_uint16(rgb * STEPS_16BIT) if wide else to_uint8(rgb)
    else:
        def to_luma(window):
            grey = window / STEPS_16BIT if wide else window
            return grey_to_luma(grey) / 255.0, window

        def from_luma(y, _window):
            grey = luma_to_grey(y * 255.0)
            return to_uint16(grey * STEPS_16BIT) if wide else to_uint8(grey)
    return to_luma, from_luma


def refine_with(runner, bicubic: np.ndarray, tile: int = DEFAULT_TILE, on_tile=None) -> np.ndarray:
    """Bicubic-interpolated picture -> refined picture of the same shape and type.

    runner: what runs the network (sr/inference.py).
    bicubic: (H, W, 3) RGB or (H, W) grey, uint8 (or uint16 for 16-bit pictures).
    tile: output tile side; 0 means one tile.  The result does not depend on it.
    on_tile: called once per finished tile (progress)."""
    to_luma, from_luma = colour_steps(bicubic)
    out = np.empty_like(bicubic)
    return map_tiles(runner, bicubic, out, tile, to_luma, from_luma, on_tile)


def refined_luma(runner, bicubic: np.ndarray, tile: int = DEFAULT_TILE) -> np.ndarray:
    """The network's luma for a bicubic-interpolated picture, before it is turned back
    into colour and rounded: (H, W[, 3]) uint8 -> (H, W) float32 Y / 255.  What
    training learns from a teacher model (sr/training.py, --teacher)."""
    to_luma, _ = colour_steps(bicubic)
    out = np.empty(bicubic.shape[:2], np.float32)
    return map_tiles(runner, bicubic, out, tile, to_luma, lambda refined, _extra: refined)


def refine_batch(model, bicubics: np.ndarray, device="cpu") -> np.ndarray:
    """refine_with() of N pictures of one size (PyTorch, float32, tile 0) in one call:
    (N, H, W[, 3]) -> the same shape.  Training's validation scores its patches so,
    hundreds per epoch, where one call per patch would keep a GPU waiting."""
    runner = TorchRunner(model, device, half=False)
    to_luma, from_luma = colour_steps(bicubics[0])
    height, width = bicubics.shape[1:3]
    r = runner.radius
    lumas, extras = zip(*(to_luma(halo_window(b, (0, height, 0, width), r)) for b in bicubics))
    refined = runner.run_batch(np.stack(lumas))                      # (N, H, W)
    return np.stack([from_luma(y, extra[r:r + height, r:r + width])
                     for y, extra in zip(refined, extras)])


# Sides are capped far beyond any picture (4.6e18): a 2-pixel side at --scale 1e308
# is inf, which round() refuses, and 1e300 would be a 300-digit number in the
# message of the size check (sr/cmd_upscale.py) that refuses such results.
HUGE_SIDE = 2 ** 62


def output_size(size, scale: float):
    """(width, height) of the result: each side times scale, rounded."""
    return tuple(max(1, int(round(min(side * scale, HUGE_SIDE)))) for side in size)


def resize_plane(plane: np.ndarray, size, resample=Image.BICUBIC) -> np.ndarray:
    """Pillow's resize (bicubic unless resample says) of one picture plane to
    size = (width, height).

    8-bit planes (H, W) or (H, W, 3) go through Pillow's 8-bit resize, exactly as
    the evaluation protocol; 16-bit planes channel by channel in float32, rounded."""
    size = tuple(int(v) for v in size)
    if plane.dtype == np.uint8:
        mode = "RGB" if plane.ndim == 3 else "L"
        return np.asarray(Image.fromarray(plane, mode).resize(size, resample))
    if plane.ndim == 3:
        return np.stack([resize_plane(plane[..., c], size, resample)
                         for c in range(plane.shape[2])], axis=2)
    resized = Image.fromarray(plane.astype(np.float32), "F").resize(size, resample)
    return to_uint16(np.asarray(resized))


def pass_sizes(size, model_scales, scale: float) -> list:
    """(width, height) each pass of a route (model_scales, in order) works at, for size
    upscaled by scale: each enlarges by its model's scale, the last to the asked size
    unless the route reaches beyond it (then shrunk)."""
    sizes = []
    for model_scale in model_scales:
        sizes.append(output_size(sizes[-1] if sizes else size, model_scale))
    if math.prod(model_scales) <= scale + 1e-9:
        sizes[-1] = output_size(size, scale)
    return sizes


def upscale_picture(passes, picture: Picture, scale: float, tile: int = DEFAULT_TILE,
                    on_tile=None) -> Picture:
    """Upscale a Picture by scale: colour through bicubic + network, alpha bicubic only.

    passes: [(runner, its model's scale), ...], a route (sr.model_files.route) in order:
    each enlarges the colour with bicubic to its pass_sizes size and refines it there,
    8-bit (or 16-bit) like a file.  A result larger than asked (x2.5: the x2 model twice) is
    shrunk to size, Lanczos below x2 and bicubic above, as measured best
    (docs/real-pictures.md).  Alpha is a separate plane, never multiplied in."""
    size = output_size(picture.size, scale)
    colour = picture.colour
    for (runner, _), work in zip(passes, pass_sizes(picture.size, [s for _, s in passes], scale)):
        colour = refine_with(runner, resize_plane(colour, work), tile, on_tile)
    if colour.shape[1::-1] != size:
        colour = resize_plane(colour, size, Image.LANCZOS if scale < 2 else Image.BICUBIC)
    alpha = resize_plane(picture.alpha, size) if picture.alpha is not None else None
    return Picture(colour, alpha, picture.icc, list(picture.notes))
