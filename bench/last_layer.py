"""Is a trained model's last layer where least squares would put it?

    python bench/last_layer.py --images path/to/T91 --scale 4 [--model FILE]

The last layer is linear in the second layer's features, so for fixed first two
layers its best weights on the training pictures have a closed form: the least-
squares fit of the residual (sharp luma - bicubic luma) on the 5x5 windows of the
32 feature maps plus a bias.  This fits it on the training pictures (T91 less the
held-out ones, whole, no augmentation, borders shaved by the scale as evaluation
does) and scores the model before and after on the held-out pictures.  A gain
there would mean training left quality on the table; a loss, that Adam's last
layer generalises better than the exact fit.  Nothing here is used by the project.
"""
from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from heldout import add_model_and_pictures, model_and_split  # noqa: E402
from sr import cli  # noqa: E402
from sr.imaging import degraded_pair  # noqa: E402
from sr.training import held_out_pictures, luma_plane, validation_psnr  # noqa: E402


@torch.inference_mode()
def normal_equations(model, pictures, scale: int):
    """(X'X, X'y, pixels) over the pictures: X the last layer's inputs per pixel
    (f2 * k3 * k3 window values and a 1), y the residual it should produce."""
    r, k3 = model.radius, model.kernels[2]
    size = model.filters[1] * k3 * k3 + 1
    xtx = torch.zeros(size, size, dtype=torch.float64)
    xty = torch.zeros(size, dtype=torch.float64)
    pixels = 0
    for img in pictures:
        hr, lr = (torch.from_numpy(luma_plane(p)) for p in degraded_pair(img, scale))
        padded = F.pad(lr[None, None], (r, r, r, r), mode="reflect")
        features = F.relu(model.conv2(F.relu(model.conv1(padded))))      # (1, f2, H+k3-1, .)
        windows = F.unfold(features, k3)[0]                              # (f2*k3*k3, H*W)
        keep = torch.zeros_like(lr, dtype=torch.bool)
        keep[scale:-scale, scale:-scale] = True
        keep = keep.flatten()
        x = torch.cat([windows[:, keep], torch.ones(1, int(keep.sum()))]).double()
        xtx += x @ x.T
        xty += x @ (hr - lr).flatten()[keep].double()
        pixels += int(keep.sum())
    return xtx, xty, pixels


def with_last_layer(model, weights: torch.Tensor):
    """A copy of model whose last layer holds weights (its flattened kernel, then bias)."""
    fitted = copy.deepcopy(model)
    with torch.no_grad():
        fitted.conv3.weight.copy_(weights[:-1].reshape(fitted.conv3.weight.shape).float())
        fitted.conv3.bias.copy_(weights[-1:].float())
    return fitted


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_model_and_pictures(p)
    args = p.parse_args()
    model, train, held = model_and_split(args)
    start = time.perf_counter()
    xtx, xty, pixels = normal_equations(model, train.values(), args.scale)
    # dead ReLU channels make X'X singular: a ridge of 1e-8 of its mean diagonal
    ridge = 1e-8 * xtx.diagonal().mean() * torch.eye(len(xty), dtype=torch.float64)
    fit = torch.linalg.solve(xtx + ridge, xty)
    trained = torch.cat([model.conv3.weight.flatten(), model.conv3.bias]).detach().double()
    def train_mse(w):
        return float((w @ xtx @ w - 2 * w @ xty) / pixels)   # + const
    val = held_out_pictures(held, args.scale)
    print(f"x{args.scale}: {len(train)} training pictures, {pixels} pixels, "
          f"{time.perf_counter() - start:.0f} s")
    print(f"training MSE (up to a constant): trained {train_mse(trained):.4e}, "
          f"least squares {train_mse(fit):.4e}")
    print(f"held-out PSNR: trained {validation_psnr(model, val)[0]:.4f} dB, "
          f"least squares {validation_psnr(with_last_layer(model, fit), val)[0]:.4f} dB")


if __name__ == "__main__":
    cli.run(main)
