"""What every command-line script shares: one-line errors, devices, models, files."""
from __future__ import annotations

import sys
from pathlib import Path

from sr.errors import UserError
from sr.imaging import IMAGE_SUFFIXES

MODELS_DIR = "models"


def run(main) -> None:
    """Call main(); turn UserError and Ctrl-C into one line on stderr and an exit status."""
    try:
        status = main()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(status or 0)


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def image_files(folder) -> list[Path]:
    """Picture files (by suffix) directly inside folder, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: no such folder")
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def add_device_options(p) -> None:
    p.add_argument("--cpu", action="store_true", help="use the CPU even if CUDA is available")
    p.add_argument("--device", help="torch device, e.g. cuda:1 (default: cuda if available)")


def add_model_options(p) -> None:
    p.add_argument("--scale", type=int, default=2, help="scale factor")
    p.add_argument("--model", help="checkpoint file (default: newest for the scale in --models)")
    p.add_argument("--models", default=MODELS_DIR, help="folder of checkpoints")


def pick_device(args) -> str:
    """--cpu wins; otherwise --device, or CUDA when PyTorch can use it."""
    import torch
    if args.cpu:
        return "cpu"
    if args.device:
        if args.device.startswith("cuda") and not torch.cuda.is_available():
            raise UserError("--device cuda: this PyTorch has no usable CUDA device")
        return args.device
    return "cuda" if torch.cuda.is_available() else "cpu"


def model_for(args, scale: int):
    """(model, checkpoint, path): --model if given, else the newest for that scale."""
    from sr.checkpoint import latest_model, load_model
    if args.model:
        model, ckpt = load_model(args.model, scale)
        return model, ckpt, Path(args.model)
    return latest_model(args.models, scale, warn=warn)
