"""The evaluation protocol (SRCNN paper): modcrop, bicubic down and up, Y-channel
PSNR/SSIM with the border shaved by the scale, on the saved 8-bit result; at a
fractional scale s the picture is cropped so that it is its shrink times s exactly,
and the border shaved is floor(s) (GUIDE §1)."""
import math

import numpy as np

from sr.errors import UserError
from sr.imaging import resize, scale_crop, shrunk_pair
from sr.metrics import SSIM_WINDOW, psnr_y, ssim_y
from sr.pictures import Picture
from sr.upscaling import upscale_picture


def evaluate_image(passes, img, scale: float, ensemble: bool = False,
                   quality: int | None = None) -> dict:
    """PSNR/SSIM of bicubic and of the network for one high-resolution picture.
    passes: [(runner, its model's scale), ...] as upscale_picture takes them (runners:
    sr/inference.py's scoring_runner, or TorchRunner for PyTorch's float32 exactly);
    ensemble: the x8 self-ensemble; quality: JPEG inputs at this quality (GUIDE §1)."""
    shave = math.floor(scale)
    width, height = scale_crop(img.size, scale)
    smallest = 2 * shave + SSIM_WINDOW   # both shaved borders plus SSIM's window
    if min(width, height) < smallest:
        raise UserError(f"{width}x{height} px after cropping for x{scale:g}: too small "
                        f"to score at x{scale:g} (at least {smallest} px a side)")
    hr, small = shrunk_pair(img, scale, quality)
    bicubic = np.asarray(resize(small, hr.size))   # (H, W, 3): the baseline
    from sr.inference import SelfEnsemble
    passes = [(SelfEnsemble(r) if ensemble else r, s) for r, s in passes]
    ours = upscale_picture(passes, Picture(np.asarray(small)), scale, 0).colour
    hr = np.asarray(hr)
    return {"psnr_bicubic": psnr_y(hr, bicubic, shave), "psnr": psnr_y(hr, ours, shave),
            "ssim_bicubic": ssim_y(hr, bicubic, shave), "ssim": ssim_y(hr, ours, shave)}


def mean_row(rows: list[dict]) -> dict:
    keys = ("psnr_bicubic", "psnr", "ssim_bicubic", "ssim")
    return {k: float(np.mean([r[k] for r in rows])) for k in keys}


def format_table(rows: list[dict], mean: dict) -> str:
    """Text table: one row per picture and the mean."""
    lines = [f"{'image':<16} {'bicubic PSNR':>12} {'SSIM':>7} {'model PSNR':>11} "
             f"{'SSIM':>7} {'gain':>6}"]
    for r in rows + [dict(mean, image="mean")]:
        lines.append(f"{r['image']:<16} {r['psnr_bicubic']:12.2f} {r['ssim_bicubic']:7.4f} "
                     f"{r['psnr']:11.2f} {r['ssim']:7.4f} {r['psnr'] - r['psnr_bicubic']:+6.2f}")
    return "\n".join(lines)
