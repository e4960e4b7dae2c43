"""Cropping training patch pairs (sharp HR patch, degraded twin) from pictures."""

import numpy as np

from sr.imaging import cropped_size, degraded_pair


def fits_patch(size, patch: int, scale: int) -> bool:
    """Whether a picture of size (width, height) can give a patch x patch crop at
    this scale: the one rule for it, used by gen_samples.py and --from-images."""
    return min(cropped_size(size, scale)) >= patch


def patches_per_image(sizes, count: int, patch: int, scale: int, rng: np.random.Generator):
    """Split count patches over images (sizes: [(width, height)]) in proportion to
    their area, as a list of ints; those that cannot give a patch (fits_patch) get none."""
    areas = np.array([w * h if fits_patch((w, h), patch, scale) else 0 for w, h in sizes],
                     dtype=float)
    if areas.sum() == 0:
        return [0] * len(sizes)
    return rng.multinomial(count, areas / areas.sum()).tolist()


def crop_pairs(img, n: int, patch: int, scale: int, rng: np.random.Generator,
               quality: int | None = None):
    """n random (hr, lr) patch pairs of patch x patch pixels from one picture, one at a
    time (a generator: memory does not grow with n).  The whole picture is degraded
    first (bicubic down by scale, saved as JPEG at quality if given, and back up, as in
    evaluation), then both versions are cropped at the same place, so the patch edges
    carry no artefacts that real inputs would not have.  Each pair draws two integers
    from rng, and nothing else does."""
    hr, lr = degraded_pair(img, scale, quality)
    w, h = hr.size
    for _ in range(n):
        left = int(rng.integers(0, w - patch + 1))
        top = int(rng.integers(0, h - patch + 1))
        box = (left, top, left + patch, top + patch)
        yield hr.crop(box), lr.crop(box)
