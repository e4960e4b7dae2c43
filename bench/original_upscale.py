"""The original project's upscale approach, as the baseline of bench/upscale.py.

    python bench/original_upscale.py MODEL.pt INPUT.png OUTPUT.png

Same weights and colour formulas as ours; what differs is how the network runs:
one float32 PyTorch forward pass over the whole picture, each layer zero-padded
to keep the size (its memory grows with the picture: 7.9 GB for a 3840x2160
output), and Pillow's default PNG encoder.  Not used by the project itself.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sr.checkpoint import load_model  # noqa: E402
from sr.imaging import rgb_to_ycbcr, to_uint8, ycbcr_to_rgb  # noqa: E402


@torch.inference_mode()
def original_forward(model, x: torch.Tensor) -> torch.Tensor:
    """(1, 1, H, W) -> (1, 1, H, W): each convolution zero-padded by half its kernel."""
    y = x
    for i, conv in enumerate((model.conv1, model.conv2, model.conv3)):
        y = F.conv2d(y, conv.weight, conv.bias, padding=conv.kernel_size[0] // 2)
        if i < 2:
            y = F.relu(y)
    return y + x if model.residual else y


def main(model_path, source, target) -> None:
    model, _ = load_model(model_path)
    img = Image.open(source).convert("RGB")
    img = img.resize((img.width * 2, img.height * 2), Image.BICUBIC)
    ycc = rgb_to_ycbcr(np.asarray(img))
    y = torch.from_numpy(np.ascontiguousarray(ycc[..., 0] / 255.0))[None, None]
    ycc[..., 0] = original_forward(model, y)[0, 0].numpy() * 255.0
    Image.fromarray(to_uint8(ycbcr_to_rgb(ycc))).save(target)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__.split("\n\n")[1].strip().replace("python", "usage: python", 1))
    main(*sys.argv[1:4])
