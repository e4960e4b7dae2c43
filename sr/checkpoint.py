"""Saving, loading and finding model checkpoints.

A checkpoint is a plain dict of tensors and plain values, so it loads with
torch.load(..., weights_only=True) and no code from the file is ever run:

    {"format": "srcnn-checkpoint", "version": 1,
     "model": {"kernels": [9, 5, 5], "filters": [64, 32], "residual": True},
     "scale": 2, "created": "2026-11-27T05:00:00", "state_dict": {...},
     "train": {...settings and results...}}
"""
from __future__ import annotations

import warnings
from datetime import datetime
from pathlib import Path

import torch

from sr.errors import UserError
from sr.imaging import write_file_atomic
from sr.weights import checked_model_file, checked_models_dir, weights_from_dict
from srcnn import SRCNN

FORMAT = "srcnn-checkpoint"
VERSION = 1
TIMESTAMP = "%Y-%m-%d--%H-%M-%S"


def timestamp() -> str:
    """Local time as used in file names: 2026-11-27--05-00-00."""
    return datetime.now().strftime(TIMESTAMP)


def save_checkpoint(path, model: SRCNN, scale: int, train: dict | None = None,
                    overwrite: bool = False, extra: dict | None = None) -> Path:
    """Write a self-describing checkpoint atomically (temporary file, then rename).

    extra: more top-level entries (a resumable training state: optimizer,
    progress, RNG states...), plain values and tensors only."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "version": VERSION, "model": model.config,
               "scale": int(scale), "created": datetime.now().isoformat(timespec="seconds"),
               "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
               "train": dict(train or {}), **(extra or {})}
    write_file_atomic(path, lambda f: torch.save(payload, f), overwrite)
    return path


def read_checkpoint(path) -> dict:
    """Load and validate a checkpoint dict; never unpickles arbitrary objects."""
    path = checked_model_file(path)
    try:
        with warnings.catch_warnings():   # torch warns before refusing foreign pickles
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickles of modules, damaged archives
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if "Weights only load failed" in reason:   # torch's long, coloured explanation
            reason = "it holds Python objects, not only tensors; not loaded, for safety"
        raise UserError(f"{path}: not an SRCNN checkpoint ({reason[:160]})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise UserError(f"{path}: not an SRCNN checkpoint (missing format tag)")
    if ckpt.get("version") != VERSION:
        raise UserError(f"{path}: checkpoint version {ckpt.get('version')} is not supported")
    check_weights(ckpt, path)
    return ckpt


def check_weights(ckpt: dict, path) -> None:
    """The same checks of architecture, scale and weights (shapes, finite values) as
    upscale's torch-free reader (sr.weights.weights_from_dict): UserError if any fails."""
    state = ckpt.get("state_dict")
    if isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values()):
        state = {k: v.detach().cpu().numpy() for k, v in state.items()}
    weights_from_dict({**ckpt, "state_dict": state}, path)


def model_from_checkpoint(ckpt: dict, path="checkpoint") -> SRCNN:
    """Build the network described by a checkpoint and load its weights."""
    try:
        model = SRCNN(**ckpt["model"])
        model.load_state_dict(ckpt["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise UserError(f"{path}: checkpoint does not match its architecture ({e})") from None
    return model.eval()


def load_model(path, scale: int | None = None):
    """(model, checkpoint dict) from a file; UserError if it is for another scale."""
    ckpt = read_checkpoint(path)
    if scale is not None and ckpt["scale"] != scale:
        raise UserError(f"{path}: model is for x{ckpt['scale']}, not x{scale}")
    return model_from_checkpoint(ckpt, path), ckpt


def list_models(models_dir, scale: int | None = None, warn=None):
    """Valid checkpoints in models_dir, newest first, as (path, checkpoint dict).

    Files that are not valid checkpoints are skipped (reported through warn).
    """
    found = []
    for path in sorted(checked_models_dir(models_dir).glob("*.pt")):
        try:
            ckpt = read_checkpoint(path)
        except UserError as e:
            if warn:
                warn(f"skipping {e}")
            continue
        if scale is None or ckpt["scale"] == scale:
            found.append((ckpt.get("created", ""), path.name, path, ckpt))
    found.sort(reverse=True)
    return [(path, ckpt) for _, _, path, ckpt in found]


def latest_model(models_dir, scale: int, warn=None):
    """(model, checkpoint, path) of the newest valid x`scale` model in models_dir."""
    candidates = list_models(models_dir, scale, warn)
    if not candidates:
        raise UserError(f"no x{scale} model in {models_dir}/: train one with "
                        f"'python main.py train --scale {scale}' or pass --model")
    path, ckpt = candidates[0]
    return model_from_checkpoint(ckpt, path), ckpt, path
