"""The evaluation protocol (SRCNN paper): modcrop, bicubic down and up, Y-channel
PSNR/SSIM with the border shaved by the scale, on the saved 8-bit result."""
from __future__ import annotations

import numpy as np

from sr.errors import UserError
from sr.imaging import degraded_pair
from sr.metrics import SSIM_WINDOW, psnr_y, ssim_y
from sr.upscaling import refine_with


def evaluate_image(runner, img, scale: int, ensemble: bool = False,
                   quality: int | None = None) -> dict:
    """PSNR/SSIM of bicubic and of the network for one high-resolution picture.
    runner: what runs the network (sr/inference.py: scoring_runner, or TorchRunner for
    PyTorch's float32 exactly); ensemble: the x8 self-ensemble of `upscale --ensemble`;
    quality: score JPEG inputs, the small picture saved at this quality (GUIDE §1)."""
    hr, bicubic = (np.asarray(p) for p in degraded_pair(img, scale, quality))
    check_scorable(hr.shape[:2], scale)
    from sr.inference import SelfEnsemble
    ours = refine_with(SelfEnsemble(runner) if ensemble else runner, bicubic, tile=0)
    return {"psnr_bicubic": psnr_y(hr, bicubic, scale), "psnr": psnr_y(hr, ours, scale),
            "ssim_bicubic": ssim_y(hr, bicubic, scale), "ssim": ssim_y(hr, ours, scale)}


def smallest_side(scale: int) -> int:
    """Fewest pixels a side that a picture needs to be scored at this scale: the
    shaved border on both sides plus SSIM's 11 px window."""
    return 2 * scale + SSIM_WINDOW


def check_scorable(shape, scale: int) -> None:
    """UserError for a (modcropped) picture too small to score."""
    if min(shape) < smallest_side(scale):
        raise UserError(f"{shape[1]}x{shape[0]} px after cropping to a multiple of "
                        f"{scale}: too small to score at x{scale} (at least "
                        f"{smallest_side(scale)} px a side)")


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
