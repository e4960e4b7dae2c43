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

import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

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
    """Write img to path atomically (see write_file_atomic); the format follows
    the suffix.  Without overwrite an existing file is never replaced."""
    fmt = Image.registered_extensions().get(Path(path).suffix.lower(), "PNG")
    return write_file_atomic(path, lambda f: img.save(f, format=fmt, **params), overwrite)


def grey_to_luma(grey: np.ndarray) -> np.ndarray:
    """(H, W) grey on 0..255 -> float32 Y on 0..255 (R = G = B = grey in the matrix above)."""
    return (16.0 + grey.astype(np.float32) * np.float32(219.0 / 255.0)).astype(np.float32)


def luma_to_grey(y: np.ndarray) -> np.ndarray:
    """Inverse of grey_to_luma, not clipped."""
    return (y.astype(np.float32) - 16.0) * np.float32(255.0 / 219.0)


def write_text_atomic(path, text: str, overwrite: bool = True) -> Path:
    """Write a text file through a temporary file and a rename (see write_file_atomic)."""
    return write_file_atomic(path, lambda f: f.write(text.encode()), overwrite)


def write_file_atomic(path, write, overwrite: bool = False) -> Path:
    """Call write(f) on a temporary file in path's folder, then move it into place.

    The same guarantees as save_image, for writers other than Pillow's: without
    overwrite an existing file is never replaced (UserError instead, checked by
    os.link, so there is no check-then-write race); an interrupted or failed
    write leaves no file behind.  (No fsync: it made a 1200x800 PNG's write 16%
    slower here, for safety against a power cut, which this does not promise.)
    """
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path}: is a folder, not a file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:   # name the file asked for, not the temporary one
        reason = ("a file stands where its folder should be"
                  if isinstance(e, (FileExistsError, NotADirectoryError)) else e.strerror)
        raise UserError(f"{path}: cannot write there ({reason})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            # mkstemp makes 0600: widen it as open() would have made it
            os.fchmod(f.fileno(), 0o666 & ~current_umask())
            write(f)
        if overwrite:
            os.replace(tmp, path)
        else:
            publish_new(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def publish_new(tmp: str, path: Path) -> None:
    """Give the finished temporary file tmp the name path, which must not exist.

    os.link fails if path exists, so nothing is replaced and there is no race
    between a check and the write.  Where the file system has no hard links
    (FAT, exFAT, some network shares) an empty placeholder is created exclusively
    instead and then replaced by the file."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise UserError(f"{path}: already exists, not overwritten") from None
    except OSError:   # no hard links here
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            raise UserError(f"{path}: already exists, not overwritten") from None
        try:
            os.replace(tmp, path)
        except BaseException:
            os.unlink(path)   # the empty placeholder
            raise
        return
    os.unlink(tmp)


def current_umask() -> int:
    """The process's umask, read without changing it where Linux tells it."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)   # elsewhere: set and restore (not thread-safe, rarely reached)
    os.umask(mask)
    return mask
