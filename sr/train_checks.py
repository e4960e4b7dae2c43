"""`main.py train`'s checks: option values, contradictions, outputs, and what
--resume may change, each a one-line UserError before anything is read or written
(sr/cmd_train.py runs them; the run itself is there)."""

import math
import os
from pathlib import Path

from sr import cli
from sr.errors import UserError
from sr.model_files import SUFFIX

DEFAULTS = dict(arch="9-1-5", epochs=20, batch=4, lr=1e-3, seed=0, val_fraction=0.1,
                val_seed=1, patch=48, patches=4000, rescale=1.0, teacher_weight=0.5, runs="runs")


def check_options(args) -> None:
    """UserError for an option value that cannot work, before anything is read or written
    (with --resume the run's own settings are used, but wrong values are still wrong)."""
    rules = [("--epochs", args.epochs, args.epochs >= 1, "at least 1"),
             ("--batch", args.batch, args.batch >= 1, "at least 1"),
             ("--lr", args.lr, math.isfinite(args.lr) and args.lr > 0, "a number > 0"),
             # --seed seeds torch generators with seed * 100_003 + epoch (< 2**64)
             ("--seed", args.seed, 0 <= args.seed < 2 ** 32, "between 0 and 2**32 - 1"),
             ("--val-seed", args.val_seed, args.val_seed >= 0, "at least 0"),
             ("--val-fraction", args.val_fraction, 0 < args.val_fraction < 1,
              "between 0 and 1 (not 0 or 1)"),
             ("--patches", args.patches, args.patches >= 1, "at least 1"),
             ("--rescale", args.rescale, 0 < args.rescale <= 1, "in (0, 1] (1: off)"),
             ("--teacher-weight", args.teacher_weight, 0 < args.teacher_weight <= 1, "in (0, 1]"),
             ("--stop-after", args.stop_after, args.stop_after is None or args.stop_after >= 1,
              "at least 1")]
    for option, value, ok, rule in rules:
        if not ok:
            raise UserError(f"{option} must be {rule}, not {value}")
    check_combinations(args)


def check_combinations(args) -> None:
    """UserError for options that contradict each other, rather than ignoring one."""
    if args.new and args.init:
        raise UserError("-n starts from random weights and --init from a model's: give one")
    if args.input and args.from_images:
        raise UserError("-i reads a samples folder and --from-images crops pictures: give one")
    cropping = [option for option, name in CROP_SETTINGS if given(args, name)]
    if cropping and not args.from_images and not args.resume:
        raise UserError(f"{cropping[0]} sets how --from-images crops; samples folders "
                        f"come cut (gen_samples.py --size)")
    if given(args, "teacher_weight") and not args.teacher and not args.resume:
        raise UserError("--teacher-weight sets how much of --teacher's output the targets "
                        "take: give --teacher too")
    if args.jpeg and not args.from_images and not args.resume:
        raise UserError("--jpeg sets how --from-images degrades its crops; a samples "
                        "folder comes degraded")
    if args.scale == 1 and not args.jpeg and not args.resume and args.from_images:
        raise UserError("--scale 1 keeps the size: an x1 model learns to remove JPEG "
                        "artifacts, so give --jpeg QMIN-QMAX too")
    if args.teacher and not args.from_images and not args.resume:
        raise UserError("--teacher needs --from-images: it upscales whole pictures, "
                        "which a samples folder does not have")


def given(args, name: str) -> bool:
    """Whether the command line set this option: a value other than its default
    (DEFAULTS, else None or False for options without one).  Compared by identity
    with None and False, since 0 == False and 0 can be a value given."""
    value = getattr(args, name)
    return value is not None and value is not False and value != DEFAULTS.get(name)


def check_outputs(args, resume: Path | None) -> None:
    """The run's folder and the finished model's destination can be written."""
    if args.output and Path(args.output).suffix != SUFFIX:
        raise UserError(f"--output {args.output}: a published model is a {SUFFIX} file; "
                        f"give a name ending in {SUFFIX}")
    if args.output and Path(args.output).exists():
        raise UserError(f"{args.output}: already exists, not overwritten; choose another --output")
    cli.check_writable(resume.parent if resume else Path(args.runs), "the run's records")
    cli.check_writable(Path(args.output).parent if args.output else Path(args.models),
                       "the finished model")


def check_patch_size(model, source, kind: str) -> None:
    """Training scores only the valid output, the patch less `radius` px a side, so a
    patch needs 2 * radius + 1 px (13 for 9-1-5, 17 for 9-5-5) to train at all,
    though patches well above it (the defaults 32 and 48) train better."""
    from srcnn import architecture_name
    need = 2 * model.radius + 1
    if source.patch < need:
        how = "gen_samples.py --size" if kind == "samples" else "--patch"
        raise UserError(f"patches of {source.patch} px are too small for the "
                        f"{architecture_name(model)} network: it needs at least {need} px ({how})")


def check_epoch_fits(source, device) -> None:
    """UserError if an epoch of fresh crops, (patches, 1, P, P) float32 for input and
    target, would take over 80% of the memory holding them (the device's on CUDA, else
    the machine's), rather than failing after the run started."""
    import torch
    if not hasattr(source, "count"):   # a samples folder is in memory already
        return
    need = source.count * 2 * source.patch ** 2 * 4
    device = torch.device(device)
    have = (torch.cuda.get_device_properties(device).total_memory if device.type == "cuda"
            else os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    if need > 0.8 * have:
        raise UserError(f"--patches {source.count} of {source.patch} px need "
                        f"{need / 2 ** 30:.1f} GiB an epoch, more than this {device.type} has "
                        f"({have / 2 ** 30:.1f} GiB): use fewer --patches and more epochs")


def find_resume(args) -> Path:
    """The last.pt named by --resume (a file or a run folder), or the newest run's."""
    if args.resume != "latest":
        path = Path(args.resume)
        path = path / "last.pt" if path.is_dir() else path
        if not path.is_file():
            raise UserError(f"{path}: no such file (--resume takes a run folder or its last.pt)")
        return path
    runs = sorted(Path(args.runs).glob("*/last.pt"), key=lambda p: p.stat().st_mtime)
    if not runs:
        raise UserError(f"no run to resume in {args.runs}/")
    return runs[-1]


# Settings a resumed run keeps from its start: (option, args name); the run's config
# records each under the same name, the data's (patch, patches, rescale) in "data".
CROP_SETTINGS = [("--patch", "patch"), ("--patches", "patches"), ("--rescale", "rescale")]
RUN_SETTINGS = [("-e", "epochs"), ("--batch", "batch"), ("--lr", "lr"), ("--seed", "seed"),
                ("--val-fraction", "val_fraction"), ("--val-seed", "val_seed"), *CROP_SETTINGS]
# Options that set up a new run's starting weights or targets: not for --resume.
NEW_RUN_OPTIONS = [("-n", "new"), ("--init", "init"), ("--plain", "plain"),
                   ("--teacher", "teacher"), ("--teacher-weight", "teacher_weight"),
                   ("--jpeg", "jpeg")]


def new_run_options(args, config: dict) -> list[str]:
    """The options given with --resume that would start another run: other starting
    weights, another scale, other data."""
    found = [option for option, name in NEW_RUN_OPTIONS if given(args, name)]
    if args.scale is not None and args.scale != config["scale"]:
        found.append(f"--scale {args.scale} (the run is x{config['scale']})")
    data = config["data"]
    for option, folder, kind in [("-i", args.input, "samples"),
                                 ("--from-images", args.from_images, "images")]:
        if folder and (data["kind"] != kind or
                       Path(folder).resolve() != Path(data["path"]).resolve()):
            found.append(f"{option} {folder} (the run trains on {data['path']})")
    return found


def check_resumable(args, ckpt: dict, model, path: Path) -> None:
    """UserError for a checkpoint that is no run to resume (a finished model, a run that
    has finished), or for options given with --resume that contradict the run's own
    settings (they would be silently ignored)."""
    from srcnn import architecture_name
    if "progress" not in ckpt:
        raise UserError(f"{path}: a finished model, not a resumable run (no progress)")
    config, progress = ckpt["train"], ckpt["progress"]
    if progress["epoch"] > config["epochs"]:
        raise UserError(f"{path}: this run has finished and was published; to train it "
                        f"further start a new run from it: --init {path.parent / 'best.pt'}")
    new_run = new_run_options(args, config)
    if new_run:
        raise UserError(f"--resume continues the run with its own data and weights: "
                        f"{new_run[0]} is for a new run (--init {path.parent / 'last.pt'} "
                        f"starts one from it)")
    for option, name in RUN_SETTINGS:
        recorded = config[name] if name in config else config["data"].get(name)
        value = getattr(args, name)
        if given(args, name) and value != recorded:
            theirs = f"its {recorded}" if recorded is not None else "a samples folder's run"
            raise UserError(f"--resume continues the run with its own settings: {option} "
                            f"{value} differs from {theirs}; to change it, start a "
                            f"new run from it: --init {path.parent / 'last.pt'}")
    if args.arch and args.arch != architecture_name(model):
        raise UserError(f"--resume continues the run's own {architecture_name(model)} "
                        f"network; to grow it, start a new run from it: --init "
                        f"{path.parent / 'last.pt'} --arch {args.arch}")
