"""What every command-line script shares: one-line errors, devices, models, files."""

import argparse
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from sr.errors import UserError
from sr.imaging import is_picture_name

MODELS_DIR = "models"


def run(main) -> None:
    """Call main(); turn UserError, a refused file operation and Ctrl-C (or SIGTERM,
    see sigterm_as_ctrl_c) into one line on stderr and an exit status."""
    try:
        with sigterm_as_ctrl_c():
            status = main()
            stop_if_interrupted()   # not a success, whatever main made of it
    except UserError as e:
        # torchrun's processes (sr/distributed.py) all find the same mistake: the first says it
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or os.environ.get("RANK", "0") == "0":
            print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except OSError as e:   # e.g. a read-only or full disk, a file where a folder should be
        print(f"error: {os_error_text(e)}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        ignore_interrupts()   # a second Ctrl-C would break into the exit's cleanup
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(status or 0)


@contextmanager
def sigterm_as_ctrl_c():
    """Inside, SIGTERM (kill, timeout) ends the work like Ctrl-C, so that the cleanup
    after an interrupt runs for it too, and from the first interrupt on further ones
    are ignored, so that they cannot cut that cleanup (or a thread pool's shutdown)
    short.  Signal handlers live in the main thread: elsewhere nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = [signal.signal(s, _raise_interrupt) for s in STOP_SIGNALS]
    try:
        yield
    finally:
        for s, handler in zip(STOP_SIGNALS, previous):
            if signal.getsignal(s) is _raise_interrupt:   # else: ignored from now on
                signal.signal(s, handler)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def ignore_interrupts() -> None:
    """From now on SIGINT and SIGTERM do nothing: the process is stopping already
    (in the main thread, where signal handlers live)."""
    for s in STOP_SIGNALS if threading.current_thread() is threading.main_thread() else ():
        signal.signal(s, signal.SIG_IGN)


_interrupted = threading.Event()   # set by the first Ctrl-C, which may yet be lost


def _raise_interrupt(signum, frame):
    ignore_interrupts()
    _interrupted.set()
    raise KeyboardInterrupt


def stop_if_interrupted() -> None:
    """KeyboardInterrupt again after a Ctrl-C that was lost (CPython drops what a __del__
    or weakref callback raises, e.g. an import's), as later ones are ignored: loops check."""
    if _interrupted.is_set():
        raise KeyboardInterrupt


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default, unless it has none (None, False) or its help
    already says what it is."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default is None or action.default is False or "default" in text:
            return text
        return super()._get_help_string(action)


def os_error_text(e: OSError) -> str:
    """'path: reason' for an OSError (Python's own text when it names no file)."""
    return str(e) if e.filename is None or not e.strerror else f"{e.filename}: {e.strerror}"


@contextmanager
def naming(path):
    """Inside, an OSError that names no file (a write's on a full disk) names path."""
    try:
        yield
    except OSError as e:
        e.filename = path if e.filename is None else e.filename
        raise


def count_of(n: int, noun: str, plural: str | None = None) -> str:
    """'1 picture', '2 pictures': a count for messages (plural: where an s won't do)."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def nearest_existing(path: Path) -> Path:
    """path, or the nearest folder above it that exists ("." or "/" at last)."""
    return next(p for p in (path, *path.parents) if p.exists())


def check_folder_target(option: str, folder: Path) -> None:
    """Before any work, the folder an option names as output: a folder, or not there
    yet with no file in the way above it."""
    existing = nearest_existing(folder)
    if not existing.is_dir():
        where = "" if existing == folder else f"{existing} "
        raise UserError(f"{option} {folder}: {where}is a file, not a folder")


def check_writable(folder: Path, what: str) -> None:
    """UserError unless files can be created in folder: a command must learn this
    before its work, not when it saves.  Tried with a temporary file in folder, or, if
    folder is not there yet, in the nearest folder above it (where it will be
    created), so a refused command leaves no empty folder behind."""
    existing = nearest_existing(folder)
    try:
        if not existing.is_dir():
            raise NotADirectoryError(0, "a file stands where a folder should be")
        with tempfile.NamedTemporaryFile(prefix=".write-test.", dir=existing):
            pass
    except OSError as e:
        raise UserError(f"{folder}: cannot write {what} there "
                        f"({e.strerror or type(e).__name__})") from None


def check_file_target(option: str, text: str, overwrite: bool, inputs=()) -> Path:
    """Before any work, the file an option names as output: not a name ending in a
    slash, not a folder, not below a file, not one of the inputs (even with
    overwrite), not an existing file unless overwrite, and in a writable folder."""
    path = Path(text)
    if text.endswith(("/", os.sep)):
        raise UserError(f"{option} {text}: names a folder; give a file name")
    if path.is_dir():
        raise UserError(f"{option} {text}: is a folder, not a file")
    above = nearest_existing(path.parent)
    if not above.is_dir():
        raise UserError(f"{option} {text}: cannot write there ({above} is a file)")
    if any(path.resolve() == Path(p).resolve() for p in inputs):
        raise UserError(f"{option} {text}: is one of the inputs; inputs are never replaced")
    if path.exists() and not overwrite:
        raise UserError(f"{option} {text}: already exists; pass --overwrite to replace it")
    check_writable(path.parent, f"{option} {path.name}")
    return path


class Once(argparse.Action):
    """An option that takes one value: given twice it is refused, where argparse
    would keep the last one silently (-i A -i B)."""

    def __call__(self, parser, namespace, values, option_string=None):
        if getattr(namespace, self.dest) is not self.default:
            parser.error(f"{option_string} was given twice; it takes one value")
        setattr(namespace, self.dest, values)


STALE_SECONDS = 3600   # a live temporary changes as it is written


def remove_stale(paths) -> None:
    """Remove the temporary files and folders among paths (left by killed runs) that
    have not changed for STALE_SECONDS; name the newer ones, maybe a live run's."""
    for path in paths:
        try:
            if time.time() - path.lstat().st_mtime < STALE_SECONDS:
                warn(f"{path}: a temporary of a run still going, or killed within the "
                     f"hour; left alone")
                continue
            shutil.rmtree(path) if path.is_dir() else path.unlink()
            print(f"removed {path}, left behind by an interrupted run")
        except FileNotFoundError:   # another run removed it first
            pass


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def image_files(folder) -> list[Path]:
    """Picture files (is_picture_name) directly inside folder, sorted by name."""
    if str(folder) == "":   # Path("") would be the current folder
        raise UserError("an empty folder name; give the folder that holds the pictures")
    folder = Path(folder)
    if folder.is_file():
        raise UserError(f"{folder}: is a file; give the folder that holds the pictures")
    if not folder.is_dir():
        raise UserError(f"{folder}: no such folder")
    return sorted(p for p in folder.iterdir() if p.is_file() and is_picture_name(p))


def add_device_options(p) -> None:
    p.add_argument("--cpu", action="store_true", help="use the CPU even if CUDA is available")
    p.add_argument("--device", help="torch device, e.g. cuda:1 (default: cuda if available)")


def add_model_options(p) -> None:
    """--scale (any factor from 1: the route of sr.model_files.route), --model (one model
    of the scale, or of the next whole one: model_scale_for), --models."""
    p.add_argument("--scale", type=scale_factor, default=2.0,
                   help="scale factor, from 1 up to 64 (e.g. 1.5, 2, 2.5). A scale with a "
                        "model uses it; any other runs the x2 model, again on its result "
                        "while that is smaller, and shrinks the last result to size: 1.5 is "
                        "x2 shrunk, 2.5 and 3.5 are x2 twice, shrunk (JPEG levels have x1 and "
                        "x2 models: their x3 and x4 are x2 twice too)")
    p.add_argument("--model", help="model file (.safetensors, or a training run's .pt), run "
                                    "once: of --scale, or of the next whole scale, its result "
                                    "shrunk (default: see --scale)")
    p.add_argument("--models", default=MODELS_DIR, help="folder of .safetensors models")


def number(rule: str, low, high=None, kind=int):
    """argparse type for a number of kind (int: a whole number, or float) from low to
    high (no upper end if None); anything else is refused with 'rule, not TEXT'."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            noun = "whole number" if kind is int else "number"
            raise argparse.ArgumentTypeError(f"not a {noun}: {text!r}") from None
        if not (low <= value and (high is None or value <= high)):   # NaN fails too
            raise argparse.ArgumentTypeError(f"{rule}, not {text}")
        return value
    return parse


def quality_range(text: str) -> tuple:
    """argparse type for --jpeg of train and gen_samples.py: 'QMIN-QMAX' or 'Q', JPEG
    qualities from 1 to 100."""
    parts = text.split("-")
    try:
        low, high = int(parts[0]), int(parts[-1])
        if len(parts) > 2:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f"not QMIN-QMAX: {text!r}") from None
    if not 1 <= low <= high <= 100:
        raise argparse.ArgumentTypeError(f"qualities from 1 to 100, low first, not {text}")
    return low, high


# The largest scale: x64 makes a 256 Mpix result (upscale's default limit) of a
# 250x250 picture already; far larger ones are slips whose sizes overflow.
MAX_SCALE = 64
# a model's scale (eval, export-onnx, train); x1 models remove JPEG artifacts only
integer_scale = number(f"the scale must be an integer >= 1 (at most {MAX_SCALE})", 1, MAX_SCALE)
# a factor to upscale by (upscale, eval; see add_model_options)
scale_factor = number(f"the scale must be a number >= 1 (at most {MAX_SCALE})", 1,
                      MAX_SCALE, float)


def pick_device(args) -> str:
    """--cpu wins; otherwise --device, or CUDA when PyTorch can use it.  PyTorch (3 s
    and 700 MB to import) is imported only when a GPU may be there (its driver is)."""
    drivers = ("/dev/nvidiactl", "/proc/driver/nvidia/version", "/dev/kfd")   # NVIDIA, ROCm
    if args.cpu or args.device == "cpu" or not (args.device or any(map(os.path.exists, drivers))):
        return "cpu"
    import torch
    if args.device:
        if args.device.startswith("cuda") and not torch.cuda.is_available():
            raise UserError(f"--device {args.device}: this PyTorch has no usable CUDA device")
        return usable_device(args.device)
    return "cuda" if torch.cuda.is_available() else "cpu"


def usable_device(name: str) -> str:
    """name, if PyTorch can use it (a CUDA index must exist; another device must
    take a tensor and give it back); else a UserError: a misspelt name, a device
    this PyTorch was not built for, 'meta', cuda:7 on a machine with one GPU."""
    import torch
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"--device {name}: not a device name PyTorch knows "
                        f"(e.g. cpu, cuda, cuda:1)") from None
    if device.type == "cuda":   # no tensor: under torchrun it would put a context on
        count = torch.cuda.device_count()   # GPU 0 for every process
        if device.index is not None and device.index >= count:
            raise UserError(f"--device {name}: this machine has {count_of(count, 'GPU')} "
                            f"(cuda:0 to cuda:{count - 1})")
        return name
    try:
        torch.zeros(1, device=device).cpu()
    except Exception as e:   # RuntimeError, NotImplementedError, AssertionError ...
        reason = str(e).strip().split(". ")[0][:100] or type(e).__name__
        raise UserError(f"--device {name}: this PyTorch cannot use it ({reason})") from None
    return name
