"""`main.py train`: fit SRCNN on patch pairs from gen_samples.py."""
from __future__ import annotations

from pathlib import Path

from sr import cli
from sr.errors import UserError

DEFAULTS = dict(arch="9-1-5", epochs=20, batch=4, lr=1e-3, seed=0, val_fraction=0.1)

HELP = ("Train SRCNN on pairs from gen_samples.py. Without -n it continues from the "
        "newest model of the same scale in --models.")


def add_arguments(p) -> None:
    p.add_argument("-i", "--input", help="samples folder (default: newest samples_gen_*)")
    p.add_argument("-n", "--new", action="store_true", help="start from random weights")
    p.add_argument("-e", "--epochs", type=int, default=DEFAULTS["epochs"])
    p.add_argument("--arch", choices=["9-1-5", "9-5-5"], default=DEFAULTS["arch"],
                   help="kernel sizes of the three layers (for a new model)")
    p.add_argument("--plain", action="store_true",
                   help="predict the image itself, not a residual over bicubic")
    p.add_argument("--batch", type=int, default=DEFAULTS["batch"], help="patches per step")
    p.add_argument("--lr", type=float, default=DEFAULTS["lr"], help="peak Adam learning rate")
    p.add_argument("--seed", type=int, default=DEFAULTS["seed"])
    p.add_argument("--val-fraction", type=float, default=DEFAULTS["val_fraction"],
                   help="share of source pictures held out for validation")
    p.add_argument("--scale", type=int, default=None,
                   help="scale factor (default: from the samples' manifest)")
    p.add_argument("--models", default=cli.MODELS_DIR, help="folder of checkpoints")
    cli.add_device_options(p)


def find_samples(given) -> Path:
    """-i as given, else the newest samples_gen_* folder here."""
    if given:
        return Path(given)
    found = sorted(Path(".").glob("samples_gen_*"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise UserError("no samples_gen_* folder: run 'python gen_samples.py 400 -64' first")
    return found[-1]


def starting_model(args, scale: int):
    """(model, parent path or None): fresh with -n, else the newest x`scale` model."""
    import srcnn
    from sr.checkpoint import latest_model
    if not args.new:
        try:
            model, _, parent = latest_model(args.models, scale, warn=cli.warn)
            print(f"continuing from {parent} (use -n to start fresh)")
            return model, parent
        except UserError:
            print(f"no x{scale} model in {args.models}/ yet: starting fresh")
    return srcnn.build(args.arch, residual=not args.plain), None


def run(args) -> int:
    import torch
    from srcnn import architecture_name
    from sr.checkpoint import save_checkpoint, timestamp
    from sr.training import fit, load_patch_folder, split_validation
    device = cli.pick_device(args)
    samples = find_samples(args.input)
    patches = load_patch_folder(samples, args.scale)
    torch.manual_seed(args.seed)
    model, parent = starting_model(args, patches.scale)
    model.to(device)
    train_idx, val_idx = split_validation(patches.sources, args.val_fraction, args.seed)
    print(f"training {architecture_name(model)} x{patches.scale} on {device}: "
          f"{len(train_idx)} patches from {samples}, {len(val_idx)} held out for validation")
    history = fit(model, patches, train_idx, val_idx, args.epochs, args.batch, args.lr,
                  args.seed, device)
    path = Path(args.models) / f"srcnn_x{patches.scale}.{timestamp()}.pt"
    settings = {k: getattr(args, k) for k in ("epochs", "batch", "lr", "seed", "val_fraction")}
    save_checkpoint(path, model, patches.scale, dict(
        settings, samples=str(samples), continued_from=str(parent or ""), history=history))
    print(f"saved {path}")
    return 0
