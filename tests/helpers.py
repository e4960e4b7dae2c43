"""Small pictures and command runners for the tests (no files outside tmp dirs)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter

import srcnn
from sr.checkpoint import publish_model
from sr.inference import TorchRunner
from sr.tiling import DEFAULT_TILE
from sr.upscaling import refine_with

ROOT = Path(__file__).resolve().parent.parent


def picture(width: int, height: int, seed: int = 0) -> Image.Image:
    """A textured RGB test picture: shapes, stripes and soft gradients.

    Sharp edges and fine stripes are what bicubic blurs and SRCNN can restore."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.zeros((height, width, 3), np.float32)
    for c in range(3):
        fx, fy = rng.uniform(0.02, 0.35, 2)
        base[..., c] = 127 + 60 * np.sin(fx * xx + fy * yy + rng.uniform(0, 6))
    img = Image.fromarray(base.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(max(4, width * height // 600)):
        x0, y0 = rng.integers(0, width), rng.integers(0, height)
        x1, y1 = x0 + rng.integers(3, 30), y0 + rng.integers(3, 30)
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x0, y0, x1, y1), fill=colour)
    return img.filter(ImageFilter.SMOOTH_MORE) if seed % 2 else img


def perturbed_model(arch: str = "9-1-5", seed: int = 0) -> srcnn.SRCNN:
    """An untrained network that is not the identity: the residual last layer starts
    at zero, so it and the biases are given small random values."""
    torch.manual_seed(seed)
    model = srcnn.build(arch)
    with torch.no_grad():
        model.conv3.weight.normal_(0, 0.02)
        model.conv3.bias.fill_(0.01)
        model.conv1.bias.normal_(0, 0.01)
    return model.eval()


def refine(model, bicubic: np.ndarray, tile: int = DEFAULT_TILE) -> np.ndarray:
    """refine_with() by PyTorch in float32 on the CPU: exactly model.forward_valid."""
    return refine_with(TorchRunner(model, "cpu", half=False), bicubic, tile)


def model_file(folder: Path, scale: int = 2, arch: str = "9-1-5", name=None, seed=0) -> Path:
    """A published (.safetensors) model of perturbed_model's weights."""
    return publish_model(Path(folder) / (name or f"srcnn_x{scale}.test.safetensors"),
                         perturbed_model(arch, seed), scale)


def run_script(*args, cwd=None, timeout=300, **kw) -> subprocess.CompletedProcess:
    """Run main.py / gen_samples.py (args[0]) from the project root, in cwd."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), TQDM_DISABLE="1")
    return subprocess.run([sys.executable, str(ROOT / args[0]), *map(str, args[1:])],
                          cwd=cwd or ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout, **kw)


def assert_clean_error(result, *needles) -> None:
    """A non-zero exit with a one-line 'error: ...' message and no traceback."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
