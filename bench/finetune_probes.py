"""Two ideas for the x2 models, each fine-tuned against a control arm trained the same way
(docs/real-pictures.md, "Two probes that did not help"):

    python bench/finetune_probes.py grid --arm grid|control
    python bench/finetune_probes.py second-pass --share 0.5|0 [--clean]

grid: the JPEG level-2 x2 model gets two more input channels that say where each
    pixel lies in its JPEG block (a sawtooth across the 8 px block, 16 px at x2, in x
    and in y; zero in the control arm).  The new channels' weights start at zero, so
    both arms start as the shipped model.  No flips or turns (they would turn the
    sawtooth); scored by this script on Y with the protocol's JPEG inputs.
second-pass: x3 and x4 (and clean x2.5, x3.5) run the x2 model twice, the second
    time on its own 8-bit result enlarged again, an input it was never trained on.
    A share of the training pictures becomes that input: shrunk by 4 (and saved as
    JPEG), the current model's x2 result of it, enlarged x2 with bicubic.  --share 0
    is the control.  --clean: the clean x2 model, no JPEG.  Scored with
    sr.evaluation.evaluate_image (main.py eval's code) in float32.

Both: fresh crops of T91 every epoch (4,096 of 48 px, pictures first rescaled by 0.6-1),
Adam with warm-up and cosine decay, batch 32; one CPU thread each, so two arms run side
by side on two cores (about 25 s an epoch on the project's EPYC).
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sr.checkpoint import load_model  # noqa: E402
from sr.evaluation import evaluate_image, mean_row  # noqa: E402
from sr.imaging import (degraded_pair, resize, rgb_to_ycbcr, shrunk_pair,  # noqa: E402
                        to_uint8, ycbcr_to_rgb)
from sr.inference import TorchRunner  # noqa: E402
from sr.metrics import psnr_y  # noqa: E402
from sr.pictures import Picture, load_rgb  # noqa: E402
from sr.training import augment, epoch_plan, luma_plane as luma, lr_factor  # noqa: E402
from sr.upscaling import upscale_picture  # noqa: E402

COUNT, PATCH, BATCH = 4096, 48, 32
LEVEL2 = (60, 90)


def sawtooth(height: int, width: int, block: int, on: bool) -> np.ndarray:
    """(2, H, W): each pixel's place in its block, -0.5..0.5 down and across (0 if off)."""
    rows = ((np.arange(height) % block) + 0.5) / block - 0.5
    cols = ((np.arange(width) % block) + 0.5) / block - 0.5
    planes = np.stack(np.meshgrid(rows, cols, indexing="ij")).astype(np.float32)
    return planes if on else np.zeros_like(planes)


class GridNet(torch.nn.Module):
    """The shipped 9-5-5 network with two zero-weighted input channels added."""

    def __init__(self, base):
        super().__init__()
        self.radius = base.radius
        self.conv1 = torch.nn.Conv2d(3, base.filters[0], base.kernels[0])
        with torch.no_grad():
            self.conv1.weight.zero_()
            self.conv1.weight[:, :1] = base.conv1.weight
            self.conv1.bias.copy_(base.conv1.bias)
        self.conv2, self.conv3 = base.conv2, base.conv3

    def forward_valid(self, x):   # (N, 3, H + 2r, W + 2r) -> (N, 1, H, W)
        r = self.radius
        y = self.conv3(F.relu(self.conv2(F.relu(self.conv1(x)))))
        return y + x[:, :1, r:x.shape[2] - r, r:x.shape[3] - r]


def crops(planes: list, rng, n: int) -> list:
    """The same n random PATCH x PATCH windows of each (C, H, W) plane: (n, C, P, P)."""
    height, width = planes[0].shape[1:]
    tops = torch.from_numpy(rng.integers(0, height - PATCH + 1, n))
    lefts = torch.from_numpy(rng.integers(0, width - PATCH + 1, n))
    return [p.unfold(1, PATCH, 1).unfold(2, PATCH, 1)[:, tops, lefts].transpose(0, 1)
            for p in planes]


def epoch_crops(images, epoch: int, make_pair):
    """(inputs, targets) for one epoch: make_pair(picture, rng) -> (input (C, H, W),
    target (1, H, W)) tensors, cropped COUNT times in all."""
    rng = np.random.default_rng([7, epoch])
    per_picture = COUNT // len(images) + 1
    inputs, targets = [], []
    for img in images:
        factor = rng.uniform(0.6, 1.0)
        pic = resize(img, [max(1, round(side * factor)) for side in img.size])
        given, target = make_pair(pic, rng)
        if min(target.shape[1:]) >= PATCH:
            x, y = crops([given, target], rng, per_picture)
            inputs.append(x)
            targets.append(y)
    return torch.cat(inputs)[:COUNT], torch.cat(targets)[:COUNT]


def fine_tune(net, images, make_pair, epochs: int, lr: float, turns: bool, report):
    """Adam, warm-up then cosine decay (sr.training.lr_factor), MSE on the valid region."""
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    steps, r = epochs * (COUNT // BATCH), net.radius
    for epoch in range(1, epochs + 1):
        start = time.time()
        net.eval()
        given, target = epoch_crops(images, epoch, make_pair)
        net.train()
        order, ks, flips = epoch_plan(COUNT, BATCH, 5, epoch)
        for i in range(COUNT // BATCH):
            step = (epoch - 1) * (COUNT // BATCH) + i
            for group in opt.param_groups:
                group["lr"] = lr * lr_factor(step, steps)
            batch = order[i * BATCH:(i + 1) * BATCH]
            x, y = given[batch], target[batch]
            if turns:
                x, y = (augment(t, int(ks[i]), bool(flips[i])) for t in (x, y))
            loss = F.mse_loss(net.forward_valid(x), y[:, :, r:-r, r:-r])
            opt.zero_grad()
            loss.backward()
            opt.step()
        print(f"epoch {epoch}: {time.time() - start:.0f} s", flush=True)
        if epoch % 10 == 0 or epoch == epochs:
            net.eval()
            report(f"after {epoch}")


@torch.no_grad()
def grid_gain(net, pictures, quality: int, on: bool) -> float:
    """Mean PSNR-Y gain over bicubic at x2 of JPEG inputs, whole pictures."""
    gains = []
    for img in pictures:
        hr, small = shrunk_pair(img, 2, quality)
        bicubic = np.asarray(resize(small, hr.size))
        ycc = rgb_to_ycbcr(bicubic)
        x = torch.cat([torch.from_numpy(ycc[..., 0] / np.float32(255))[None],
                       torch.from_numpy(sawtooth(*ycc.shape[:2], 16, on))])[None]
        r = net.radius
        ycc[..., 0] = net.forward_valid(F.pad(x, (r, r, r, r), mode="reflect"))[0, 0] * 255
        hr = np.asarray(hr)
        gains.append(psnr_y(hr, to_uint8(ycbcr_to_rgb(ycc)), 2) - psnr_y(hr, bicubic, 2))
    return float(np.mean(gains))


def probe_grid(args, images, sets):
    base, _ = load_model(ROOT / "models/srcnn_x2_jpeg2.shipped.safetensors")
    net, on = GridNet(base), args.arm == "grid"

    def make_pair(pic, rng):
        hr, bicubic = degraded_pair(pic, 2, int(rng.integers(LEVEL2[0], LEVEL2[1] + 1)))
        y = luma(bicubic)
        given = np.concatenate([y[None], sawtooth(*y.shape, 16, on)])
        return torch.from_numpy(given), torch.from_numpy(luma(hr)[None])

    def report(tag):
        print(tag, " ".join(f"{name} q{q} {grid_gain(net, pics, q, on):+.3f}"
                            for name, pics in sets.items() for q in (90, 75, 50)), flush=True)
    report("start")
    fine_tune(net, images, make_pair, args.epochs, args.lr, False, report)


def probe_second_pass(args, images, sets):
    name = "srcnn_x2" if args.clean else "srcnn_x2_jpeg2"
    net, _ = load_model(ROOT / f"models/{name}.shipped.safetensors")
    cases = ([(2, None), (2.5, None), (3, None), (3.5, None), (4, None)] if args.clean
             else [(2, 90), (2, 75), (2, 50), (3, 75), (4, 75)])

    def make_pair(pic, rng):
        quality = None if args.clean else int(rng.integers(LEVEL2[0], LEVEL2[1] + 1))
        if rng.uniform() >= args.share or min(pic.size) < 4 * PATCH // 2:
            hr, given = degraded_pair(pic, 2, quality)
        else:   # the second pass's input: our own x2 result of the x4 shrink, enlarged
            hr, small = shrunk_pair(pic, 4, quality)
            half = upscale_picture([(TorchRunner(net), 2)], Picture(np.asarray(small)), 2, 0)
            given = resize(Image.fromarray(half.colour), hr.size)
        return torch.from_numpy(luma(given)[None]), torch.from_numpy(luma(hr)[None])

    def report(tag):
        runner, cells = TorchRunner(net), []
        for set_name, pics in sets.items():
            for scale, q in cases:
                passes = [(runner, 2)] * (1 if scale <= 2 else 2)
                m = mean_row([evaluate_image(passes, img, scale, quality=q) for img in pics])
                cells.append(f"{set_name} x{scale:g}{f' q{q}' if q else ''} "
                             f"{m['psnr'] - m['psnr_bicubic']:+.3f}")
        print(tag, " ".join(cells), flush=True)
    report("start")
    fine_tune(net, images, make_pair, args.epochs, args.lr, True, report)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("probe", choices=["grid", "second-pass"])
    p.add_argument("--arm", choices=["grid", "control"], default="grid", help="grid probe")
    p.add_argument("--share", type=float, default=0.5, help="second-pass share (0: control)")
    p.add_argument("--clean", action="store_true", help="second-pass on the clean x2 model")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--lr", type=float, help="default 3e-4; 1e-4 with --clean")
    p.add_argument("--datasets", default=str(ROOT.parent / "shared" / "datasets"))
    args = p.parse_args()
    args.lr = args.lr or (1e-4 if args.clean else 3e-4)
    torch.set_num_threads(1)
    data = Path(args.datasets)
    images = [load_rgb(f) for f in sorted((data / "T91").iterdir())]
    sets = {s: [load_rgb(f) for f in sorted((data / s).iterdir())] for s in ("Set5", "Set14")}
    (probe_grid if args.probe == "grid" else probe_second_pass)(args, images, sets)


if __name__ == "__main__":
    main()
