"""What training draws on: its data, augmentation, learning-rate schedule, loss and
validation (the loop itself, with checkpoints and records, is sr/trainer.py).

Two sources of patch pairs, both degraded the way evaluation degrades pictures
(Pillow bicubic down by the scale and back up, with JPEG inputs a JPEG in between):
- PatchFolder: the NNNNN.large.png / NNNNN.small.png pairs of gen_samples.py
  (manifest.json says their scale and JPEG range);
- ImageCrops: fresh random crops from a folder of pictures every epoch
  (--from-images), optionally with the pictures rescaled first (augmentation),
  and optionally with targets moved toward a teacher model's output (--teacher).
Validation scores the pictures held out of --from-images whole, as `main.py
eval` does (HeldOutPictures); a gen_samples.py folder has only patches to score.
Randomness comes from generators seeded by (seed, epoch): see sr/trainer.py.
"""

import hashlib
import json
import math
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import numpy as np
import torch

from sr.cli import count_of, image_files
from sr.errors import UserError
from sr.evaluation import evaluate_image, mean_row
from sr.imaging import degraded_pair, resize, rgb_to_ycbcr
from sr.jpeg import is_quality_range
from sr.metrics import psnr_y
from sr.patches import fits_patch, patches_per_image
from sr.pictures import load_rgb, pixel_amount
from sr.upscaling import refine_batch, refined_luma

# Validation patches per network call: 64 patches of 48 px and 9-5-5's 96
# channels need about 60 MB of activations.
VALIDATION_BATCH = 64
# Held-out pictures are scored whole, each centre-cropped to at most this side,
# and only as many as fit the pixel budget (about 2 s per epoch for 9-5-5 on a
# 2-core CPU): a folder of large photos must not make validation the slow part.
VALIDATION_SIDE = 512
VALIDATION_PIXELS = 2_000_000
MIN_VALIDATION_SIDE = 32


@dataclass
class PatchSet:
    """Patch pairs in memory: 8-bit RGB arrays (N, P, P, 3) and their origin."""
    hr: np.ndarray
    lr: np.ndarray
    sources: list
    scale: int
    jpeg: list | None = None   # [qmin, qmax] the small halves were saved at, one per picture

    def __len__(self):
        return len(self.hr)

    def summary(self) -> str:
        jpeg = ", as JPEG q%d-%d" % tuple(self.jpeg) if self.jpeg else ""
        return count_of(len(self), "validation patch", plural="validation patches") + jpeg

    def subset(self, indices) -> "PatchSet":
        return PatchSet(self.hr[indices], self.lr[indices],
                        [self.sources[i] for i in indices], self.scale, self.jpeg)


def luma_plane(rgb) -> np.ndarray:
    """(..., H, W, 3) RGB (array or picture) -> (..., H, W) float32 luma Y / 255."""
    return rgb_to_ycbcr(np.asarray(rgb))[..., 0] / np.float32(255.0)


def read_manifest(folder: Path) -> dict:
    """folder's manifest.json ({} if none): {"scale": int >= 1, "sources": {pair: file
    name}, "degradation": {"resize": "bicubic", "jpeg": [low, high] or None}, ...};
    anything else is refused before the run starts.  The degradation of older
    manifests ("pillow-bicubic", or none) is given as the clean one."""
    path = folder / "manifest.json"
    if not path.is_file():
        return {}
    try:
        manifest = json.loads(path.read_text())
    except (ValueError, OSError) as e:
        raise UserError(f"{path}: unreadable ({e})") from None
    scale = manifest.get("scale", 2) if isinstance(manifest, dict) else None
    sources = manifest.get("sources", {}) if isinstance(manifest, dict) else None
    degradation = manifest.get("degradation") if isinstance(manifest, dict) else None
    if degradation in (None, "pillow-bicubic"):
        degradation = {"resize": "bicubic", "jpeg": None}
    jpeg = degradation.get("jpeg") if isinstance(degradation, dict) else "?"
    if not (type(scale) is int and scale >= 1 and isinstance(sources, dict)
            and all(isinstance(name, str) for name in sources.values())
            and isinstance(degradation, dict) and degradation.get("resize") == "bicubic"
            and (jpeg is None and scale > 1 or is_quality_range(jpeg))):
        raise UserError(f"{path}: not a manifest of gen_samples.py (an object with an "
                        f"integer scale >= 1, the sources of the pairs by name and a "
                        f"bicubic degradation, with a JPEG quality range at x1)")
    return dict(manifest, degradation=degradation)


def load_patch_folder(folder, scale: int | None = None) -> PatchSet:
    """Read NNNNN.large.png / NNNNN.small.png pairs and manifest.json from folder."""
    folder = Path(folder)
    if folder.is_file():
        raise UserError(f"{folder}: is a file; give a folder of samples from gen_samples.py")
    if not folder.is_dir():
        raise UserError(f"{folder}: no such folder; create samples with gen_samples.py")
    manifest = read_manifest(folder)
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
        hr.append(np.asarray(load_rgb(folder / f"{name}.large.png")))
        lr.append(np.asarray(load_rgb(small)))
        if hr[-1].shape != lr[-1].shape or hr[-1].shape[:2] != hr[0].shape[:2]:
            raise UserError(f"{small}: size differs from the other patches")
    sources = [manifest.get("sources", {}).get(n, n) for n in names]
    jpeg = manifest.get("degradation", {}).get("jpeg")
    return PatchSet(np.stack(hr), np.stack(lr), sources, scale, jpeg)


def split_validation(sources, fraction: float, seed: int, what: str = "patches"):
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
        raise UserError(f"too few {what} to hold some out for validation "
                        f"({len(sources)}): give at least 2")
    return train, val


def split_folder(folder, fraction: float, seed: int, warn) -> tuple[dict, dict]:
    """The readable pictures of a folder, split by split_validation over their sorted
    names: ({name: picture} to train on, {name: picture} held out)."""
    images = {}
    for path in image_files(folder):
        try:
            images[path.name] = load_rgb(path)
        except UserError as e:   # unreadable: reported, not trained on
            warn(f"skipping {e}")
    if not images:
        raise UserError(f"{folder}: no readable pictures")
    names = sorted(images)
    train, val = split_validation(names, fraction, seed, what="pictures")
    return ({names[i]: images[names[i]] for i in train},
            {names[i]: images[names[i]] for i in val})


def fingerprint(names, contents=()) -> str:
    """Short hash of the training data (recorded in checkpoints, compared on resume):
    the sorted names, then each buffer of contents in turn (the pixels, so
    that pictures changed under the same names count as changed)."""
    digest = hashlib.sha256("\n".join(sorted(names)).encode())
    for data in contents:
        digest.update(data)
    return digest.hexdigest()[:16]


class PatchFolder:
    """The same patch pairs every epoch (gen_samples.py output)."""

    def __init__(self, patches: PatchSet):
        self.x = torch.from_numpy(luma_plane(patches.lr))[:, None]  # (N, 1, P, P) float32
        self.t = torch.from_numpy(luma_plane(patches.hr))[:, None]
        self.patch = min(self.x.shape[2:])  # side (the shorter one, were they not square)
        self.hash = fingerprint(patches.sources, (np.ascontiguousarray(patches.lr),
                                                  np.ascontiguousarray(patches.hr)))
        self.names_hash = fingerprint(patches.sources)   # what runs recorded before

    def __len__(self):
        return len(self.x)

    def epoch(self, epoch: int, device="cpu"):
        """(lr, hr) luma tensors (N, 1, P, P) on device, moved there once."""
        if self.x.device != torch.device(device):
            self.x, self.t = self.x.to(device), self.t.to(device)
        return self.x, self.t


class ImageCrops:
    """`count` fresh random patch pairs per epoch from decoded pictures.

    rescale: each picture is first resized by a random factor in [rescale, 1]
    (Pillow bicubic), which adds detail at new scales; 1 disables it.
    teacher: a Teacher, or None; its weights are part of the data's hash.
    jpeg: (qmin, qmax): each picture's shrunk version is saved as JPEG at a quality
    drawn from that range every epoch (sr.imaging.degraded_pair), or None."""

    def __init__(self, images: dict, count: int, patch: int, scale: int, seed: int,
                 rescale: float = 1.0, teacher: "Teacher | None" = None, jpeg=None):
        if not any(fits_patch(img.size, patch, scale) for img in images.values()):
            raise no_patch_fits(patch, scale)
        self.images, self.count, self.patch, self.scale = images, count, patch, scale
        self.seed, self.rescale, self.teacher, self.jpeg = seed, rescale, teacher, jpeg
        contents = chain((images[name].tobytes() for name in sorted(images)),  # one at a time
                         teacher.contents() if teacher else ())
        self.hash = fingerprint(images, contents)
        self.names_hash = fingerprint(images)   # what runs recorded before

    def __len__(self):
        return self.count

    def epoch(self, epoch: int, device="cpu"):
        """(lr, hr) luma tensors (count, 1, P, P) on device: this epoch's fresh crops.

        Each picture is rescaled and degraded whole, once, and turned into luma on
        the CPU; the crops are windows of those two planes taken at the same places,
        gathered on device (one gather per picture, not one Pillow crop per patch)."""
        rng = np.random.default_rng([self.seed, epoch, 1])
        pictures = []
        for img in self.images.values():
            factor = rng.uniform(self.rescale, 1.0) if self.rescale < 1 else 1.0
            w, h = img.size
            pictures.append(img if factor == 1.0 else
                            resize(img, (max(1, round(w * factor)), max(1, round(h * factor)))))
        counts = patches_per_image([p.size for p in pictures], self.count, self.patch,
                                   self.scale, rng)
        if sum(counts) == 0:   # every picture rescaled below the patch this epoch
            raise no_patch_fits(self.patch, self.scale)
        lr_out, hr_out = [], []
        for img, n in zip(pictures, counts):
            if n == 0:
                continue
            # --jpeg: one quality per picture and epoch, from the epoch's generator
            quality = int(rng.integers(self.jpeg[0], self.jpeg[1] + 1)) if self.jpeg else None
            planes = [torch.from_numpy(p).to(device)  # (H, W) each: target, input
                      for p in self.target_and_input(img, quality)]
            h, w = planes[0].shape
            tops = torch.from_numpy(rng.integers(0, h - self.patch + 1, n)).to(device)
            lefts = torch.from_numpy(rng.integers(0, w - self.patch + 1, n)).to(device)
            for plane, out in zip(planes, (hr_out, lr_out)):
                windows = plane.unfold(0, self.patch, 1).unfold(1, self.patch, 1)  # (h', w', P, P)
                out.append(windows[tops, lefts][:, None])  # (n, 1, P, P)
        return torch.cat(lr_out), torch.cat(hr_out)

    def target_and_input(self, img, quality=None):
        """(target, input) luma planes (H, W) float32 of one picture: the sharp
        picture (or its mix with the teacher's output) and its bicubic degradation
        (with a JPEG round trip at quality, if given)."""
        hr, bicubic = degraded_pair(img, self.scale, quality)
        target, given = luma_plane(hr), luma_plane(bicubic)
        if self.teacher is not None:
            target = self.teacher.blend(target, np.asarray(bicubic))
        return target, given


class Teacher:
    """A trained model whose x8 self-ensemble output (`upscale --ensemble`) pulls the
    training targets toward it: target = (1 - weight) * sharp + weight * teacher.

    Self-distillation: the ensemble is a better estimate than one network pass
    (+0.16 dB on Set5 x4), so a network of the same size, given its own ensemble
    as teacher, has a reachable target that is better than itself; the sharp share
    keeps it anchored to the truth.  Costs one ensemble pass (8 network passes)
    over each picture per epoch."""

    def __init__(self, model, weight: float, device="cpu"):
        from sr.inference import SelfEnsemble, TorchRunner
        self.model, self.weight = model, weight
        self.runner = SelfEnsemble(TorchRunner(model, device, half=False))

    def blend(self, sharp: np.ndarray, bicubic: np.ndarray) -> np.ndarray:
        """sharp (H, W) luma, bicubic (H, W, 3) uint8 -> the blended target (H, W)."""
        taught = refined_luma(self.runner, bicubic)
        return ((1 - self.weight) * sharp + self.weight * taught).astype(np.float32)

    def contents(self) -> list:
        """What identifies the teacher in the data's hash: its weights and the blend."""
        state = self.model.state_dict()
        return [state[k].detach().cpu().numpy().tobytes() for k in sorted(state)] + \
            [repr(self.weight).encode()]


def no_patch_fits(patch: int, scale: int) -> UserError:
    return UserError(f"every training picture is smaller than {patch} px (--patch) "
                     f"once cut to multiples of the scale {scale}")


@dataclass
class HeldOutPictures:
    """Held-out pictures that validation scores whole, exactly as `main.py eval` does."""
    pictures: list
    scale: int
    quality: int | None = None   # JPEG inputs at this quality (--jpeg: its midpoint)

    def summary(self) -> str:
        pixels = sum(w * h for w, h in (p.size for p in self.pictures))
        jpeg = f", as JPEG q{self.quality}" if self.quality else ""
        return (f"{count_of(len(self.pictures), 'held-out picture')} "
                f"({pixel_amount(pixels)}) scored whole{jpeg}")


def held_out_pictures(images: dict, scale: int, side: int = VALIDATION_SIDE,
                      budget: int = VALIDATION_PIXELS, quality=None) -> HeldOutPictures:
    """The held-out pictures, in name order, each centre-cropped to at most
    side x side, as many as fit in budget pixels (always at least one).
    Pictures under MIN_VALIDATION_SIDE px are left out: too small to score."""
    kept, used = [], 0
    for name in sorted(images):
        img = images[name]
        w, h = img.size
        if min(w, h) < MIN_VALIDATION_SIDE:
            continue
        cw, ch = min(w, side), min(h, side)
        if kept and used + cw * ch > budget:
            break
        left, top = (w - cw) // 2, (h - ch) // 2
        kept.append(img if (cw, ch) == (w, h) else img.crop((left, top, left + cw, top + ch)))
        used += cw * ch
    if not kept:
        raise UserError(f"the held-out pictures are all smaller than {MIN_VALIDATION_SIDE} px")
    return HeldOutPictures(kept, scale, quality)


def lr_factor(step: int, total: int, warmup_fraction: float = 0.05) -> float:
    """Linear warm-up over the first 5% of steps, then cosine decay to zero: the warm-up
    keeps Adam's first, full-size steps from pushing 9-5-5's ReLUs into the dead zone."""
    warmup = max(1, int(total * warmup_fraction))
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * min(step - warmup, total - warmup)
                               / max(1, total - warmup)))


def epoch_plan(n: int, batch: int, seed: int, epoch: int):
    """Order of the n patches and one (rotation k, flip) per step of this epoch."""
    gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(n, generator=gen)
    steps = (math.ceil(n / batch),)   # the shape: one draw per step
    return order, torch.randint(4, steps, generator=gen), torch.randint(2, steps, generator=gen)


def augment(x: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    """Rotate (N, 1, H, W) by k * 90 degrees, then mirror if flip."""
    x = torch.rot90(x, k, (2, 3))
    return x.flip(3) if flip else x


class ValidRegion(torch.nn.Module):
    """Wraps SRCNN so that calling it runs forward_valid: (N,1,P,P) -> (N,1,P-2r,P-2r).

    DistributedDataParallel synchronises gradients only for what runs through
    its wrapped module's forward, hence this wrapper rather than a method call."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model.forward_valid(x)


@torch.no_grad()
def validation_psnr(model, val: HeldOutPictures | PatchSet) -> tuple[float, float]:
    """Mean PSNR (model, bicubic) on the held-out data, by the evaluation code.

    Pictures are scored whole (the number `main.py eval` would print for them);
    gen_samples.py patches, which have no pictures behind them, patch by patch."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    if isinstance(val, HeldOutPictures):
        from sr.inference import scoring_runner   # what eval and upscale run here
        runner = scoring_runner(model, device)
        mean = mean_row([evaluate_image([(runner, val.scale)], img, val.scale,
                                        quality=val.quality)
                         for img in val.pictures])
        ours, bicubic = [mean["psnr"]], [mean["psnr_bicubic"]]
    else:
        ours, bicubic = [], []
        for start in range(0, len(val.hr), VALIDATION_BATCH):
            hr, lr = (a[start:start + VALIDATION_BATCH] for a in (val.hr, val.lr))
            for h, refined, b in zip(hr, refine_batch(model, lr, device), lr):
                ours.append(psnr_y(h, refined, val.scale))
                bicubic.append(psnr_y(h, b, val.scale))
    model.train(was_training)
    return float(np.mean(ours)), float(np.mean(bicubic))
