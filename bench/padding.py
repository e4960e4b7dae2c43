"""What the border handling is worth: PSNR of the shipped models with the picture
padded once by the receptive radius (edge replicate; mirror, what the project does;
zeros) and with every layer zero-padded (the original project's way).

    python bench/padding.py [--datasets ../shared/datasets] [--scales 2 3 4]

Scored on the 9 pictures training holds out of T91 (what the choice was made by,
as bench/heldout.py), then on Set5 / Set14 (measured only).  Same protocol as
main.py eval (sr.evaluation); only the padding differs.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sr import cli  # noqa: E402
from sr.checkpoint import load_model  # noqa: E402
from sr.imaging import degraded_pair  # noqa: E402
from sr.metrics import psnr_y  # noqa: E402
from sr.pictures import load_rgb as load_image  # noqa: E402
from sr.training import held_out_pictures, split_folder  # noqa: E402
from sr.upscaling import colour_steps  # noqa: E402


def per_layer_zero_pad(model, y: torch.Tensor) -> torch.Tensor:
    """Each convolution zero-padded to keep the size ("same"), as the original did."""
    h = y
    for i, conv in enumerate((model.conv1, model.conv2, model.conv3)):
        h = F.conv2d(h, conv.weight, conv.bias, padding=conv.kernel_size[0] // 2)
        h = F.relu(h) if i < 2 else h
    return h + y if model.residual else h


def run(model, y: torch.Tensor, mode: str) -> torch.Tensor:
    """(1, 1, H, W) luma -> (1, 1, H, W) refined luma with the given border handling."""
    if mode == "per-layer zeros":
        return per_layer_zero_pad(model, y)
    r = model.radius
    pad_mode = {"replicate": "replicate", "mirror": "reflect", "zeros": "constant"}[mode]
    return model.forward_valid(F.pad(y, (r, r, r, r), mode=pad_mode))


def psnr_with(model, img, scale: int, mode: str) -> float:
    hr, bicubic = (np.asarray(p) for p in degraded_pair(img, scale))
    to_luma, from_luma = colour_steps(bicubic)
    y, ycc = to_luma(bicubic)                      # (H, W) float32 Y/255, YCbCr
    with torch.inference_mode():
        out = run(model, torch.from_numpy(np.ascontiguousarray(y))[None, None], mode)
    return psnr_y(hr, from_luma(out[0, 0].numpy(), ycc), scale)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", default="../shared/datasets")
    p.add_argument("--scales", nargs="+", type=int, default=[2, 3, 4])
    args = p.parse_args()
    modes = ("replicate", "mirror", "zeros", "per-layer zeros")
    datasets = Path(args.datasets)
    held = split_folder(datasets / "T91", 0.1, 1, cli.warn)[1]   # the shipped models' split
    print("| padding | " + " | ".join(f"x{s} held-out T91 / Set5 / Set14"
                                      for s in args.scales) + " |")
    print("|---" * (len(args.scales) + 1) + "|")
    models = {s: load_model(f"models/srcnn_x{s}.shipped.safetensors", s)[0] for s in args.scales}
    for mode in modes:
        cells = []
        for s in args.scales:
            sets = [held_out_pictures(held, s).pictures] + \
                   [[load_image(f) for f in cli.image_files(datasets / name)]
                    for name in ("Set5", "Set14")]
            means = [np.mean([psnr_with(models[s], img, s, mode) for img in pictures])
                     for pictures in sets]
            cells.append(" / ".join(f"{m:.3f}" for m in means))
        print(f"| {mode} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
