"""`main.py train`: fit SRCNN on patch pairs (sr/training.py), resumably (the run's
folder: sr/trainer.py); when it finishes, the best weights are published as
models/srcnn_x<scale>.<time>.safetensors, which `upscale` uses.  The checks of the
options and of --resume are in sr/train_checks.py; here the run: run() ->
start_trainer() -> prepare(), then sr/trainer.py's loop.
"""

import itertools
import json
import shutil
import sys
from contextlib import suppress
from pathlib import Path

from sr import cli
from sr import train_checks as checks
from sr.errors import UserError
from sr.model_files import ARCHITECTURES, SUFFIX, timestamp

HELP = ("Train SRCNN. Without -n it fine-tunes the newest model of the same scale in "
        "--models (and publishes it unchanged if no epoch beats it on the held-out "
        "pictures); --resume continues an interrupted run exactly.")


def add_arguments(p) -> None:
    d = checks.DEFAULTS
    data = p.add_argument_group("data")
    data.add_argument("-i", "--input", action=cli.Once,
                      help="samples folder (default: newest samples_gen_*)")
    data.add_argument("--from-images", nargs="?", const="images_raw", metavar="DIR",
                      help="crop fresh patches from the pictures in DIR every epoch "
                      "(default DIR: images_raw) instead of reading samples")
    data.add_argument("--patch", type=int, default=d["patch"], help="patch side for --from-images")
    data.add_argument("--patches", type=int, default=d["patches"],
                      help="patches per epoch for --from-images")
    data.add_argument("--rescale", type=float, default=d["rescale"],
                      help="--from-images: resize each picture by a random factor in "
                      "[RESCALE, 1] every epoch (1: off)")
    data.add_argument("--jpeg", type=cli.quality_range, metavar="QMIN-QMAX",
                      help="--from-images: save each picture's shrunk version as JPEG at a "
                      "quality drawn from QMIN..QMAX (e.g. 66-85) before enlarging it, to "
                      "learn to undo JPEG artifacts too; recorded in the published model")
    data.add_argument("--teacher", metavar="FILE",
                      help="--from-images: train toward a mix of each sharp picture and "
                      "this model's x8 self-ensemble output (self-distillation: give the "
                      "starting model to make it learn its own ensemble)")
    data.add_argument("--teacher-weight", type=float, default=d["teacher_weight"],
                      help="share of the teacher's output in the targets, in (0, 1]")
    data.add_argument("--scale", type=cli.integer_scale,
                      help="scale factor, an integer >= 1 (default: the samples' manifest, or 2)")
    data.add_argument("--val-fraction", type=float, default=d["val_fraction"],
                      help="share of source pictures held out for validation, between 0 "
                      "and 1; at least one picture (or, from a samples folder of fewer than "
                      "4 pictures, one patch) is always held out")
    data.add_argument("--val-seed", type=int, default=d["val_seed"],
                      help="which pictures are held out; apart from --seed, so runs of "
                      "any --seed are scored on the same pictures (1 holds out of T91 the "
                      "pictures the shipped models never saw)")
    model = p.add_argument_group("model and optimiser")
    model.add_argument("-n", "--new", action="store_true", help="start from random weights")
    model.add_argument("--init", metavar="FILE",
                       help="start from the weights of this model, of any scale "
                       "(e.g. fine-tune an x2 model into x3)")
    model.add_argument("--arch", choices=ARCHITECTURES,
                       help=f"kernel sizes of the three layers of a new model (default: "
                       f"{d['arch']}); given with a starting model (--init, or the newest "
                       "in --models), its kernels are grown to these with zero taps around "
                       "them, so it starts out computing what it did: 9-5-5 -> 11-5-5")
    model.add_argument("--plain", action="store_true",
                       help="predict the image itself, not a residual over bicubic")
    model.add_argument("-e", "--epochs", type=int, default=d["epochs"],
                       help="passes over the samples (or --patches fresh crops each)")
    model.add_argument("--batch", type=int, default=d["batch"], help="patches per step")
    model.add_argument("--lr", type=float, default=d["lr"],
                       help="peak Adam learning rate (5%% warm-up, then cosine decay)")
    model.add_argument("--seed", type=int, default=d["seed"],
                       help="seed of the starting weights, the crops and the batch order")
    run = p.add_argument_group("runs and outputs")
    run.add_argument("--resume", nargs="?", const="latest", metavar="PATH",
                     help="continue an interrupted run exactly: its folder or last.pt "
                     "(default: the newest run in --runs)")
    run.add_argument("--runs", default=d["runs"], help="folder of run records")
    run.add_argument("--models", default=cli.MODELS_DIR, help="folder of models")
    run.add_argument("--output", help="file for the finished model "
                     "(a .safetensors name; default: <models>/srcnn_x<scale>.<time>.safetensors)")
    run.add_argument("--stop-after", type=int, metavar="STEPS",
                     help="stop as on Ctrl-C once this many steps are done (resumable)")
    cli.add_device_options(p)


def run(args) -> int:
    checks.check_options(args)
    resume = checks.find_resume(args) if args.resume else None
    checks.check_outputs(args, resume)
    from sr import distributed
    dist, device = distributed.init(cli.pick_device(args))
    try:
        trainer, ckpt = start_trainer(args, device, resume, dist)
        fine_tune = not ckpt and trainer.config["continued_from"]
        start_psnr = trainer.score_start() if fine_tune else None
        with cli.naming(trainer.run_dir):   # a full disk's error names the run
            finished = trainer.run(args.stop_after)
        if not finished:
            if dist.main:
                print(f"stopped at epoch {trainer.epoch}, step {trainer.step}; resume with: "
                      f"python main.py train --resume {trainer.run_dir}", file=sys.stderr)
            return 130
        if dist.main:
            kept = start_psnr is not None and trainer.best_psnr == start_psnr
            note = ": no epoch beat the starting weights, saved unchanged" if kept else ""
            print(f"saved {publish(args, trainer, trainer.run_dir)} "
                  f"(best validation PSNR {trainer.best_psnr:.2f} dB{note})")
        # leave together: a rank that tears its gloo connections down while rank 0
        # is still publishing was seen to abort once (SIGABRT at exit)
        distributed.barrier(dist)
        return 0
    finally:
        distributed.shutdown(dist)


def start_trainer(args, device, resume: Path | None, dist):
    """(Trainer ready to run, the resumed checkpoint or None): the model and data
    prepared, a new run's folder and config.json written, the run announced."""
    from srcnn import architecture_name
    from sr.trainer import Trainer
    model, config, source, val, run_dir, ckpt = prepare(args, device, resume)
    if config["batch"] < dist.world:   # a process with no patches would poison the mean
        raise UserError(f"--batch {config['batch']} is smaller than the {dist.world} "
                        f"processes that share each batch")
    trainer = Trainer(model.to(device), config, source, val, device, run_dir, dist,
                      log=print if dist.main else (lambda *_: None))
    if ckpt:
        trainer.load_state(ckpt)
    elif dist.main:
        trainer.run_dir = run_dir = new_run_folder(run_dir, config)
    if dist.main:
        print(f"training {architecture_name(model)} x{config['scale']} on {device}"
              f"{f' x {dist.world} processes' if dist.active else ''}: "
              f"{len(source)} patches/epoch, {val.summary()}, "
              f"{cli.count_of(trainer.total_steps, 'step')}; records in {run_dir}/")
    return trainer, ckpt


def prepare(args, device, resume: Path | None):
    """(model, config, source, val, run folder, resume checkpoint or None); resume:
    the last.pt that --resume names (see find_resume), or None."""
    import torch
    from sr.checkpoint import model_from_weights
    from sr.model_files import read_checkpoint
    if resume:
        ckpt, weights = read_checkpoint(resume)
        model = model_from_weights(weights)
        checks.check_resumable(args, ckpt, model, resume)
        config = ckpt["train"]
        target = destination(args, config, config["scale"])
        if target.exists():   # say it now, not after the training
            raise UserError(f"{target}: already exists, and the run would publish its "
                            f"model there; give another --output")
        source, val = build_data(config, device)
        checks.check_epoch_fits(source, device)
        if ckpt["data_hash"] not in (source.hash, source.names_hash):  # names: older runs
            raise UserError(f"{resume}: the training data changed since this run started")
        checks.check_patch_size(model, source, config["data"]["kind"])
        print(f"resuming {resume} at epoch {ckpt['progress']['epoch']}, "
              f"step {ckpt['progress']['step']}")
        return model, config, source, val, resume.parent, ckpt
    config = new_config(args)
    source, val = build_data(config, device)
    checks.check_epoch_fits(source, device)
    torch.manual_seed(args.seed)
    model, parent = starting_model(args, config)
    checks.check_patch_size(model, source, config["data"]["kind"])
    config["continued_from"] = str(parent or "")
    run_dir = Path(args.runs) / f"x{config['scale']}-{timestamp()}"
    return model, config, source, val, run_dir, None


def new_run_folder(path: Path, config: dict) -> Path:
    """Create a new run's folder with its config.json: path, or path-1, path-2... when
    a run started in the same second took it (mkdir is exclusive).  If config.json
    cannot be written (a full disk), no folder is left behind."""
    from sr.atomic import write_text_atomic
    for n in itertools.count():
        folder = path.with_name(f"{path.name}-{n}" if n else path.name)
        with suppress(FileExistsError):
            folder.mkdir(parents=True)
            break
    try:
        with cli.naming(folder / "config.json"):
            write_text_atomic(folder / "config.json", json.dumps(config, indent=1))
    except BaseException:
        shutil.rmtree(folder)
        raise
    return folder


def find_samples(folder) -> Path:
    """-i as given, else the newest samples_gen_* folder here."""
    if folder:
        return Path(folder)
    found = sorted(Path(".").glob("samples_gen_*"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise UserError("no samples_gen_* folder: run 'python gen_samples.py 400 -64' first, "
                        "or train with --from-images")
    return found[-1]


def new_config(args) -> dict:
    """Plain training settings from the command line (stored in checkpoints)."""
    config = {k: getattr(args, k) for k in ("epochs", "batch", "lr", "seed", "val_fraction",
                                             "val_seed")}
    config["publish_to"] = {"output": args.output, "models": str(args.models)}
    if args.from_images:
        config["data"] = {"kind": "images", "path": str(args.from_images),
                          "patch": args.patch, "patches": args.patches, "rescale": args.rescale}
        if args.teacher:
            config["data"]["teacher"] = {"path": str(args.teacher), "weight": args.teacher_weight}
        if args.jpeg:   # the degradation the published model undoes
            config["degradation"] = {"resize": "bicubic", "jpeg": list(args.jpeg)}
        config["scale"] = args.scale or 2
    else:
        config["data"] = {"kind": "samples", "path": str(find_samples(args.input))}
        config["scale"] = args.scale
    return config


def build_data(config: dict, device="cpu"):
    """(source, held-out data) for a config; fills in config["scale"]."""
    from sr.checkpoint import load_model
    from sr.training import (ImageCrops, PatchFolder, Teacher, held_out_pictures,
                             load_patch_folder, split_folder, split_validation)
    data = config["data"]
    # the seed that picks the held-out pictures: runs recorded before --val-seed
    # existed picked them by --seed, and resuming one keeps its split
    val_seed = config.get("val_seed", config["seed"])
    if data["kind"] == "samples":
        patches = load_patch_folder(data["path"], config.get("scale"))
        config["scale"] = patches.scale
        if patches.jpeg:   # the degradation gen_samples.py --jpeg gave the pairs
            config["degradation"] = {"resize": "bicubic", "jpeg": patches.jpeg}
        train, val = split_validation(patches.sources, config["val_fraction"], val_seed)
        return PatchFolder(patches.subset(train)), patches.subset(val)
    train, held = split_folder(data["path"], config["val_fraction"], val_seed, cli.warn)
    jpeg = (config.get("degradation") or {}).get("jpeg")   # [qmin, qmax] or None
    teacher = None
    if data.get("teacher"):   # {"path", "weight"}
        model, _ = load_model(data["teacher"]["path"], config["scale"])
        teacher = Teacher(model.eval(), data["teacher"]["weight"], device)
    source = ImageCrops(train, data["patches"], data["patch"], config["scale"],
                        config["seed"], data["rescale"], teacher, jpeg)
    held_quality = (jpeg[0] + jpeg[1]) // 2 if jpeg else None   # one fixed quality
    return source, held_out_pictures(held, config["scale"], quality=held_quality)


def starting_model(args, config: dict):
    """(model, parent path or None): --init's model, fresh with -n, else the newest
    x`scale` model in --models.  Only finding none starts fresh: a model that cannot
    start this run (a residual one for --plain, an --arch smaller than its kernels)
    is refused, as with --init."""
    import srcnn
    from sr.checkpoint import latest_model, load_model
    from sr.jpeg import level_of_range
    level = level_of_range((config.get("degradation") or {}).get("jpeg"))
    model = parent = None
    if args.init:
        (model, _), parent = load_model(args.init), Path(args.init)
        print(f"starting from the weights of {args.init}")
    elif not args.new:
        try:
            model, weights = latest_model(args.models, config["scale"], cli.warn, level)
            parent = weights.path
            print(f"fine-tuning {parent} (use -n to start fresh)")
        except UserError:   # none of this scale there
            what = f" for JPEG level {level}" if level else ""
            where = (f"no x{config['scale']} model{what} in {args.models}/ yet" if
                     Path(args.models).is_dir() else f"{args.models}/ does not exist yet")
            print(f"{where}: starting fresh (-n says so without looking)")
    if model is None:
        return srcnn.build(args.arch or checks.DEFAULTS["arch"], residual=not args.plain), None
    if args.plain and model.residual:   # only a new network can be plain
        raise UserError(f"--plain: {parent} predicts a residual over bicubic, and a starting "
                        f"model keeps what it predicts; give -n for a new plain network")
    name = srcnn.architecture_name(model)
    if args.arch in (None, name):
        return model, parent
    try:   # --arch names larger kernels: grow the model to them
        bigger = srcnn.grown(model, srcnn.kernels_of(args.arch))
    except ValueError:
        raise UserError(f"--arch {args.arch}: the {name} network of {parent} cannot grow into "
                        f"it (kernels can only get larger)") from None
    print(f"grown from {name} to {args.arch}")
    return bigger, parent


def destination(args, config: dict, scale: int) -> Path:
    """Where the finished model goes: --output or --models as given now, else where
    the run was told to publish when it started (a resumed run keeps it)."""
    if args.output:
        return Path(args.output)
    start = config.get("publish_to", {})
    if args.models == cli.MODELS_DIR and start.get("output"):
        return Path(start["output"])
    models = start.get("models", cli.MODELS_DIR) if args.models == cli.MODELS_DIR else args.models
    return Path(models) / f"srcnn_x{scale}.{timestamp()}{SUFFIX}"


def publish(args, trainer, run_dir: Path) -> Path:
    """Copy the best weights of the run to the models folder (a small, final model)."""
    from sr.checkpoint import model_from_weights, publish_model
    from sr.model_files import read_checkpoint
    ckpt, weights = read_checkpoint(run_dir / "best.pt")
    path = destination(args, ckpt["train"], weights.scale)
    summary = {k: v for k, v in ckpt["train"].items() if k not in ("publish_to", "history")}
    summary.update(best_val_psnr=ckpt["best_psnr"], run=str(run_dir))
    try:
        with cli.naming(path):   # a full disk's error names no file
            return publish_model(path, model_from_weights(weights), weights.scale,
                                 ckpt["train"].get("degradation"), summary)
    except (UserError, OSError) as e:   # e.g. a file put there during training
        reason = e if isinstance(e, UserError) else cli.os_error_text(e)
        raise UserError(f"{reason}; the trained weights are kept in {run_dir / 'best.pt'} "
                        f"(usable as --model)") from None
