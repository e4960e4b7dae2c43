"""Pixels outside the network: colour, resizing and the degradation (reading is in
sr/pictures.py, writing in sr/picture_files.py and sr/atomic.py).

Every path in the project (sample generation, training, upscaling, evaluation,
export and the browser page) follows these definitions, so they agree exactly:

- Colour: ITU-R BT.601 "studio swing" YCbCr, as MATLAB's rgb2ycbcr, on the 0..255
  scale: Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255.
- The network sees and returns luma as Y / 255 (float32, roughly 0.06..0.92).
- Resizing: Pillow's bicubic (antialiased, a = -0.5, like MATLAB's imresize).
- Degradation: downscale by the scale factor and back up, both bicubic.
"""

from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

# rows: Y, Cb, Cr; columns: R, G, B (inputs on 0..255).
RGB_TO_YCBCR = np.array([[65.481, 128.553, 24.966],
                         [-37.797, -74.203, 112.0],
                         [112.0, -93.786, -18.214]]) / 255.0
YCBCR_OFFSET = np.array([16.0, 128.0, 128.0])
YCBCR_TO_RGB = np.linalg.inv(RGB_TO_YCBCR)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"}


def is_picture_name(path: Path) -> bool:
    """Whether a file found in a folder counts as a picture: by its suffix, and not
    hidden (e.g. the ._photo.jpg files macOS leaves on shared drives)."""
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) RGB on 0..255 (any dtype) -> (H, W, 3) float32 YCbCr on 0..255."""
    return (rgb.astype(np.float32) @ RGB_TO_YCBCR.T.astype(np.float32)
            + YCBCR_OFFSET.astype(np.float32))


def ycbcr_to_rgb(ycc: np.ndarray) -> np.ndarray:
    """(H, W, 3) YCbCr on 0..255 -> (H, W, 3) float32 RGB on 0..255, not clipped."""
    return ((ycc.astype(np.float32) - YCBCR_OFFSET.astype(np.float32))
            @ YCBCR_TO_RGB.T.astype(np.float32))


def luma(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) RGB on 0..255 -> (H, W) float64 Y on 0..255 (for metrics)."""
    return rgb.astype(np.float64) @ RGB_TO_YCBCR[0] + YCBCR_OFFSET[0]


def to_uint8(x: np.ndarray) -> np.ndarray:
    """Round to the nearest integer (ties to even) and clip to 0..255."""
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def resize(img: Image.Image, size) -> Image.Image:
    """Pillow bicubic resize to size = (width, height)."""
    return img.resize(tuple(int(v) for v in size), Image.BICUBIC)


def cropped_size(size, scale: int) -> tuple[int, int]:
    """(width, height) of a picture of this size once modcrop has cut it to multiples
    of scale (known before the picture is decoded)."""
    w, h = size
    return w - w % scale, h - h % scale


def modcrop(img: Image.Image, scale: int) -> Image.Image:
    """Drop the right/bottom remainder so both sides are multiples of scale."""
    return img.crop((0, 0, *cropped_size(img.size, scale)))


def degraded_pair(img: Image.Image, scale: int, quality: int | None = None):
    """(sharp, degraded) RGB pictures of one size, by the evaluation protocol's
    degradation: the RGB picture img (as sr.pictures.load_rgb reads it) modcropped,
    and the same shrunk by scale with bicubic (for JPEG inputs, then a JPEG round trip
    at quality: sr.jpeg) and enlarged back with bicubic."""
    if img.mode != "RGB":
        raise ValueError(f"degraded_pair takes RGB pictures, not mode {img.mode}")
    hr, small = shrunk_pair(img, scale, quality)   # at an integer scale, modcrop's crop
    return hr, resize(small, hr.size)


def exact_ratio(scale: float) -> Fraction:
    """scale as p/q in lowest terms, q up to 1000: 2.5 -> 5/2, 2 -> 2/1."""
    return Fraction(scale).limit_denominator(1000)


def scale_crop(size, scale: float) -> tuple[int, int]:
    """The largest (width, height) within size that is a whole small picture's size
    times scale exactly: sides cut to multiples of scale's numerator p (for an integer
    scale, cropped_size)."""
    return cropped_size(size, exact_ratio(scale).numerator)


def shrunk_pair(img: Image.Image, scale: float, quality: int | None = None):
    """(sharp, small) for any scale >= 1, the small one the input: img cropped to
    scale_crop and its bicubic shrink by 1 / scale (saved as JPEG at quality, if
    given); at integer scales degraded_pair's crop and shrink."""
    ratio = exact_ratio(scale)
    hr = img.crop((0, 0, *scale_crop(img.size, scale)))
    small = resize(hr, [side * ratio.denominator // ratio.numerator for side in hr.size])
    if quality:
        from sr.jpeg import jpeg_roundtrip
        small = jpeg_roundtrip(small, quality)
    return hr, small


def grey_to_luma(grey: np.ndarray) -> np.ndarray:
    """(H, W) grey on 0..255 -> float32 Y on 0..255 (R = G = B = grey in the matrix above)."""
    return (16.0 + grey.astype(np.float32) * np.float32(219.0 / 255.0)).astype(np.float32)


def luma_to_grey(y: np.ndarray) -> np.ndarray:
    """Inverse of grey_to_luma, not clipped."""
    return (y.astype(np.float32) - 16.0) * np.float32(255.0 / 219.0)
