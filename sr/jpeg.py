"""JPEG inputs: the protocol's JPEG degradation, a file's quality, artifact levels.

- jpeg_roundtrip(): GUIDE §1's JPEG step (Pillow save at quality Q, other settings
  default, i.e. 4:2:0 chroma; decoded back by Pillow). Evaluation, sample generation
  and training all call this one definition.
- estimate_quality(): the quality a JPEG was saved with, read from its quantisation
  tables by fitting libjpeg's quality scaling of the standard (IJG, Annex K) tables,
  as ImageMagick's `identify -format %Q` does with its sum tables. No maintained Python
  package does this (ImageMagick is a C program, absent here, so not measured against):
  tests/test_jpeg.py checks it against the quality Pillow saved with (within 3).
- LEVELS: which quality range each artifact (denoise) level covers and trains on.

NumPy and Pillow only (the upscale command's CPU path does not import PyTorch).
"""
import io

import numpy as np
from PIL import Image

# ITU-T T.81 Annex K tables, natural (row-major) order, as Pillow's img.quantization
# gives them; libjpeg scales these by the quality setting.
STD_LUMA = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99])
STD_CHROMA = np.array([17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99,
                       24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99]
                      + [99] * 32)


def jpeg_roundtrip(img: Image.Image, quality: int) -> Image.Image:
    """img saved as JPEG at quality (Pillow defaults otherwise: 4:2:0, no
    optimisation) and decoded back by Pillow, as RGB: the JPEG-input degradation."""
    f = io.BytesIO()
    img.convert("RGB").save(f, "JPEG", quality=int(quality))
    f.seek(0)
    with Image.open(f) as decoded:
        return decoded.convert("RGB")


def scaled_table(std: np.ndarray, quality: int) -> np.ndarray:
    """libjpeg's jpeg_quality_scaling (quality 1..100), jpeg_add_quant_table (baseline: 1..255)."""
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return np.clip((std * scale + 50) // 100, 1, 255)


# (100, 2, 64): the luma and chroma tables of every quality 1..100
_TABLES = np.stack([[scaled_table(STD_LUMA, q), scaled_table(STD_CHROMA, q)]
                    for q in range(1, 101)]).astype(np.float64)


def estimate_quality(img: Image.Image) -> int | None:
    """The libjpeg quality (1..100) whose standard tables are nearest to img's, or
    None if img is not a JPEG with quantisation tables.

    Nearest: least mean squared difference of the logarithms of the entries, over
    the luma table (slot 0) and, when there is one, the chroma table (slot 1; grey
    JPEGs have none). Files written by libjpeg-based tools (Pillow, GIMP, ImageMagick,
    most cameras' "quality" settings) give their quality exactly; others (Photoshop,
    phones with their own tables) the quality whose compression is nearest."""
    tables = getattr(img, "quantization", None)
    # MPO: a JPEG with more pictures after it (phones' Ultra HDR gain maps, stereo
    # cameras); Pillow opens those as MPO, with the first picture's tables
    if img.format not in ("JPEG", "MPO") or not tables or 0 not in tables:
        return None
    got = np.stack([np.log(np.maximum(np.asarray(tables[slot], np.float64), 1))
                    for slot in (0, 1) if slot in tables])            # (1 or 2, 64)
    if got.shape[1] != 64:
        return None
    error = ((np.log(_TABLES[:, :len(got)]) - got) ** 2).mean(axis=(1, 2))   # (100,)
    # ties (qualities 98..100 clamp to the same ones) go to the highest quality
    return int(100 - np.argmin(error[::-1]))


def file_quality(path) -> int | None:
    """estimate_quality of a picture file, from its header alone (nothing is decoded;
    the upscale command's decoded, EXIF-rotated image no longer has the tables).
    None for other formats and for files Pillow cannot open."""
    try:
        with Image.open(path) as img:
            return estimate_quality(img)
    except (OSError, SyntaxError, ValueError):
        return None


# Artifact levels, as waifu2x's noise levels: (level, lowest estimated quality that
# maps to it, JPEG qualities (low, high) its models train on). Level 0 is the clean
# model. Each training range reaches a few qualities past its band, so an estimate
# that is a little off, or a file with its own tables, still lands inside a model's
# training. Why these bounds (measured): docs/real-pictures.md. Later stages of some
# shipped models weight part of the range (tools/train-jpeg-models.sh, JPEG=).
LEVELS = ((0, 97, None), (1, 86, (84, 98)), (2, 66, (60, 90)), (3, 21, (10, 70)),
          (4, 0, (5, 25)))
# Level 4, the worst JPEGs: without level-4 models for the scale (only x1 has one),
# level 3's x1 model cleans the picture at its size, then level 3's route runs. On T91
# that gains from q30 down at x2, from q22 at x1: so q20 and below (docs/real-pictures.md).
TWO_PASSES = 4


# At --scale 1 a JPEG above this quality is left alone: its artifacts are too faint
# for the x1 models, which lose PSNR there (Set14: q93 -0.32, q95 -1.16 dB over the
# JPEG; docs/real-pictures.md).
X1_HIGHEST_QUALITY = 92


def level_for_quality(quality: int | None, scale: float = 2) -> int:
    """The artifact level for an estimated quality (None: not a JPEG -> 0); at scale 1,
    0 above X1_HIGHEST_QUALITY too (nothing the x1 models should touch)."""
    if quality is None or (scale == 1 and quality > X1_HIGHEST_QUALITY):
        return 0
    return next(level for level, low, _ in LEVELS if quality >= low)


def is_quality_range(jpeg) -> bool:
    """Whether a recorded JPEG range (a model's or a samples folder's) is [low, high],
    whole qualities from 1 to 100, low first."""
    return (isinstance(jpeg, list) and len(jpeg) == 2
            and all(type(q) is int and 1 <= q <= 100 for q in jpeg) and jpeg[0] <= jpeg[1])


def level_of_range(jpeg) -> int:
    """The level a model trained on JPEG qualities jpeg = [low, high] (None: clean)
    serves: that of its range's middle."""
    return level_for_quality((jpeg[0] + jpeg[1]) // 2) if jpeg else 0


def training_qualities(level: int) -> tuple[int, int] | None:
    """(low, high) of the JPEG qualities a level-`level` model trains on (drawn
    uniformly per picture); None for level 0 (no JPEG step)."""
    return LEVELS[level][2]
