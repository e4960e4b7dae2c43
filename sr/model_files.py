"""Model files: what a trained SRCNN is on disk, read without PyTorch.

A published model is a .safetensors file (the format the upscaling tools share
weights in: a JSON header and raw little-endian tensors, no pickle, no code):

    tensors   conv1.weight (f1, 1, k1, k1)  conv1.bias (f1,)
              conv2.weight (f2, f1, k2, k2) conv2.bias (f2,)
              conv3.weight (1, f2, k3, k3)  conv3.bias (1,)       float32
    metadata  format "srcnn-upscaler", format_version "1", scale "2",
              kernels "9-5-5", filters "64-32", residual "true",
              degradation '{"resize": "bicubic", "jpeg": null}' (what it undoes),
              created "2026-11-27T05:00:00", training '{...}' (a short summary)

A training run's last.pt / best.pt (sr/checkpoint.py, resumable) are read here
too, through torch.load(weights_only=True), for --model and --init.  Every
reader goes through weights_from_parts, the one place that checks what a file
claims.
"""
import itertools
import json
import math
import stat
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from sr.errors import UserError

FORMAT = "srcnn-upscaler"
VERSION = "1"
SUFFIX = ".safetensors"
CHECKPOINT_FORMAT = "srcnn-checkpoint"   # a training run's .pt (sr/checkpoint.py)
CHECKPOINT_VERSION = 1
ARCHITECTURES = ("9-1-5", "9-5-5", "11-5-5")   # the networks `train --arch` offers
MAX_SCALE = 1000
# Trained weights stay small (the shipped models' largest is 3.3); a file with
# weights far beyond any training's (1e30) would turn every picture white.
MAX_WEIGHT = 1000.0
CLEAN = {"resize": "bicubic", "jpeg": None}   # the benchmark's degradation


def timestamp() -> str:
    """Local time as used in file names: 2026-11-27--05-00-00."""
    return datetime.now().strftime("%Y-%m-%d--%H-%M-%S")


@dataclass
class Weights:
    """A model as plain values: architecture, scale, NumPy weights, description."""
    path: Path
    scale: int
    kernels: tuple
    filters: tuple
    residual: bool
    created: str
    state: dict = field(repr=False)   # "conv1.weight" -> float32 array, as in the state_dict
    degradation: dict = field(default_factory=lambda: dict(CLEAN))
    training: dict = field(default_factory=dict, repr=False)

    @property
    def radius(self) -> int:
        return sum((k - 1) // 2 for k in self.kernels)

    @property
    def level(self) -> int:
        """The JPEG artifact level it was trained for (sr.jpeg.LEVELS; 0: clean):
        that of the middle of its training's JPEG quality range."""
        from sr.jpeg import level_of_range
        return level_of_range(self.degradation.get("jpeg"))

    @property
    def architecture(self) -> str:
        return "-".join(map(str, self.kernels))

    def metadata(self) -> dict:
        """The safetensors metadata (strings only) that describes these weights."""
        return {"format": FORMAT, "format_version": VERSION, "scale": str(self.scale),
                "kernels": self.architecture, "filters": "-".join(map(str, self.filters)),
                "residual": str(self.residual).lower(), "created": self.created,
                "degradation": json.dumps(self.degradation),
                "training": json.dumps(self.training)}


def expected_shapes(kernels, filters) -> dict:
    """{tensor name: shape} of an SRCNN with these kernel sizes and filter counts."""
    channels = (1, *filters, 1)
    shapes = {}
    for i, k in enumerate(kernels):
        shapes[f"conv{i + 1}.weight"] = (channels[i + 1], channels[i], k, k)
        shapes[f"conv{i + 1}.bias"] = (channels[i + 1],)
    return shapes


def weights_from_parts(path, description: dict, state: dict) -> Weights:
    """Weights from what a file claims (description: the metadata's fields, strings
    or plain values) and its tensors; UserError naming the file for anything that
    does not hold together: the one check every reader uses."""
    try:
        kernels = _numbers(description.get("kernels"), "kernel sizes", 3)
        filters = _numbers(description.get("filters"), "filter counts", 2)
        if any(k % 2 == 0 for k in kernels):
            raise ValueError(f"kernel sizes {kernels} are not all odd")
        residual = {"true": True, "false": False}.get(str(description.get("residual")).lower())
        if residual is None:
            raise ValueError(f"residual is {description.get('residual')!r:.40}, not true/false")
        scale = int(str(description.get("scale")))
        if not 1 <= scale <= MAX_SCALE:
            raise ValueError(f"scale {scale} is not from 1 to {MAX_SCALE}")
        state = _checked_state(state, expected_shapes(kernels, filters))
        degradation = _json(description.get("degradation"), dict(CLEAN))
        jpeg = degradation.get("jpeg")
        from sr.jpeg import is_quality_range
        if jpeg is not None and not is_quality_range(jpeg):
            raise ValueError(f"its JPEG qualities {str(jpeg)[:40]} are not [low, high] "
                             f"from 1 to 100")
        training = _json(description.get("training"), {})
    except (TypeError, ValueError) as e:
        raise UserError(f"{path}: not a usable SRCNN model ({str(e)[:160]})") from None
    return Weights(Path(path), scale, kernels, filters, residual,
                   str(description.get("created", "")), state, degradation, training)


def _numbers(value, what: str, count: int) -> tuple:
    """'9-5-5' or [9, 5, 5] -> (9, 5, 5): count positive whole numbers."""
    parts = value.split("-") if isinstance(value, str) else value
    if not isinstance(parts, (list, tuple)) or len(parts) != count:
        raise ValueError(f"{what} {value!r:.40} are not {count} numbers")
    numbers = tuple(int(p) if isinstance(p, (int, str)) and not isinstance(p, bool) else -1
                    for p in parts)
    if any(not 1 <= n < 2 ** 15 for n in numbers):
        raise ValueError(f"{what} {value!r:.40} are not positive whole numbers")
    return numbers


def _checked_state(state: dict, shapes: dict) -> dict:
    """The tensors as float32, if they are exactly the architecture's, of a float
    type, finite and within MAX_WEIGHT."""
    missing = [name for name in shapes if name not in state]
    extra = [name for name in state if name not in shapes]
    if missing or extra:
        raise ValueError(f"no tensor {missing[0]}" if missing else
                         f"unexpected tensor {str(extra[0])[:40]}")
    checked = {}
    for name, shape in shapes.items():
        value = state[name]
        if not (isinstance(value, np.ndarray) and value.dtype.kind == "f"):
            raise ValueError(f"{name} is not a floating-point tensor")
        if value.shape != shape:
            raise ValueError(f"{name} has shape {value.shape}, expected {shape}")
        value = value.astype(np.float32)
        if not np.isfinite(value).all():
            raise ValueError(f"{name} holds NaN or infinite values")
        if np.abs(value).max(initial=0) > MAX_WEIGHT:
            raise ValueError(f"{name} holds values up to {np.abs(value).max():.3g}, far "
                             f"beyond what training produces (at most {MAX_WEIGHT:g})")
        checked[name] = value
    return checked


def _json(text, default):
    """A JSON object from a metadata string (or a dict already); default if absent."""
    if text is None:
        return default
    value = json.loads(text) if isinstance(text, str) else text
    if not isinstance(value, dict):
        raise ValueError(f"{str(text)[:40]!r} is not a JSON object")
    return value


# --- reading -------------------------------------------------------------------------

def checked_model_file(path) -> Path:
    """path, if it is a regular file; else a UserError saying what it is instead
    (opening a FIFO would wait forever for a writer)."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise UserError(f"{path}: no such model file") from None
    except OSError as e:   # a symlink loop, permission denied on a folder above
        raise UserError(f"{path}: cannot read it ({e.strerror})") from None
    if stat.S_ISDIR(mode):
        raise UserError(f"{path}: is a folder, not a model file")
    if not stat.S_ISREG(mode):
        raise UserError(f"{path}: not a regular file (a pipe or device?), not a model file")
    return path


def read_weights(path) -> Weights:
    """A .safetensors model or a training run's .pt (read_checkpoint); UserError else."""
    path = checked_model_file(path)
    try:
        with open(path, "rb") as f:
            start = f.read(4)
    except OSError as e:
        raise UserError(f"{path}: cannot read it ({e.strerror})") from None
    if start == b"PK\x03\x04":   # a zip archive: torch.save's format
        return read_checkpoint(path)[1]
    return read_safetensors(path)


def read_checkpoint(path) -> tuple[dict, Weights]:
    """(checkpoint dict, its Weights) of a training run's .pt (sr/checkpoint.py writes
    them), by torch.load(weights_only=True): no pickled code runs.  Imports PyTorch."""
    import warnings

    import torch
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
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"{path}: not an SRCNN checkpoint (missing format tag)")
    if ckpt.get("version") != CHECKPOINT_VERSION:
        raise UserError(f"{path}: checkpoint version {ckpt.get('version')!r:.20} "
                        f"is not supported")
    model, state = ckpt.get("model"), ckpt.get("state_dict")
    if not isinstance(model, dict) or not isinstance(state, dict):
        raise UserError(f"{path}: not an SRCNN checkpoint (no model or state_dict)")
    state = {k: v.detach().float().numpy() if isinstance(v, torch.Tensor) else v
             for k, v in state.items()}
    train = ckpt.get("train") if isinstance(ckpt.get("train"), dict) else {}
    description = {**model, "scale": ckpt.get("scale"), "created": ckpt.get("created", ""),
                   "degradation": train.get("degradation"), "training": {}}
    return ckpt, weights_from_parts(path, description, state)


def read_safetensors(path) -> Weights:
    from safetensors import SafetensorError, safe_open
    try:
        with safe_open(path, framework="numpy") as f:
            meta = f.metadata() or {}
            names = list(f.keys())
            if len(names) > 16:
                raise ValueError(f"{len(names)} tensors")
            state = {name: f.get_tensor(name) for name in names}
    except (SafetensorError, OSError, ValueError, TypeError) as e:
        raise UserError(f"{path}: not an SRCNN model (not a readable .safetensors file: "
                        f"{str(e)[:120] or type(e).__name__})") from None
    if meta.get("format") != FORMAT:
        raise UserError(f"{path}: not an SRCNN model (no '{FORMAT}' format in its metadata)")
    if meta.get("format_version") != VERSION:
        raise UserError(f"{path}: model format version {meta.get('format_version')!r:.20} "
                        f"is not supported (this program reads {VERSION})")
    return weights_from_parts(path, meta, state)


def list_models(models_dir, warn=None) -> list[Weights]:
    """The valid .safetensors models in models_dir, newest first.  Anything else
    there (a run's .pt, a damaged file) is reported through warn and never loaded:
    a pickle dropped into models/ cannot run."""
    folder = Path(models_dir)
    if folder.is_file():
        raise UserError(f"--models {folder}: is a file; give the folder that holds models")
    if not folder.is_dir():
        raise UserError(f"--models {folder}: no such folder of models")
    found = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.name == "README.md" or path.is_dir():
            continue
        try:
            if path.suffix != SUFFIX:
                raise UserError(f"{path}: not a {SUFFIX} model; models/ is read for "
                                f"{SUFFIX} files only (give a run's .pt with --model)")
            found.append(read_safetensors(checked_model_file(path)))
        except UserError as e:
            if warn:
                warn(f"skipping {e}")
    found.sort(key=lambda w: (w.created, w.path.name), reverse=True)
    return found


def model_scale_for(scale: float) -> int:
    """The scale of the one model that serves a wanted scale alone (--model): that
    scale, or else the next whole one, its result shrunk to size."""
    return max(1, math.ceil(scale - 1e-9))


def route(scale: float, models: list) -> list:
    """The models of one level (newest first) that upscale by scale, in the order they
    run (sr.upscaling.upscale_picture): the model of the scale; else the smallest that
    grows (x2), then the route of what remains, the last result shrunk to size.  x2.5
    is the x2 model twice, its x4 result shrunk, which beats one x3 model at every
    level (docs/real-pictures.md).  [] where none fits: scale 1 takes an x1 model."""
    if scale == 1:
        models = [w for w in models if w.scale == 1]
    exact = [w for w in models if w.scale == scale]
    growing = [w for w in models if w.scale > 1]
    if exact or not growing:
        return exact[:1]
    first = min(growing, key=lambda w: w.scale)   # the first of the smallest: the newest
    return [first] + (route(scale / first.scale, models) if scale > first.scale else [])


def models_for_level(models_dir, scale: float, level: int, available=None) -> list:
    """The route (above) of a JPEG level's models (0: clean) for scale; at JPEG level 4
    (sr.jpeg.TWO_PASSES) where that is empty, level 3's x1 model first (where there is
    one), then level 3's route.  available: list_models(models_dir), if read."""
    from sr.jpeg import TWO_PASSES, training_qualities
    available = list_models(models_dir) if available is None else available
    models = route(scale, [w for w in available if w.level == level])
    if not models and level == TWO_PASSES:
        below = [w for w in available if w.level == level - 1]
        rest = route(scale, below)
        models = [w for w in below if w.scale == 1][:1] + rest if rest else []
    if not models:
        what = f" for JPEG level {level}" if level else ""
        other = "" if scale == 1 else " (nor one of another scale)"
        jpeg = " --from-images --jpeg %d-%d" % training_qualities(level) if level else ""
        raise UserError(f"no x{scale:g} model{what}{other} in {models_dir}/: train one "
                        f"with 'python main.py train --scale {max(1, round(scale))}{jpeg}' "
                        f"or pass --model")
    return models


def describe_level(weights: Weights, wanted: int) -> str:
    """'x2 model for JPEG level 2', 'x2 clean model', or for a level without a model
    of its own, 'x2 clean model (none for JPEG level 3)'."""
    if weights.level:
        return f"x{weights.scale} model for JPEG level {weights.level}"
    missing = f" (none for JPEG level {wanted})" if wanted else ""
    return f"x{weights.scale} clean model{missing}"


def describe_route(models: list, wanted: int, scale: float) -> str:
    """A route (models_for_level) in words: 'x2 model for JPEG level 2, twice, shrunk
    to x3', 'JPEG level 4: the x1 model for level 3, then the x2 one'."""
    def often(run):
        return {1: "", 2: " twice"}.get(len(run), f" {len(run)} times")
    runs = [list(run) for _, run in itertools.groupby(models, key=id)]   # repeats together
    head = runs[0][0]
    if head.scale == 1 and len(models) > 1 and head.level != wanted:   # level 4's first pass
        text = f"JPEG level {wanted}: the x1 model for level {head.level}"
    else:
        text = describe_level(head, wanted)
    text += "," + often(runs[0]) if len(runs[0]) > 1 else ""
    text += "".join(f", then the x{run[0].scale} one{often(run)}" for run in runs[1:])
    if math.prod(w.scale for w in models) > scale + 1e-9:
        text += f", shrunk to x{scale:g}"
    return text


def model_for_scale(path, scale: float) -> Weights:
    """--model: read it; refused unless of the scale that serves scale (model_scale_for)."""
    weights = read_weights(path)
    if weights.scale != model_scale_for(scale):
        raise UserError(f"{path}: model is for x{weights.scale}, not x{scale:g}")
    return weights


# --- writing -------------------------------------------------------------------------

def write_model(weights: Weights, path, overwrite: bool = False) -> Path:
    """Write weights as a .safetensors model, atomically (never replacing a file
    unless overwrite)."""
    from safetensors.numpy import save
    from sr.atomic import write_file_atomic
    data = save({k: np.ascontiguousarray(v, np.float32) for k, v in weights.state.items()},
                metadata=weights.metadata())
    return write_file_atomic(path, lambda f: f.write(data), overwrite)

