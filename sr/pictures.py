"""The one picture reader: every command (upscale, train, eval, gen_samples.py) reads
files here, with the same kinds, limits, orientation and one-line errors.

read_picture gives a Picture (below: colour, alpha, ICC profile, and notes on what
was converted, said on the command line); load_rgb is its 8-bit RGB view.

Pillow reads the header of every file first (size, EXIF orientation, ICC profile,
frames), so the decompression-bomb limit and the caller's size check come before
any pixel is decoded.  Then Pillow decodes 8-bit pictures and the many modes it
knows; libpng (imagecodecs) decodes 16-bit PNG, of which Pillow keeps only the
high byte for RGB and grey+alpha; tifffile decodes 16-bit TIFF and the TIFFs
Pillow cannot open.  Writing is in sr/picture_files.py.
"""

import errno
import io
import stat
import struct
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from sr.errors import UserError

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
FLOAT_REFUSED = "32-bit float pictures are not supported: save as 16-bit PNG or TIFF first"
NOT_A_FILE = {stat.S_IFIFO: "a named pipe", stat.S_IFCHR: "a character device",
              stat.S_IFBLK: "a block device", stat.S_IFSOCK: "a socket"}


@dataclass
class Picture:
    colour: np.ndarray                  # (H, W, 3) RGB or (H, W) grey; uint8 or uint16
    alpha: np.ndarray | None = None     # (H, W), same dtype as colour, or None
    icc: bytes | None = None            # ICC profile of the colour values, carried over
    notes: list = field(default_factory=list)   # what was converted on the way in

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


def load_rgb(path) -> Image.Image:
    """read_picture's 8-bit RGB view: 16-bit rounded to 8 bits, grey expanded,
    transparency dropped (what training and evaluation score)."""
    colour = read_picture(path).colour        # (H, W[, 3]) uint8 or uint16
    if colour.dtype != np.uint8:
        colour = to_8bit(colour)
    return Image.fromarray(colour).convert("RGB")   # grey (L) expanded to R = G = B


def read_picture(path, max_pixels: int | None = DEFAULT_MAX_PIXELS, check_size=None) -> Picture:
    """Decode a file into an upright Picture; UserError (one line) for any bad file.

    check_size: called with the upright (width, height) from the header, before
    anything is decoded (e.g. to refuse a result too large); its UserError gets
    the file's name in front."""
    path = Path(path)
    # Pillow's bomb check off (check_header makes it, with a clearer message), and its
    # warnings about damaged metadata ("Corrupt EXIF data") silent: the file is then read,
    # or refused in one line
    saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        check_regular_file(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return decode_file(path, max_pixels, check_size)
    except UserError as e:
        raise UserError(f"{path}: {e}") from None
    except PermissionError:
        raise UserError(f"{path}: permission denied") from None
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError, IndexError,
            TypeError, KeyError, RuntimeError, struct.error) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"{path}: damaged or unsupported image ({reason[:160]})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def check_regular_file(path: Path) -> None:
    """UserError unless path is a regular file, saying what it is (a pipe or a device
    would block open() forever)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise UserError("no such file or folder") from None
    except OSError as e:          # ELOOP, or EACCES for a folder on the way
        raise UserError("a loop of symbolic links" if e.errno == errno.ELOOP
                        else e.strerror.lower()) from None
    if stat.S_ISDIR(mode):
        raise UserError("is a folder, not an image")
    if not stat.S_ISREG(mode):
        raise UserError(f"is {NOT_A_FILE.get(stat.S_IFMT(mode), 'not a regular file')}, "
                        f"not a picture file")


def check_header(size, tag, max_pixels: int | None, check_size) -> None:
    """Before any pixel is decoded: the pixel count of size (width, height), then
    check_size, if given, on the upright size (tag: the EXIF orientation)."""
    w, h = size
    if max_pixels and w * h > max_pixels:
        raise UserError(f"{w}x{h} is {pixel_amount(w * h)}, above the limit of "
                        f"{pixel_amount(max_pixels)} (a guard against decompression bombs); "
                        f"raise it with --max-pixels")
    if check_size is not None:
        check_size((h, w) if tag in (5, 6, 7, 8) else (w, h))


def pixel_amount(n: int) -> str:
    """A pixel count for messages: exact below 1 Mpix (a limit of 10 is not '0.0 Mpix'),
    then Mpix, and powers of ten for absurd sizes (--scale 1e9)."""
    if n < 1_000_000:
        return f"{n} pixels"
    mpix = n / 1e6
    return f"{mpix:.1f} Mpix" if mpix < 1e5 else f"{mpix:.3g} Mpix"


# --- orientation ----------------------------------------------------------------------

def header_orientation(img: Image.Image):
    """The EXIF orientation tag from the header alone (a PNG whose eXIf chunk follows
    the pixels counts as without one: Pillow would decode the picture to find it)."""
    if img.format == "PNG" and "exif" not in img.info:
        return None
    return img.getexif().get(0x0112)


def valid_orientation(tag, notes: list) -> int:
    """The EXIF orientation tag as 1..8 (1: as stored); other values noted and ignored."""
    if tag in (None, 1):
        return 1
    if isinstance(tag, int) and 2 <= tag <= 8:
        notes.append(f"EXIF orientation {tag} applied")
        return tag
    notes.append(f"EXIF orientation {tag!r} ignored (invalid: not 1 to 8)")
    return 1


def turned(planes: np.ndarray, orientation: int) -> np.ndarray:
    """(H, W[, C]) as stored -> upright, as Pillow's ImageOps.exif_transpose turns it:
    5-8 transpose first; then 2/6 mirror left-right, 3/7 turn 180, 4/8 flip up-down."""
    if orientation >= 5:
        planes = planes.swapaxes(0, 1)
    kind = (orientation - 1) % 4
    if kind in (1, 2):
        planes = planes[:, ::-1]
    if kind in (2, 3):
        planes = planes[::-1]
    return planes


# --- decoding -------------------------------------------------------------------------

def decode_file(path: Path, max_pixels: int | None, check_size) -> Picture:
    """read_picture's work, by the decoder for the file's kind, once its header is
    checked; the caller names the file in errors."""
    try:
        img = Image.open(path)
    except UnidentifiedImageError:      # e.g. 16-bit grey+alpha or float RGB TIFF
        picture = tiff_picture(path, [], max_pixels, check_size)
        if picture is None:
            raise UserError("not a readable image (not a picture, or a format Pillow "
                            "cannot read)") from None
        return picture
    with img:
        check_header(img.size, header_orientation(img), max_pixels, check_size)
        frames = getattr(img, "n_frames", 1)
        notes = [f"first frame of {frames} used"] if frames > 1 else []
        if img.format == "PNG" and png_bit_depth(path) == 16:
            import imagecodecs
            return planes_picture(imagecodecs.png_decode(path.read_bytes()),
                                  img.info.get("icc_profile"), header_orientation(img), notes)
        if img.format == "TIFF" and 16 in np.ravel(img.tag_v2.get(258, 8)):   # BitsPerSample
            picture = tiff_picture(path, notes)
            if picture is not None:
                return picture
        img.load()                      # a PNG's trailing eXIf chunk is read now too
        return picture_from_image(img, img.getexif().get(0x0112), notes)


def png_bit_depth(path: Path) -> int:
    """Bit depth from the IHDR chunk, which a PNG (Pillow checked) begins with."""
    with open(path, "rb") as f:
        return f.read(25)[24]           # 8 signature + 4 length + 4 type + 4 + 4 size


def planes_picture(pixels: np.ndarray, icc, tag, notes: list) -> Picture:
    """Upright Picture of interleaved samples as stored, (H, W) or (H, W, C): C = 1
    grey, 2 grey+alpha, 3 RGB, 4 RGBA; tag: the EXIF orientation."""
    pixels = turned(pixels.reshape(*pixels.shape[:2], -1), valid_orientation(tag, notes))
    channels = pixels.shape[2]
    colour = pixels[..., 0] if channels < 3 else pixels[..., :3]
    alpha = np.ascontiguousarray(pixels[..., -1]) if channels in (2, 4) else None
    return Picture(np.ascontiguousarray(colour), alpha, bytes(icc) if icc else None, notes)


def tiff_picture(path: Path, notes: list, max_pixels: int | None = None,
                 check_size=None) -> Picture | None:
    """The first page of a TIFF read by tifffile: 8 or 16 bits, grey or RGB, with or
    without alpha, upright (16-bit colour, which Pillow reads at 8 bits, and 16-bit
    grey+alpha, which upscale writes and Pillow cannot open).  None if it is another
    kind or not a TIFF; UserError for a float picture."""
    import logging

    import tifffile
    quiet = logging.getLogger("tifffile")   # it logs what it cannot read: we say it once
    was, quiet.disabled = quiet.disabled, True
    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            if page.dtype is not None and page.dtype.kind == "f":
                raise UserError(FLOAT_REFUSED)
            if not plain_tiff_page(page, tifffile.PHOTOMETRIC):
                return None
            tag = page.tags.valueof("Orientation", 1)
            check_header((page.imagewidth, page.imagelength), tag, max_pixels, check_size)
            pixels = page.asarray()                     # (H, W) or (H, W, S), interleaved
            icc = page.tags.valueof("InterColorProfile")
    except UserError:
        raise
    except Exception:   # tifffile's errors for files it cannot read either
        return None
    finally:
        quiet.disabled = was
    return planes_picture(pixels, icc, tag, notes)


def plain_tiff_page(page, photometric) -> bool:
    """Whether a tifffile page is 8- or 16-bit grey or RGB with at most one alpha."""
    extra = len(page.extrasamples)
    colours = {photometric.MINISBLACK: 1, photometric.RGB: 3}.get(page.photometric)
    return (page.dtype in (np.uint8, np.uint16) and extra <= 1 and colours is not None
            and page.samplesperpixel == colours + extra)


def picture_from_image(img: Image.Image, tag, notes: list) -> Picture:
    """Upright Picture of a decoded Pillow image; tag: its EXIF orientation."""
    icc = img.info.get("icc_profile") or None
    if img.mode == "CMYK":
        img, icc = _cmyk_to_rgb(img, icc, notes)
    if img.mode == "P":
        mode = "RGBA" if "transparency" in img.info else "RGB"
        img = img.convert(mode)
        notes.append(f"palette picture converted to {mode}")
    if img.mode in CONVERTED_MODES:
        mode, note = CONVERTED_MODES[img.mode]
        img = img.convert(mode)
        if note:
            notes.append(note)
    if img.mode in ("RGB", "L", "RGBA", "LA"):
        return planes_picture(np.asarray(img), icc, tag, notes)
    if img.mode.startswith("I;16"):
        return planes_picture(np.asarray(img).astype(np.uint16), icc, tag, notes)
    if img.mode == "I":
        values = np.asarray(img)
        clipped = values.min() < 0 or values.max() > 65535
        notes.append("32-bit integer values clipped to 16 bits" if clipped else
                     "32-bit integer picture treated as 16-bit")
        return planes_picture(np.clip(values, 0, 65535).astype(np.uint16), icc, tag, notes)
    if img.mode == "F":   # no agreed range (0..1? 0..65535?) to map to pixel values
        raise UserError(FLOAT_REFUSED)
    raise UserError(f"pictures of mode {img.mode} are not supported")


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


def to_8bit(values: np.ndarray) -> np.ndarray:
    """16-bit -> 8-bit by rounding (x / 257): 65535 -> 255, 32896 -> 128."""
    return ((values.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
