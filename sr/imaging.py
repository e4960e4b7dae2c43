"""Everything that touches pixels outside the network: loading, colour, resizing, saving.

Every path in the project (sample generation, training, upscaling, evaluation,
export and the browser page) follows these definitions, so they agree exactly:

- Colour: ITU-R BT.601 "studio swing" YCbCr, as MATLAB's rgb2ycbcr, on the 0..255
  scale: Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255.
- The network sees and returns luma as Y / 255 (float32, roughly 0.06..0.92).
- Resizing: Pillow's bicubic (antialiased, a = -0.5, like MATLAB's imresize).
- Degradation: downscale by the scale factor and back up, both bicubic.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from sr.atomic import write_file_atomic
from sr.errors import UserError

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


def existing_file(path) -> Path:
    """path as a Path; UserError if it is missing or a folder."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file")
    if path.is_dir():
        raise UserError(f"{path}: is a folder, not an image")
    return path


def load_image(path) -> Image.Image:
    """Open and fully decode an image, upright (EXIF orientation applied).

    Raises UserError with the file name for a missing, unreadable or truncated file.
    """
    path = existing_file(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()
                upright = ImageOps.exif_transpose(img)
                upright.load()
                return upright
    except Image.DecompressionBombWarning as e:
        raise UserError(f"{path}: image too large ({e})") from None
    except (UnidentifiedImageError, Image.DecompressionBombError) as e:
        raise UserError(f"{path}: not a readable image ({e})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise UserError(f"{path}: damaged or unsupported image ({e})") from None


def to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow image -> 8-bit RGB by the reading rules of `main.py upscale`
    (sr.pictures: 16-bit rounded to 8 bits, CMYK through its ICC profile, palette
    and other modes converted), grey expanded, transparency dropped.  Pillow's own
    convert("RGB") would clip 16-bit grey to white."""
    if img.mode == "RGB":
        return img
    from sr.pictures import picture_from_image, to_8bit   # sr.pictures imports this module
    colour = picture_from_image(img).colour               # (H, W[, 3]) uint8 or uint16
    if colour.dtype != np.uint8:
        colour = to_8bit(colour)
    if colour.ndim == 2:
        colour = np.repeat(colour[..., None], 3, axis=2)
    return Image.fromarray(np.ascontiguousarray(colour), "RGB")


def load_rgb(path) -> Image.Image:
    """load_image + to_rgb; UserError naming the file if it cannot be read or is of a
    kind that is refused (float pictures)."""
    img = load_image(path)
    try:
        return to_rgb(img)
    except UserError as e:
        raise UserError(f"{path}: {e}") from None


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


def degrade(hr: Image.Image, scale: int) -> Image.Image:
    """The evaluation protocol's degradation: bicubic down by scale, bicubic back up.

    hr must already be modcropped; the result has hr's size.
    """
    w, h = hr.size
    if w % scale or h % scale:
        raise ValueError(f"image size {w}x{h} is not a multiple of the scale {scale}")
    return resize(resize(hr, (w // scale, h // scale)), (w, h))


def degraded_pair(img: Image.Image, scale: int):
    """(sharp, degraded) RGB pictures of one size: the picture cropped to a multiple
    of scale, and the same squeezed by scale and interpolated back (bicubic)."""
    hr = modcrop(to_rgb(img), scale)
    return hr, degrade(hr, scale)


def save_image(img: Image.Image, path, overwrite: bool = False, **params) -> Path:
    """Write img to path atomically (see sr.atomic); the format follows
    the suffix.  Without overwrite an existing file is never replaced."""
    fmt = Image.registered_extensions().get(Path(path).suffix.lower(), "PNG")
    return write_file_atomic(path, lambda f: img.save(f, format=fmt, **params), overwrite)


def grey_to_luma(grey: np.ndarray) -> np.ndarray:
    """(H, W) grey on 0..255 -> float32 Y on 0..255 (R = G = B = grey in the matrix above)."""
    return (16.0 + grey.astype(np.float32) * np.float32(219.0 / 255.0)).astype(np.float32)


def luma_to_grey(y: np.ndarray) -> np.ndarray:
    """Inverse of grey_to_luma, not clipped."""
    return (y.astype(np.float32) - 16.0) * np.float32(255.0 / 219.0)
