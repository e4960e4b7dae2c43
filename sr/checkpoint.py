"""Model files on the PyTorch side: training runs' checkpoints and published models.

A run's last.pt / best.pt is a plain dict of tensors and plain values, so it loads
with torch.load(..., weights_only=True) and no code from the file is ever run:

    {"format": "srcnn-checkpoint", "version": 1,
     "model": {"kernels": [9, 5, 5], "filters": [64, 32], "residual": True},
     "scale": 2, "created": "2026-11-27T05:00:00", "state_dict": {...},
     "train": {...settings...}, "optimizer": ..., "progress": ..., "rng": ...}

A finished model is published as .safetensors (sr/model_files.py: the format,
and the checks every reader applies).
"""

from datetime import datetime
from pathlib import Path

import torch

from sr.atomic import write_file_atomic
from sr.errors import UserError
from sr.model_files import (CHECKPOINT_FORMAT, CHECKPOINT_VERSION, CLEAN, Weights, list_models,
                            model_for_scale, read_weights, write_model)
from srcnn import SRCNN


def now() -> str:
    return datetime.now().isoformat(timespec="seconds")


def save_checkpoint(path, model: SRCNN, scale: int, train: dict | None = None,
                    overwrite: bool = False, extra: dict | None = None) -> Path:
    """Write a run's resumable checkpoint atomically; extra: more top-level entries
    (optimizer, progress, RNG states...), plain values and tensors only."""
    payload = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "model": model.config,
               "scale": int(scale), "created": now(),
               "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
               "train": dict(train or {}), **(extra or {})}
    return write_file_atomic(path, lambda f: torch.save(payload, f), overwrite)


def publish_model(path, model: SRCNN, scale: int, degradation: dict | None = None,
                  training: dict | None = None, overwrite: bool = False) -> Path:
    """Write model as a .safetensors model file (weights + description)."""
    return write_model(weights_of(model, scale, path, degradation, training), path, overwrite)


def weights_of(model: SRCNN, scale: int = 2, path="", degradation=None, training=None):
    """The Weights (NumPy) of a PyTorch model, as a model file would hold them."""
    state = {k: v.detach().cpu().float().numpy() for k, v in model.state_dict().items()}
    return Weights(Path(path), int(scale), model.kernels, model.filters, model.residual,
                   now(), state, dict(degradation or CLEAN), dict(training or {}))


def model_from_weights(weights: Weights) -> SRCNN:
    """srcnn.SRCNN with these weights, in eval mode."""
    model = SRCNN(weights.kernels, weights.filters, weights.residual)
    model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in weights.state.items()})
    return model.eval()


def load_model(path, scale: int | None = None) -> tuple[SRCNN, Weights]:
    """(model, weights) from a .safetensors model or a run's .pt; UserError if it
    is for another scale."""
    weights = read_weights(path) if scale is None else model_for_scale(path, scale)
    return model_from_weights(weights), weights


def latest_model(models_dir, scale: int, warn=None, level: int = 0) -> tuple[SRCNN, Weights]:
    """(model, weights) of the newest valid x`scale` model for this JPEG level (0:
    clean) in models_dir."""
    for weights in list_models(models_dir, warn):
        if weights.scale == scale and weights.level == level:
            return model_from_weights(weights), weights
    jpeg = f" for JPEG level {level}" if level else ""
    raise UserError(f"no x{scale} model{jpeg} in {models_dir}/: train one with "
                    f"'python main.py train --scale {scale}' or pass --model")
