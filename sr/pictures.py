"""Pictures as the upscaler sees them: every image kind in, upright NumPy planes out.

A Picture is one colour plane (RGB or grey, 8 or 16 bits), an optional alpha
plane of the same depth, the ICC profile to carry over, and notes about what
was converted on the way in (said on the command line).  Reading covers what
users actually have: EXIF-rotated JPEGs, palette and CMYK files, 16-bit PNG and
TIFF (grey and RGB; Pillow itself keeps only the high byte of 16-bit RGB, so the
low byte is decoded in a second pass), transparency, decompression bombs.
Writing is in sr/picture_files.py.
"""
from __future__ import annotations

import io
import struct
import sys
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from sr.errors import UserError
from sr.imaging import existing_file

# Pillow's own decompression-bomb limit (about 89.5 Mpix, e.g. 9459 x 9459).
DEFAULT_MAX_PIXELS = int(1024 * 1024 * 1024 // 4 // 3)

# modes that are converted on the way in: mode -> (target mode, note)
CONVERTED_MODES = {
    "1": ("L", "1-bit picture converted to 8-bit grey"),
    "PA": ("RGBA", "palette picture converted to RGBA"),
    "La": ("LA", "premultiplied alpha converted to straight alpha"),
    "RGBa": ("RGBA", "premultiplied alpha converted to straight alpha"),
    "RGBX": ("RGB", None),
    "YCbCr": ("RGB", "YCbCr picture converted to RGB"),
    "LAB": ("RGB", "Lab picture converted to RGB"),
    "HSV": ("RGB", "HSV picture converted to RGB"),
}
GREY16_MODES = ("I;16", "I;16L", "I;16B", "I;16N")


@dataclass
class Picture:
    colour: np.ndarray                  # (H, W, 3) RGB or (H, W) grey; uint8 or uint16
    alpha: np.ndarray | None = None     # (H, W), same dtype as colour, or None
    icc: bytes | None = None            # ICC profile of the colour values, carried over
    notes: list = field(default_factory=list)

    @property
    def size(self) -> tuple:
        """(width, height), as Pillow says it."""
        return self.colour.shape[1], self.colour.shape[0]

    @property
    def bits(self) -> int:
        return 16 if self.colour.dtype == np.uint16 else 8

    @property
    def grey(self) -> bool:
        return self.colour.ndim == 2

    def describe(self) -> str:
        kind = ("grey" if self.grey else "RGB") + ("+alpha" if self.alpha is not None else "")
        return f"{kind} {self.bits}-bit"


@contextmanager
def pixel_limit(max_pixels: int | None):
    """Pillow's bomb check off inside (we check ourselves, with a clearer message), and
    its warnings about damaged metadata ("Corrupt EXIF data") silent: the file is
    then read, or refused in one line."""
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            warnings.simplefilter("ignore", UserWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def read_picture(path, max_pixels: int | None = DEFAULT_MAX_PIXELS,
                 check_size=None) -> Picture:
    """Decode a file into an upright Picture; UserError (one line) for any bad file.

    check_size: called with the upright (width, height) from the header, before
    anything is decoded (e.g. to refuse a result too large); its UserError gets
    the file's name in front."""
    path = existing_file(path)
    try:
        with pixel_limit(max_pixels), Image.open(path) as img:
            check_pixel_count(img.size, max_pixels)
            if check_size is not None:
                check_size(upright_size(img))
            rawmode = tile_rawmode(img)                   # how the file stores pixels
            low = low_bytes_of_16bit(path, img, rawmode)  # None unless 16-bit RGB(A)
            img.load()
            notes = []
            if rawmode == "LA;16B" and img.mode == "RGBA":
                # Pillow decodes 16-bit grey+alpha PNGs to 8-bit RGBA, with no way to
                # reach the low bytes: keep it grey, and say so.
                img = img.convert("LA")
                notes.append("16-bit grey+alpha read at 8 bits (Pillow's limit)")
            picture = picture_from_image(img, low)
            picture.notes[:0] = notes
            return picture
    except UserError as e:
        raise UserError(f"{path}: {e}") from None
    except UnidentifiedImageError:
        picture = tiff_beyond_pillow(path, max_pixels, check_size)
        if picture is None:
            raise UserError(f"{path}: not a readable image (not a picture, or a format "
                            f"Pillow cannot read)") from None
        return picture
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError, IndexError,
            TypeError, KeyError, struct.error) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"{path}: damaged or unsupported image ({reason[:160]})") from None


def tiff_beyond_pillow(path, max_pixels: int | None, check_size) -> Picture | None:
    """The first page of a TIFF that Pillow cannot open, such as 16-bit grey+alpha
    (what upscale writes for such a picture), read by tifffile: 8 or 16 bits, grey or
    RGB, with or without alpha, upright.  None if it is not one of those."""
    import logging

    import tifffile
    quiet = logging.getLogger("tifffile")   # it logs what it cannot read: we say it once
    was, quiet.disabled = quiet.disabled, True
    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            grey = page.photometric == tifffile.PHOTOMETRIC.MINISBLACK
            extra = len(page.extrasamples)
            upright = page.tags.valueof("Orientation", 1) == 1
            if page.dtype not in (np.uint8, np.uint16) or extra > 1 or not upright \
                    or page.photometric not in (tifffile.PHOTOMETRIC.MINISBLACK,
                                                tifffile.PHOTOMETRIC.RGB):
                return None
            check_pixel_count((page.imagewidth, page.imagelength), max_pixels)
            if check_size is not None:
                check_size((page.imagewidth, page.imagelength))
            pixels = page.asarray()                     # (H, W) or (H, W, S), interleaved
            icc = page.tags.valueof("InterColorProfile") or None
    except UserError as e:
        raise UserError(f"{path}: {e}") from None
    except Exception:   # tifffile's errors for files it cannot read either
        return None
    finally:
        quiet.disabled = was
    pixels = pixels.reshape(*pixels.shape[:2], -1)      # (H, W, S)
    colour = pixels[..., 0] if grey else pixels[..., :3]
    alpha = pixels[..., -1] if extra else None
    return Picture(np.ascontiguousarray(colour), None if alpha is None else
                   np.ascontiguousarray(alpha), bytes(icc) if icc else None)


def check_pixel_count(size, max_pixels: int | None) -> None:
    w, h = size
    if max_pixels and w * h > max_pixels:
        raise UserError(f"{w}x{h} is {pixel_amount(w * h)}, above the limit of "
                        f"{pixel_amount(max_pixels)} (a guard against decompression bombs); "
                        f"raise it with --max-pixels")


def pixel_amount(n: int) -> str:
    """A pixel count for messages: exact below 1 Mpix (a limit of 10 is not '0.0 Mpix'),
    then Mpix, and powers of ten for absurd sizes (--scale 1e9)."""
    if n < 1_000_000:
        return f"{n} pixels"
    mpix = n / 1e6
    return f"{mpix:.1f} Mpix" if mpix < 1e5 else f"{mpix:.3g} Mpix"


def upright_size(img: Image.Image) -> tuple:
    """(width, height) after the EXIF rotation, from the header alone.  A PNG whose
    eXIf chunk follows the pixels counts as upright here: Pillow would decode the
    whole picture to find that chunk."""
    w, h = img.size
    if img.format == "PNG" and "exif" not in img.info:
        return w, h
    return (h, w) if img.getexif().get(0x0112, 1) in (5, 6, 7, 8) else (w, h)


def picture_from_image(img: Image.Image, low: Image.Image | None = None) -> Picture:
    """Upright Picture from a decoded Pillow image (low: its 16-bit low bytes, if any)."""
    notes = []
    icc = img.info.get("icc_profile") or None
    frames = getattr(img, "n_frames", 1)
    if frames > 1:
        notes.append(f"first frame of {frames} used")
    orientation = img.getexif().get(0x0112, 1) if hasattr(img, "getexif") else 1
    if orientation not in (None, 1):
        notes.append(f"EXIF orientation {orientation} applied")
        img = ImageOps.exif_transpose(img)
        low = ImageOps.exif_transpose(low) if low is not None else None
    if low is not None:
        return _picture_16bit_colour(img, low, icc, notes)
    if img.mode == "CMYK":
        img, icc = _cmyk_to_rgb(img, icc, notes)
    if img.mode == "P":
        has_alpha = "transparency" in img.info
        img, note = img.convert("RGBA" if has_alpha else "RGB"), \
            f"palette picture converted to {'RGBA' if has_alpha else 'RGB'}"
        notes.append(note)
    if img.mode in CONVERTED_MODES:
        mode, note = CONVERTED_MODES[img.mode]
        img = img.convert(mode)
        if note:
            notes.append(note)
    return _picture_from_plain_mode(img, icc, notes)


def _picture_from_plain_mode(img, icc, notes) -> Picture:
    mode = img.mode
    if mode in ("RGB", "L"):
        return Picture(np.asarray(img), None, icc, notes)
    if mode in ("RGBA", "LA"):
        pixels = np.asarray(img)
        colour = pixels[..., :3] if mode == "RGBA" else pixels[..., 0]
        return Picture(np.ascontiguousarray(colour), np.ascontiguousarray(pixels[..., -1]),
                       icc, notes)
    if mode in GREY16_MODES:
        return Picture(np.asarray(img).astype(np.uint16), None, icc, notes)
    if mode == "I":
        values = np.asarray(img)
        if values.min() < 0 or values.max() > 65535:
            notes.append("32-bit integer values clipped to 16 bits")
        else:
            notes.append("32-bit integer picture treated as 16-bit")
        return Picture(np.clip(values, 0, 65535).astype(np.uint16), None, icc, notes)
    if mode == "F":   # no agreed range (0..1? 0..65535?) to map to pixel values
        raise UserError("32-bit float pictures (mode F) are not supported: save it as "
                        "16-bit PNG or TIFF first")
    raise UserError(f"pictures of mode {mode} are not supported")


def _cmyk_to_rgb(img, icc, notes):
    """CMYK -> RGB through the embedded profile when there is one (then sRGB out)."""
    if icc:
        try:
            from PIL import ImageCms
            srgb = ImageCms.createProfile("sRGB")
            rgb = ImageCms.profileToProfile(img, ImageCms.ImageCmsProfile(io.BytesIO(icc)),
                                            srgb, outputMode="RGB")
            notes.append("CMYK converted to sRGB through its ICC profile")
            return rgb, ImageCms.ImageCmsProfile(srgb).tobytes()
        except Exception as e:  # a broken profile: fall back to the plain formula
            notes.append(f"CMYK ICC profile unusable ({str(e)[:60]})")
    notes.append("CMYK converted to RGB (plain formula, no ICC profile)")
    return img.convert("RGB"), None


# --- 16-bit RGB: Pillow's unpackers keep the high byte; a second decode keeps the low one.

def _rawmode(tile_args):
    return tile_args if isinstance(tile_args, str) else (
        tile_args[0] if isinstance(tile_args, tuple) and tile_args and
        isinstance(tile_args[0], str) else None)


def _with_rawmode(tile_args, rawmode):
    return rawmode if isinstance(tile_args, str) else (rawmode, *tile_args[1:])


def _swap_byte_order(rawmode: str) -> str:
    """'RGB;16B' -> 'RGB;16L': the same unpacker then takes the other byte of each value."""
    base, order = rawmode[:-1], rawmode[-1]
    if order == "N":
        order = "L" if sys.byteorder == "little" else "B"
    return base + ("L" if order == "B" else "B")


def tile_rawmode(img: Image.Image) -> str | None:
    """The one raw mode the decoder will unpack (e.g. 'RGB;16B'), or None."""
    raws = {_rawmode(t.args) for t in (img.tile or [])}
    return next(iter(raws)) if len(raws) == 1 else None


def low_bytes_of_16bit(path, img: Image.Image, rawmode: str | None) -> Image.Image | None:
    """For a 16-bit RGB/RGBA file, the same picture decoded to its low bytes (else None)."""
    if img.mode not in ("RGB", "RGBA") or not (rawmode or "").startswith(f"{img.mode};16"):
        return None
    swapped = _swap_byte_order(rawmode)
    low = Image.open(path)
    low.tile = [t._replace(args=_with_rawmode(t.args, swapped)) for t in low.tile]
    low.load()
    return low


def _picture_16bit_colour(high, low, icc, notes) -> Picture:
    """Combine the high- and low-byte decodes of a 16-bit RGB(A) picture."""
    values = (np.asarray(high).astype(np.uint16) << 8) | np.asarray(low).astype(np.uint16)
    alpha = np.ascontiguousarray(values[..., 3]) if high.mode == "RGBA" else None
    return Picture(np.ascontiguousarray(values[..., :3]), alpha, icc, notes)


def to_8bit(values: np.ndarray) -> np.ndarray:
    """16-bit -> 8-bit by rounding (x / 257): 65535 -> 255, 32896 -> 128."""
    return ((values.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
