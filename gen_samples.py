"""Crop training patch pairs from the pictures in images_raw/.

    python gen_samples.py 400 -64      # 400 pairs of 64 px into samples_gen_64/
    python gen_samples.py 1000         # 1000 pairs of 32 px into samples_gen_32/

Each pair is NNNNN.large.png (the sharp patch) and NNNNN.small.png (the same patch
after bicubic downscaling by --scale, with --jpeg a JPEG round trip at a quality drawn
per picture, and bicubic upscaling back), plus manifest.json with the settings.  The
same seed gives the same files.
"""

import argparse
import json
import os
import re
import secrets
import shutil
import stat
import sys
import tempfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

from sr import cli
from sr.errors import UserError
from sr.imaging import cropped_size, modcrop
from sr.patches import crop_pairs, fits_patch, patches_per_image
from sr.pictures import load_rgb

# At most this many pairs: 1,000,000 is 2,000,000 files in one folder (3 GB of 32 px
# pairs, 11 GB of 64 px, measured on test pictures), and the manifest lists every
# pair's source, in memory until written.  (Far above it, numpy's multinomial cannot
# even take the count: it must fit a C long.)
MAX_COUNT = 1_000_000

# the rule of `main.py train --seed`, so that any seed given here works there too
seed_number = cli.number("must be between 0 and 2**32 - 1", 0, 2 ** 32 - 1)


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="Crop sharp/degraded training patch pairs from pictures.",
        formatter_class=cli.HelpFormatter)
    p.add_argument("count", type=cli.number(f"must be from 1 to {MAX_COUNT}", 1, MAX_COUNT),
                   help=f"number of patch pairs to write (at most {MAX_COUNT})")
    p.add_argument("-64", dest="large", action="store_true",
                   help="64 px patches instead of 32 px (same as --size 64)")
    p.add_argument("--size", type=int, help="patch side in pixels (default 32, or 64 with -64)")
    p.add_argument("--scale", type=cli.number("must be at least 1", 1), default=2,
                   help="degradation scale factor (1: JPEG artifacts only, with --jpeg)")
    p.add_argument("--jpeg", type=cli.quality_range, metavar="QMIN-QMAX",
                   help="save each picture's shrunk version as JPEG at a quality drawn from "
                   "QMIN..QMAX (one per picture, recorded in manifest.json) before enlarging "
                   "it, as `main.py train --from-images --jpeg` does")
    p.add_argument("--seed", type=seed_number, default=0, help="random seed")
    p.add_argument("--input", "-i", default="images_raw", action=cli.Once,
                   help="folder of pictures")
    p.add_argument("--output", "-o", help="output folder (default samples_gen_<size>)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an output folder of samples that gen_samples.py wrote "
                   "(a folder holding anything else is never replaced)")
    for arg in sys.argv[1:] if argv is None else argv:   # -64 makes argparse take
        if re.fullmatch(r"-\d+", arg) and arg != "-64":    # -5 for an option
            p.error(f"{arg}: no number here is negative (the count is at least 1, "
                    f"--seed at least 0)")
    args = p.parse_args(argv)
    if args.large and args.size not in (None, 64):
        p.error(f"-64 and --size {args.size} contradict each other: give one")
    if args.size is None:
        args.size = 64 if args.large else 32
    args.output = Path(args.output or f"samples_gen_{args.size}")
    if args.scale == 1 and not args.jpeg:
        p.error("--scale 1 keeps the size: its pairs differ only by JPEG artifacts, "
                "so give --jpeg QMIN-QMAX too")
    if args.size < 2 * args.scale:
        p.error("--size must be at least twice the scale")
    return args


def read_sizes(paths):
    """(path, (width, height)) for every readable picture; others reported and skipped."""
    sizes = []
    for path in paths:
        try:
            sizes.append((path, load_rgb(path).size))   # a refused kind is skipped here
        except UserError as e:
            cli.warn(f"skipping {e}")
    return sizes


def write_samples(args, sources, counts, folder: Path, rng) -> tuple[dict, dict]:
    """Crop and save the pairs into folder, each saved as soon as it is cut (memory
    does not grow with the count); returns ({pair id: source file name}, {source
    file name: its JPEG quality} (empty without --jpeg))."""
    origin, qualities = {}, {}
    with tqdm(total=args.count, unit="pair", desc="cropping") as bar:
        for (path, _), n in zip(sources, counts):
            if n == 0:
                continue
            img = modcrop(load_rgb(path), args.scale)
            if args.jpeg:   # one quality per picture, drawn before its crops
                qualities[path.name] = int(rng.integers(args.jpeg[0], args.jpeg[1] + 1))
            for hr, lr in crop_pairs(img, n, args.size, args.scale, rng, qualities.get(path.name)):
                name = f"{len(origin):05d}"
                hr.save(folder / f"{name}.large.png")
                lr.save(folder / f"{name}.small.png")
                origin[name] = path.name
                bar.update(1)
    return origin, qualities


SAMPLE_FILE = re.compile(r"\d{5,}\.(large|small)\.png|manifest\.json")


def check_output(output: Path, input_folder: Path, overwrite: bool) -> None:
    """UserError unless output is free, or with --overwrite a folder that holds only
    the files of an earlier gen_samples.py run (so the user's pictures, or any
    other folder, can never be deleted by a mistyped -o)."""
    if not output.exists() or is_empty_folder(output):
        return
    if not overwrite:
        raise UserError(f"{output}: already exists; use --overwrite to replace it "
                        f"or --output for another folder")
    if output.resolve() == input_folder.resolve():
        raise UserError(f"{output}: is the input folder; choose another --output")
    others = sorted(p.name for p in output.iterdir() if not SAMPLE_FILE.fullmatch(p.name))
    if others or not (output / "manifest.json").is_file():
        example = f" ({others[0]})" if others else ""
        raise UserError(f"{output}: holds files gen_samples.py did not write{example}; "
                        f"not replaced")


def is_empty_folder(path: Path) -> bool:
    return path.is_dir() and not any(path.iterdir())


def publish(tmp: Path, output: Path, overwrite: bool) -> None:
    """Move the finished folder into place; an old one is replaced only with --overwrite
    (an empty folder is simply filled).  A folder that was there keeps its mode."""
    if output.is_dir():
        os.chmod(tmp, stat.S_IMODE(output.stat().st_mode))
    if is_empty_folder(output):
        output.rmdir()
    if output.exists():
        if not overwrite:
            raise UserError(f"{output}: already exists; use --overwrite to replace it "
                            f"or --output for another folder")
        trash = Path(tempfile.mkdtemp(prefix=f".{output.name}.old.", dir=output.parent))
        os.replace(output, trash / output.name)
        os.replace(tmp, output)
        shutil.rmtree(trash)
    else:
        os.replace(tmp, output)


def main(argv=None) -> int:
    args = parse_args(argv)
    paths = cli.image_files(args.input)
    if not paths:
        raise UserError(f"{args.input}: no pictures found (put JPEG/PNG/... files there)")
    cli.check_folder_target("-o", args.output)
    check_output(args.output, Path(args.input), args.overwrite)
    # hidden folders of killed runs: write_folder's and publish's names
    ours = re.compile(re.escape(f".{args.output.name}.") + r"(tmp|old)\.\w{8}")
    cli.remove_stale(p for p in args.output.parent.glob(".*") if ours.fullmatch(p.name))
    sizes = read_sizes(paths)
    for path, size in sizes:
        if not fits_patch(size, args.size, args.scale):
            w, h = cropped_size(size, args.scale)
            cut = "" if (w, h) == size else f" once cut to multiples of {args.scale} ({w}x{h})"
            print(f"note: {path.name} ({size[0]}x{size[1]}) is smaller than a {args.size} px "
                  f"patch{cut}, skipped")
    rng = np.random.default_rng(args.seed)
    counts = patches_per_image([s for _, s in sizes], args.count, args.size, args.scale, rng)
    if sum(counts) == 0:
        raise UserError(f"{args.input}: no picture is at least {args.size}x{args.size} px "
                        f"once cut to multiples of the scale {args.scale}")
    written = write_folder(args, sizes, counts, rng)   # cli.run: SIGTERM cleans up too
    jpeg = ", JPEG q%d-%d" % args.jpeg if args.jpeg else ""
    print(f"wrote {written} pairs of {args.size} px (x{args.scale}{jpeg}) to {args.output}/")
    return 0


def write_folder(args, sizes, counts, rng) -> int:
    """Fill a hidden folder beside args.output with the pairs and manifest.json, then
    give it that name; an interrupted or failed run leaves nothing behind.  Returns
    the number of pairs."""
    output = args.output
    # named before it exists, so that a Ctrl-C once it does finds it below (sr/atomic.py)
    tmp = output.parent / f".{output.name}.tmp.{secrets.token_hex(4)}"
    try:
        try:
            output.parent.mkdir(parents=True, exist_ok=True)
            tmp.mkdir()   # 0777 less the umask, as mkdir makes it
        except OSError as e:
            tmp = None    # none of ours to remove
            raise UserError(f"{output}: cannot write there ({e.strerror})") from None
        with cli.naming(output):   # a full disk's error names no file
            origin, qualities = write_samples(args, sizes, counts, tmp, rng)
            jpeg = list(args.jpeg) if args.jpeg else None
            manifest = {"scale": args.scale, "size": args.size, "seed": args.seed,
                        "count": len(origin), "sources": origin,
                        "degradation": {"resize": "bicubic", "jpeg": jpeg}}
            if jpeg:
                manifest["qualities"] = qualities
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
            publish(tmp, output, args.overwrite)
    finally:
        if tmp is not None and tmp.exists():
            shutil.rmtree(tmp)
    return len(origin)


if __name__ == "__main__":
    cli.run(main)
