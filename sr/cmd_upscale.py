"""`main.py upscale`: bicubic interpolation refined by the network, for files and folders."""
import glob
import itertools
import math
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from sr import cli, model_files
from sr.errors import UserError
from sr.imaging import is_picture_name

HELP = ("Upscale pictures: bicubic interpolation, then the network refines the luma "
        "(BT.601 YCbCr); chroma stays interpolated, alpha is bicubic. Files, folders and "
        "glob patterns; RGB, grey, alpha, 16-bit, palette, CMYK; EXIF rotation and ICC "
        "profile kept. Inputs and existing files are never replaced.")

TIMESTAMP_RE = r"\d{4}-\d{2}-\d{2}--\d{2}-\d{2}-\d{2}"

# Results above this are refused before any work (--max-output-pixels): a slip such
# as --scale 200 would otherwise fill the memory for minutes.  The command holds about
# 10 bytes per output pixel for 8-bit RGB and 33 for 16-bit RGBA (measured: bicubic
# copy, result, the writers' buffers), so 256 Mpix is 2.6 to 8.5 GB: a 24 Mpix photo
# at x3, 8000 x 8000 at x2.  Not the browser page's 64 Mpix and 16384 px a side
# (web/worker.js): those are a tab's memory and canvas limits, and the page sends
# larger jobs here; the formats' own side limits are checked instead (MAX_SIDE).
MAX_OUTPUT_PIXELS = 256_000_000


def add_arguments(p) -> None:
    from sr.inference import PRECISIONS
    from sr.pictures import DEFAULT_MAX_PIXELS
    from sr.picture_files import FORMATS, JPEG_QUALITY, PNG_LEVEL, QUALITY_RANGE
    p.add_argument("-i", "--input", nargs="+", action="extend", required=True, metavar="PATH",
                   help="picture files, folders or glob patterns (quote them: 'scans/*.tif')")
    p.add_argument("-r", "--recursive", action="store_true",
                   help="descend into sub-folders (their structure is kept under -o)")
    p.add_argument("-o", "--output", default="images_upscaled", help="output folder")
    p.add_argument("--suffix", default=None,
                   help="added to the input's stem for the output name (default: "
                        "'.' and the date and time of this run, e.g. .2026-11-27--05-00-00)")
    p.add_argument("--format", choices=FORMATS, default="png",
                   help="output format; JPEG gets PNG for pictures with transparency")
    p.add_argument("--overwrite", action="store_true",
                   help="replace existing output files (inputs are never replaced)")
    p.add_argument("--skip-existing", action="store_true",
                   help="skip inputs whose output is already there (resumes a folder job)")
    p.add_argument("--tile", type=tile_option, default=0,
                   help="output tile side in pixels; 0: automatic (256 on the CPU, from "
                        "free memory on a GPU). The result is the same for every value")
    p.add_argument("--max-pixels", type=pixel_limit_option, default=DEFAULT_MAX_PIXELS,
                   help="refuse inputs with more pixels (decompression-bomb guard; 0: none)")
    p.add_argument("--max-output-pixels", type=pixel_limit_option, default=MAX_OUTPUT_PIXELS,
                   help="refuse pictures whose result would have more pixels, before any work, "
                        "so that a slip of --scale cannot fill the memory (a result takes "
                        "about 10 bytes a pixel for 8-bit RGB, 33 for 16-bit RGBA). 0: none")
    # Pillow's JPEG and WebP range: WebP refuses the rest only once the picture is
    # done, JPEG clips it silently
    quality = cli.number("must be %d (smallest) to %d (best)" % QUALITY_RANGE, *QUALITY_RANGE)
    p.add_argument("--quality", type=quality, default=JPEG_QUALITY,
                   help="JPEG/WebP quality, %d (smallest) to %d (best)" % QUALITY_RANGE)
    p.add_argument("--png-level", type=int, default=PNG_LEVEL, choices=range(10),
                   metavar="0-9", help="PNG zlib level (9: smallest, slowest)")
    p.add_argument("--backend", choices=("auto", "onnxruntime", "torch"), default="auto",
                   help="auto: ONNX Runtime on the CPU (the fastest measured here), "
                        "PyTorch on a GPU")
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="CPU: auto = bfloat16 (OpenVINO) where the CPU has the units (AMX "
                        "or AVX512-BF16), else float32 (ONNX Runtime); the "
                        "startup line says which ran and why")
    p.add_argument("--float32", action="store_true",
                   help="on a GPU, keep float32 (default: float16 convolutions for "
                        "residual models, float32 sum)")
    p.add_argument("--ensemble", action="store_true",
                   help="run the network on the 8 rotations and mirror images of the "
                        "picture and average them: 8x slower, slightly better")
    p.add_argument("--denoise", choices=("auto", "off", "1", "2", "3", "4"), default="auto",
                   help="JPEG artifact level whose model runs: auto = from each JPEG's "
                        "quantisation tables (its estimated quality: >= 97 or not a JPEG "
                        "-> off, 86-96 -> 1, 66-85 -> 2, 21-65 -> 3, <= 20 -> 4: a scale "
                        "without a level-4 model gets level 3's x1 model, then its level-3 "
                        "one); off = the clean models; 1-4 for every picture, e.g. a PNG "
                        "that was once a JPEG")
    cli.add_model_options(p)
    cli.add_device_options(p)


# --max-pixels and --max-output-pixels: a number of pixels, 0 for no limit
pixel_limit_option = cli.number("must be a number of pixels (0: no limit)", 0)
tile_option = cli.number("must be 0 (automatic) or a positive number of pixels", 0)


# --- which files --------------------------------------------------------------------

@dataclass
class Job:
    source: Path
    subfolder: Path          # relative folder under -o (kept from a recursive folder walk)
    target: Path | None = None
    stem: str = ""           # the output name's start: the input's stem, or stem-2...
    numbered: str | None = None   # the suffix that -1, -2... follow if the name is taken


def folder_pictures(folder: Path, recursive: bool, exclude: Path | None) -> list:
    """(file, folder relative to `folder`) for pictures by suffix, sorted; hidden
    files and anything under the output folder are left out."""
    walk = folder.rglob("*") if recursive else folder.iterdir()
    return sorted((path, path.parent.relative_to(folder)) for path in walk
                  if path.is_file() and is_picture_name(path) and not under(path, exclude))


def glob_pictures(pattern: str, recursive: bool, exclude: Path | None) -> list:
    """(file, folder under -o) for the pictures a glob pattern matches, none from
    under the output folder (earlier results are not upscaled again).  Folders are
    kept relative to the pattern's fixed start ('shots' in 'shots/**/*.png'): a
    matched folder always keeps its name, and with -r every picture keeps its tree."""
    base = Path(*itertools.takewhile(lambda part: not glob.has_magic(part), Path(pattern).parts))
    matches = sorted(Path(m) for m in glob.glob(pattern, recursive=recursive))
    files = []
    for m in matches:
        if m.is_dir():
            files += [(f, relative_folder(m, base) / sub)
                      for f, sub in folder_pictures(m, recursive, exclude)]
        elif m.is_file() and is_picture_name(m) and not under(m, exclude):
            files.append((m, relative_folder(m.parent, base) if recursive else Path(".")))
    return files


def under(path: Path, folder: Path | None) -> bool:
    """Whether path lies somewhere below folder (a resolved path; None: nowhere)."""
    return folder is not None and folder in path.resolve().parents


def relative_folder(folder: Path, base: Path) -> Path:
    try:
        return folder.relative_to(base)
    except ValueError:   # e.g. '..' in the pattern: no tree to keep
        return Path(folder.name)


def collect_jobs(items, recursive: bool, out_dir: Path) -> tuple:
    """Jobs for -i items (files, folders, glob patterns) and one-line errors for
    items that match nothing.  A file named explicitly is tried whatever its suffix."""
    jobs, errors = {}, []   # jobs by resolved path: a file named twice is upscaled once
    exclude = out_dir.resolve()

    def add(path: Path, subfolder: Path):
        jobs.setdefault(path.resolve(), Job(path, subfolder))

    for item in items:
        path = Path(item)
        if not item:   # Path("") would be the current folder
            errors.append('-i "": an empty name')
        elif path.is_dir():
            for file, sub in folder_pictures(path, recursive, exclude):
                add(file, sub)
        elif path.exists():
            add(path, Path("."))
        elif glob.has_magic(item):
            files = glob_pictures(item, recursive, exclude)
            if not files:
                errors.append(f"{item}: no pictures match" + (
                    f" outside -o {out_dir} (pictures under -o are never read: they are "
                    f"earlier results)" if glob_pictures(item, recursive, None) else ""))
            for file, sub in files:
                add(file, sub)
        else:
            errors.append(f"{item}: no such file or folder")
    return list(jobs.values()), errors


def plan_targets(jobs, out_dir: Path, suffix: str, extension: str, unique_on_disk: bool) -> None:
    """Give every job its output path: out_dir/<subfolder>/<stem><suffix><ext>.

    Two inputs with one stem in one folder (photo.jpg, photo.png): the later one's
    stem gets its extension (photo-png), the same every run, so --skip-existing
    finds it again.  unique_on_disk (time-stamped names): a name already on disk
    gets -1, -2... after the time stamp instead of being replaced."""
    taken = set()
    for job in jobs:
        stem = job.source.stem
        folder = out_dir / job.subfolder
        if folder / f"{stem}{suffix}{extension}" in taken:
            stem = f"{stem}-{job.source.suffix.lstrip('.').lower() or 'file'}"
        base, n = stem, 1
        while folder / f"{stem}{suffix}{extension}" in taken:
            n += 1
            stem = f"{base}-{n}"
        target = folder / f"{stem}{suffix}{extension}"
        taken.add(target)
        if ".." in target.relative_to(out_dir).parts:
            raise UserError(f"{target}: would be outside -o {out_dir}")
        job.numbered = suffix if unique_on_disk else None
        job.target, job.stem = free_name(target, stem, job.numbered), stem


def free_name(target: Path, stem: str, numbered: str | None) -> Path:
    """target, or if it exists and numbered is not None, the first of
    <stem><numbered>-1<ext>, -2... beside it that does not."""
    k, free = 0, target
    while numbered is not None and free.exists():
        k += 1
        free = target.with_name(f"{stem}{numbered}-{k}{target.suffix}")
    return free


def remove_stale_temporaries(jobs, suffix_pattern: str) -> None:
    """Remove what killed runs left for these outputs (see cli.remove_stale): the
    atomic writer's '.<output name>.XXXXXXXX.tmp' files; suffix_pattern: a regular
    expression of the names' suffix (a time stamp's, or --suffix escaped)."""
    stems = {}
    for job in jobs:
        stems.setdefault(job.target.parent, set()).add(re.escape(job.stem))
    for folder, names in stems.items():
        ours = re.compile(rf"\.({'|'.join(names)}){suffix_pattern}(-\d+)?\.\w+\.\w{{8}}\.tmp")
        cli.remove_stale(p for p in folder.glob(".*.tmp") if ours.fullmatch(p.name))


def earlier_output(target: Path, default_suffix: bool, stem: str) -> Path | None:
    """An output of an earlier run for this target: the same name, or with the default
    (time-stamped) suffix the same stem with any time stamp."""
    if target.exists():
        return target
    if default_suffix and target.parent.is_dir():
        pattern = re.compile(re.escape(stem) + r"\." + TIMESTAMP_RE + r"(-\d+)?"
                             + re.escape(target.suffix))
        for candidate in target.parent.glob(f"{glob.escape(stem)}.*{target.suffix}"):
            if pattern.fullmatch(candidate.name):
                return candidate
    return None


# --- devices and backends -----------------------------------------------------------

def make_runner(args, weights, device: str):
    """The backend's runner, wrapped in SelfEnsemble with --ensemble."""
    from sr.inference import SelfEnsemble, TorchRunner, cpu_runner
    backend = args.backend
    if backend == "auto":
        backend = "onnxruntime" if device == "cpu" else "torch"
    if backend == "onnxruntime":
        if device != "cpu":
            raise UserError(f"--backend onnxruntime runs on the CPU only, not {device}")
        runner = cpu_runner(weights, args.precision)
    elif args.precision == "bfloat16":
        raise UserError(f"--precision bfloat16 is for the CPU path, not --backend torch "
                        f"on {device}")
    else:
        from sr.checkpoint import model_from_weights
        runner = TorchRunner(model_from_weights(weights), device,
                             half=False if args.float32 else None, tune=device != "cpu")
    return SelfEnsemble(runner) if args.ensemble else runner


class ModelPicker:
    """Which models upscale each picture, and their runners (built once per model):
    --model if given, else the route in --models for the scale and the JPEG level
    (--denoise, or auto: the level of the file's estimated JPEG quality, sr/jpeg.py)."""

    def __init__(self, args, device: str, tile: int):
        self.args, self.device, self.tile = args, device, tile
        self.runners = {}   # model path -> runner
        # read once (a damaged file is warned about once): --model's, or --models'
        self.available = ([model_files.model_for_scale(args.model, args.scale)] if args.model
                          else model_files.list_models(args.models, cli.warn))

    def level_of(self, source: Path) -> tuple[int, int | None]:
        """(JPEG level, the file's estimated quality or None where not estimated)."""
        from sr.jpeg import file_quality, level_for_quality
        if self.args.denoise != "auto":
            return (0 if self.args.denoise == "off" else int(self.args.denoise)), None
        quality = file_quality(source)
        return level_for_quality(quality, self.args.scale), quality

    def pick(self, source: Path) -> list:
        """The passes for one picture, [(runner, Weights), ...] in the order they run
        (a route, sr.model_files.models_for_level); UserError if none fits."""
        from tqdm import tqdm
        level, quality = (0, None) if self.args.model else self.level_of(source)
        if self.args.scale == 1 and not level and not self.args.model:
            why = f"JPEG quality ≈ {quality}, so too few" if quality else "not a JPEG, so no"
            raise UserError(f"{source}: {why} JPEG artifacts to remove at --scale 1; "
                            f"nothing was written (--denoise 1-4 to run an x1 model anyway)")
        route = self.available if self.args.model else self.route_for(level)
        said = model_files.describe_route(route, level, self.args.scale)
        if quality:
            tqdm.write(f"{source.name}: JPEG quality ≈ {quality} -> {said}")
        elif len(route) > 1 or route[0].scale != self.args.scale:   # not one plain pass
            tqdm.write(f"{source.name}: {said}")
        return [(self.runner(weights), weights) for weights in route]

    def runner(self, weights):
        """The runner of a model, made (and described) once."""
        from tqdm import tqdm
        if weights.path not in self.runners:
            self.runners[weights.path] = runner = make_runner(self.args, weights, self.device)
            tqdm.write(f"model {weights.path} ({weights.architecture}, trained for "
                       f"x{weights.scale}); {runner.describe()}; tiles of {self.tile} px")
        return self.runners[weights.path]

    def route_for(self, level: int) -> list:
        """The level's route (model_files.models_for_level); under auto, if none, clean."""
        args = self.args
        try:
            return model_files.models_for_level(args.models, args.scale, level, self.available)
        except UserError:
            if not level or args.denoise != "auto" or args.scale == 1:
                raise
            return self.route_for(0)


def pick_tile(args, device: str) -> int:
    from sr.tiling import auto_tile
    if args.tile:
        return args.tile
    if device.startswith("cuda"):
        import torch
        return auto_tile(device, torch.cuda.mem_get_info(torch.device(device))[0])
    return auto_tile(device)


# --- one file -----------------------------------------------------------------------

def upscale_file(picker: ModelPicker, job: Job, args, tile: int, protected: set) -> str:
    """Read, upscale and write one picture by the model picker chooses for it; returns
    the line to print."""
    from tqdm import tqdm
    from sr.picture_files import EXTENSIONS, settle_format, write_picture
    from sr.pictures import read_picture
    from sr.tiling import count_tiles
    from sr.upscaling import output_size, pass_sizes, upscale_picture
    passes = [(runner, weights.scale) for runner, weights in picker.pick(job.source)]
    scales = [model_scale for _, model_scale in passes]   # their product: before a shrink
    picture = read_picture(job.source, args.max_pixels, check_size=lambda size:
                           check_output_size(size, max(args.scale, math.prod(scales)),
                                             args.max_output_pixels))
    fmt, format_notes = settle_format(picture, args.format)
    # the name again: another run may have taken it
    target = free_name(job.target.with_suffix(EXTENSIONS[fmt]), job.stem, job.numbered)
    check_target(target, protected, args.overwrite)
    kind = picture.describe()
    w, h = output_size(picture.size, args.scale)
    check_format_side(job.source, (w, h), fmt)
    sizes = pass_sizes(picture.size, scales, args.scale)
    if not args.tile:   # automatic: enough tiles in the largest pass to keep workers busy
        while tile > 64 and count_tiles(*sizes[-1][::-1], tile) < 2 * passes[-1][0].workers:
            tile //= 2
    tiles = sum(count_tiles(height, width, tile) for width, height in sizes)
    with tqdm(total=tiles, unit="tile", leave=False, desc=job.source.name,
              disable=None if tiles >= 8 else True) as bar:
        result = upscale_picture(passes, picture, args.scale, tile, bar.update)
    del picture
    while True:
        try:
            write_picture(result, target, fmt, args.overwrite, args.quality, args.png_level)
            break
        except UserError:   # a time-stamped name taken since: the next one
            if job.numbered is None or not target.exists():
                raise
            target = free_name(target, job.stem, job.numbered)
    notes = "; ".join(result.notes + format_notes)
    return f"{job.source} -> {target} ({w}x{h} {kind}{'; ' + notes if notes else ''})"


def check_output_size(size, scale: float, max_pixels: int) -> None:
    """Refuse a result above --max-output-pixels; size: the input's (width, height)."""
    from sr.pictures import pixel_amount
    from sr.upscaling import output_size
    w, h = output_size(size, scale)
    if max_pixels and w * h > max_pixels:
        raise UserError(f"x{scale:g} would make it {w}x{h}, {pixel_amount(w * h)}, above "
                        f"the limit of {pixel_amount(max_pixels)} for a result; raise it "
                        f"with --max-output-pixels (0: none) or use a smaller --scale")


def check_format_side(source: Path, size, fmt: str) -> None:
    """Refuse a result too wide or tall for its format now, not once it is computed."""
    from sr.picture_files import MAX_SIDE
    if fmt in MAX_SIDE and max(size) > MAX_SIDE[fmt]:
        raise UserError(f"{source}: {size[0]}x{size[1]} is too large for --format {fmt} "
                        f"(at most {MAX_SIDE[fmt]} px a side): use --format png or tiff, "
                        f"or a smaller --scale")


def check_target(target: Path, protected: set, overwrite: bool) -> None:
    if target.resolve() in protected:
        raise UserError(f"{target}: is one of the inputs; inputs are never replaced "
                        f"(choose another -o or --suffix)")
    if target.exists() and not overwrite:
        raise UserError(f"{target}: already exists (use --overwrite to replace it or "
                        f"--skip-existing to leave it)")


def report_error(message: str) -> None:
    from tqdm import tqdm
    tqdm.write(f"error: {message}", file=sys.stderr)


# --- the command --------------------------------------------------------------------

def run(args) -> int:
    from sr.picture_files import EXTENSIONS
    if args.overwrite and args.skip_existing:
        raise UserError("--overwrite and --skip-existing contradict each other: pick one")
    out_dir = Path(args.output)
    # a file in the way would fail every picture in turn, each with the same message
    cli.check_folder_target("-o", out_dir)
    jobs, errors = collect_jobs(args.input, args.recursive, out_dir)
    for message in errors:
        report_error(message)
    if not jobs:
        if errors:
            return 1                      # each already said on its own line
        raise UserError(nothing_found(args.input, out_dir))
    default_suffix = args.suffix is None
    if not default_suffix and {"/", os.sep} & set(args.suffix):
        raise UserError(f"--suffix {args.suffix}: a part of a file name, so no {os.sep}")
    suffix = f".{model_files.timestamp()}" if default_suffix else args.suffix
    plan_targets(jobs, out_dir, suffix, EXTENSIONS[args.format],
                 unique_on_disk=default_suffix and not (args.overwrite or args.skip_existing))
    remove_stale_temporaries(jobs, r"\." + TIMESTAMP_RE if default_suffix
                             else re.escape(args.suffix))

    device = cli.pick_device(args)
    if args.model and args.denoise != "auto":
        raise UserError("--model and --denoise both choose the model: give one")
    if args.scale == 1 and args.denoise == "off":
        raise UserError("--scale 1 with --denoise off: nothing to do (x1 removes JPEG "
                        "artifacts); nothing was written")
    tile = pick_tile(args, device)
    picker = ModelPicker(args, device, tile)   # a wrong --model: one error, before the work
    if not args.model and args.scale != 1:     # no model at all: one error, too
        picker.route_for(0)
    started = time.perf_counter()

    failed, skipped, done = upscale_all(picker, jobs, args, tile, default_suffix)
    failed += len(errors)
    print(f"{done} upscaled, {skipped} skipped, {failed} failed in "
          f"{time.perf_counter() - started:.1f} s")
    return 1 if failed else 0


def nothing_found(items, out_dir: Path) -> str:
    """Why no picture was found: none there, or every one under -o, which is never read."""
    out = out_dir.resolve()
    inside = [i for i in items if i and Path(i).is_dir() and Path(i).resolve().is_relative_to(out)]
    if inside:
        return (f"nothing to upscale: {' '.join(inside)} is under -o {out_dir}, and pictures "
                f"under -o are never read (they are earlier results); choose another -o")
    return "nothing to upscale: no pictures in " + " ".join(items)


def upscale_all(picker: ModelPicker, jobs, args, tile: int, default_suffix: bool) -> tuple:
    """Every job in turn; a failed picture is reported and the next one goes on.
    Returns (failed, skipped, done)."""
    from tqdm import tqdm
    protected = {job.source.resolve() for job in jobs}
    skipped, done = 0, 0
    with tqdm(jobs, unit="file", disable=None if len(jobs) > 1 else True) as bar:
        for job in bar:
            cli.stop_if_interrupted()
            bar.set_postfix_str(job.source.name, refresh=False)
            if args.skip_existing:
                found = earlier_output(job.target, default_suffix, job.stem) or (
                    args.format == "jpg" and   # a picture with alpha was written as PNG
                    earlier_output(job.target.with_suffix(".png"), default_suffix, job.stem))
                if found:
                    tqdm.write(f"{job.source}: skipped, {found} exists")
                    skipped += 1
                    continue
            try:
                tqdm.write(upscale_file(picker, job, args, tile, protected))
                done += 1
            except UserError as e:
                report_error(str(e))
            except MemoryError:
                report_error(f"{job.source}: out of memory (try a smaller --tile, or a "
                             f"smaller picture)")
            except Exception as e:   # a decoder or runtime failing on one odd file: say
                report_error(f"{job.source}: failed ({type(e).__name__}: "   # it, go on
                             f"{str(e).strip()[:200]})")
    return len(jobs) - skipped - done, skipped, done   # the rest failed
