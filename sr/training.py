"""Training SRCNN on patch pairs written by gen_samples.py."""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from sr.errors import UserError
from sr.imaging import load_image, rgb_to_ycbcr, to_rgb
from sr.metrics import psnr_y
from sr.upscaling import refine


@dataclass
class PatchSet:
    """Patch pairs in memory: 8-bit RGB arrays (N, P, P, 3) and their origin."""
    hr: np.ndarray
    lr: np.ndarray
    sources: list
    scale: int


def load_patch_folder(folder, scale: int | None = None) -> PatchSet:
    """Read NNNNN.large.png / NNNNN.small.png pairs and manifest.json from folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: no such folder; create samples with gen_samples.py")
    manifest = {}
    if (folder / "manifest.json").is_file():
        try:
            manifest = json.loads((folder / "manifest.json").read_text())
        except (ValueError, OSError) as e:
            raise UserError(f"{folder / 'manifest.json'}: unreadable ({e})") from None
    found = manifest.get("scale")
    if scale is not None and found is not None and found != scale:
        raise UserError(f"{folder}: samples were made for x{found}, not x{scale}")
    scale = scale or found or 2
    names = sorted(p.name[:-len(".large.png")] for p in folder.glob("*.large.png"))
    if not names:
        raise UserError(f"{folder}: no *.large.png / *.small.png pairs")
    hr, lr = [], []
    for name in names:
        small = folder / f"{name}.small.png"
        if not small.is_file():
            raise UserError(f"{small}: missing (its .large.png twin exists)")
        hr.append(np.asarray(to_rgb(load_image(folder / f"{name}.large.png"))))
        lr.append(np.asarray(to_rgb(load_image(small))))
        if hr[-1].shape != lr[-1].shape or hr[-1].shape[:2] != hr[0].shape[:2]:
            raise UserError(f"{small}: size differs from the other patches")
    sources = [manifest.get("sources", {}).get(n, n) for n in names]
    return PatchSet(np.stack(hr), np.stack(lr), sources, scale)


def split_validation(sources, fraction: float, seed: int):
    """Hold out whole source pictures (not single patches, which overlap their
    neighbours) for validation. Returns (train indices, validation indices)."""
    unique = sorted(set(sources))
    rng = np.random.default_rng(seed)
    rng.shuffle(unique)
    if len(unique) >= 4:
        held = set(unique[:max(1, round(len(unique) * fraction))])
        val = [i for i, s in enumerate(sources) if s in held]
    else:  # too few pictures: hold out patches instead
        order = rng.permutation(len(sources))
        val = sorted(order[:max(1, round(len(sources) * fraction))].tolist())
    val_set = set(val)
    train = [i for i in range(len(sources)) if i not in val_set]
    if not train:
        raise UserError("too few patches to hold some out for validation")
    return train, val


def luma_tensor(rgb: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 RGB -> (N, 1, H, W) float32 luma Y / 255."""
    return torch.from_numpy(rgb_to_ycbcr(rgb)[..., 0] / np.float32(255.0))[:, None]


def augment(x: torch.Tensor, t: torch.Tensor, gen: torch.Generator):
    """The same random flip and 90-degree rotation on inputs and targets (N, 1, H, W)."""
    k = int(torch.randint(4, (1,), generator=gen))
    flip = bool(torch.randint(2, (1,), generator=gen))
    x, t = torch.rot90(x, k, (2, 3)), torch.rot90(t, k, (2, 3))
    if flip:
        x, t = x.flip(3), t.flip(3)
    return x, t


def validation_psnr(model, patches: PatchSet, indices) -> tuple[float, float]:
    """Mean PSNR (model, bicubic) over held-out patches, by the evaluation code."""
    model.eval()
    device = next(model.parameters()).device
    ours, bicubic = [], []
    for i in indices:
        out = refine(model, patches.lr[i], tile=0, device=device)
        ours.append(psnr_y(patches.hr[i], out, patches.scale))
        bicubic.append(psnr_y(patches.hr[i], patches.lr[i], patches.scale))
    model.train()
    return float(np.mean(ours)), float(np.mean(bicubic))


def loss_on_valid_region(model, x, t):
    """MSE of the network's valid output (N, 1, P-2r, P-2r) against the target centre."""
    r = model.radius
    out = model.forward_valid(x)
    return F.mse_loss(out, t[:, :, r:t.shape[2] - r, r:t.shape[3] - r])


def lr_factor(step: int, total: int, warmup_fraction: float = 0.05) -> float:
    """Linear warm-up over the first 5% of steps, then cosine decay to zero.

    The warm-up keeps Adam's first, full-size steps from pushing the ReLUs of
    the wider 9-5-5 network into the dead zone."""
    warmup = max(1, int(total * warmup_fraction))
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * min(step - warmup, total - warmup) / max(1, total - warmup)))


def fit(model, patches: PatchSet, train_idx, val_idx, epochs: int, batch: int,
        lr: float, seed: int, device, log=print):
    """Adam with cosine-decayed learning rate; returns per-epoch records."""
    gen = torch.Generator().manual_seed(seed)
    x_all = luma_tensor(patches.lr[train_idx])
    t_all = luma_tensor(patches.hr[train_idx])
    n = len(train_idx)
    steps_per_epoch = math.ceil(n / batch)
    total = epochs * steps_per_epoch
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, total))
    model.train()
    history = []
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        order = torch.randperm(n, generator=gen)
        losses = []
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch}/{epochs}", unit="step",
                   leave=False, dynamic_ncols=True)
        for step in bar:
            idx = order[step * batch:(step + 1) * batch]
            x, t = augment(x_all[idx], t_all[idx], gen)
            loss = loss_on_valid_region(model, x.to(device), t.to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{losses[-1]:.2e}")
        ours, bicubic = validation_psnr(model, patches, val_idx)
        record = {"epoch": epoch, "loss": float(np.mean(losses)), "val_psnr": ours,
                  "val_psnr_bicubic": bicubic, "seconds": time.perf_counter() - start}
        history.append(record)
        log(f"epoch {epoch:3d}/{epochs}  loss {record['loss']:.3e}  "
            f"val PSNR {ours:.2f} dB (bicubic {bicubic:.2f}, {ours - bicubic:+.2f})  "
            f"{record['seconds']:.1f}s")
    return history
