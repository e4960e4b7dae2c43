"""Reading checkpoints into NumPy without importing PyTorch.

`main.py upscale` on the CPU runs the network with ONNX Runtime, so it does not
need PyTorch at all; importing it would cost about 3 s and 700 MB of resident
memory (its CUDA libraries), more than half the memory budget of a large image.
This module reads the same files as sr.checkpoint.read_checkpoint:

    torch.save zip archive: <name>/data.pkl (the dict, tensors as persistent ids)
                            <name>/data/<key> (raw little-endian storage bytes)

The pickle is read by an unpickler that knows three names (an ordered dict, a
tensor rebuilder, the storage types) and refuses every other global, so no code
from the file ever runs: the same guarantee as torch.load(weights_only=True).
"""
from __future__ import annotations

import math
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sr.errors import UserError

# The same tags as sr.checkpoint (which imports torch, so they are repeated here;
# tests/test_upscale_weights.py checks that they agree).
FORMAT = "srcnn-checkpoint"
VERSION = 1

# torch storage class name -> NumPy dtype of its elements.
STORAGE_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64,
                  "HalfStorage": np.float16, "LongStorage": np.int64,
                  "IntStorage": np.int32, "ShortStorage": np.int16,
                  "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_}


@dataclass
class Weights:
    """A checkpoint as plain values: architecture, scale and NumPy weights."""
    path: Path
    scale: int
    kernels: tuple
    filters: tuple
    residual: bool
    created: str
    state: dict = field(repr=False)   # "conv1.weight" -> float32 array, as in the state_dict

    @property
    def radius(self) -> int:
        return sum((k - 1) // 2 for k in self.kernels)

    @property
    def architecture(self) -> str:
        return "-".join(map(str, self.kernels))


class _StorageType:
    def __init__(self, name):
        self.dtype = STORAGE_DTYPES[name]


def _rebuild_tensor(storage, offset, size, stride, *_ignored):
    """torch._utils._rebuild_tensor_v2 for NumPy: a strided view, copied."""
    itemsize = storage.dtype.itemsize
    if not size:
        return storage[offset].copy()
    view = np.lib.stride_tricks.as_strided(storage[offset:], shape=tuple(size),
                                           strides=tuple(s * itemsize for s in stride))
    return np.array(view)


class _CheckpointUnpickler(pickle.Unpickler):
    """Knows only the names a state-dict checkpoint uses; anything else is refused."""

    def __init__(self, file, archive: zipfile.ZipFile, prefix: str):
        super().__init__(file)
        self.archive, self.prefix, self.storages = archive, prefix, {}

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            import collections
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")

    def persistent_load(self, pid):
        # ('storage', storage type, key, location, number of elements)
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise pickle.UnpicklingError("unexpected persistent id")
        _, kind, key, _location, count = pid
        if key not in self.storages:
            raw = self.archive.read(f"{self.prefix}/data/{key}")
            self.storages[key] = np.frombuffer(raw, dtype=np.dtype(kind.dtype).newbyteorder("<"),
                                               count=count)
        return self.storages[key]


def checked_model_file(path) -> Path:
    """path as a Path, if it can be a checkpoint (a PyTorch zip archive); else a
    UserError saying plainly what it is instead."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path}: is a folder, not a model file")
    if not path.is_file():
        raise UserError(f"{path}: no such model file")
    if not zipfile.is_zipfile(path):   # text, a foreign format, or a cut-off download
        raise UserError(f"{path}: not an SRCNN checkpoint (not a PyTorch zip archive, "
                        f"or truncated)")
    return path


def checked_models_dir(models_dir) -> Path:
    """--models as a Path; UserError if it is not a folder."""
    folder = Path(models_dir)
    if not folder.is_dir():
        raise UserError(f"{folder}: no such folder of models")
    return folder


def read_checkpoint_dict(path) -> dict:
    """The checkpoint dict with NumPy arrays for tensors; UserError for anything else."""
    path = checked_model_file(path)
    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [n for n in archive.namelist() if n.endswith("/data.pkl")]
            if len(pickles) != 1:
                raise pickle.UnpicklingError("no data.pkl in the archive")
            prefix = pickles[0][:-len("/data.pkl")]
            order = archive.read(f"{prefix}/byteorder") if f"{prefix}/byteorder" in \
                archive.namelist() else b"little"
            if order.strip() != b"little":
                raise pickle.UnpicklingError("big-endian checkpoints are not supported")
            with archive.open(pickles[0]) as f:
                ckpt = _CheckpointUnpickler(f, archive, prefix).load()
    except (zipfile.BadZipFile, pickle.UnpicklingError, KeyError, EOFError, ValueError,
            TypeError, AttributeError, IndexError, OSError) as e:
        raise UserError(f"{path}: not an SRCNN checkpoint ({str(e)[:160] or type(e).__name__})"
                        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise UserError(f"{path}: not an SRCNN checkpoint (missing format tag)")
    if ckpt.get("version") != VERSION:
        raise UserError(f"{path}: checkpoint version {ckpt.get('version')} is not supported")
    return ckpt


def weights_from_dict(ckpt: dict, path) -> Weights:
    """Check the weights' shapes against the stated architecture."""
    try:
        kernels = tuple(int(k) for k in ckpt["model"]["kernels"])
        filters = tuple(int(f) for f in ckpt["model"]["filters"])
        residual = bool(ckpt["model"].get("residual", True))
        state = {k: np.asarray(v, dtype=np.float32) for k, v in ckpt["state_dict"].items()}
        channels = (1, *filters, 1)
        for i, k in enumerate(kernels):
            want = {f"conv{i + 1}.weight": (channels[i + 1], channels[i], k, k),
                    f"conv{i + 1}.bias": (channels[i + 1],)}
            for name, shape in want.items():
                if state[name].shape != shape:
                    raise ValueError(f"{name} has shape {state[name].shape}, expected {shape}")
        if len(kernels) != 3 or any(k % 2 == 0 for k in kernels):
            raise ValueError(f"kernel sizes {kernels}")
        if not all(np.isfinite(v).all() for v in state.values()):
            raise ValueError("weights are not finite")
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise UserError(f"{path}: checkpoint does not match its architecture ({e})") from None
    return Weights(Path(path), int(ckpt["scale"]), kernels, filters, residual,
                   str(ckpt.get("created", "")), state)


def read_weights(path) -> Weights:
    return weights_from_dict(read_checkpoint_dict(path), path)


def list_weights(models_dir, warn=None) -> list[Weights]:
    """Valid checkpoints in models_dir, newest first; invalid ones reported and skipped."""
    found = []
    for path in sorted(checked_models_dir(models_dir).glob("*.pt")):
        try:
            found.append(read_weights(path))
        except UserError as e:
            if warn:
                warn(f"skipping {e}")
    found.sort(key=lambda w: (w.created, w.path.name), reverse=True)
    return found


def scale_distance(model_scale: int, scale: float) -> float:
    """How far a model's scale is from the wanted one, as a ratio (|log|): the blur the
    network learnt to undo grows with the scale factor, so 2.5 is nearer 3 than 2."""
    return abs(math.log(scale / model_scale))


def nearest_scale(scale: float, available=None) -> int:
    """The model scale for a wanted scale: the nearest by ratio among available (default:
    every integer from 2, as models are trained), ties to the smaller."""
    if available is None:
        low = max(2, math.floor(scale))
        available = {low, low + 1}
    return min(available, key=lambda s: (scale_distance(s, scale), s))


def checked_weights(path, scale: float) -> Weights:
    """--model: read it, and refuse it if it was trained for another scale than the one
    nearest to the wanted one (as sr.checkpoint.load_model does for whole scales)."""
    weights = read_weights(path)
    if weights.scale != nearest_scale(scale):
        raise UserError(f"{path}: model is for x{weights.scale}, not x{scale:g}")
    return weights


def nearest_weights(models_dir, scale: float, warn=None) -> Weights:
    """The newest model of the nearest scale (by ratio; ties go to the smaller scale)."""
    candidates = list_weights(models_dir, warn)
    if not candidates:
        raise UserError(f"no x{scale:g} model (nor any other) in {models_dir}/: train one "
                        f"with 'python main.py train --scale {max(2, round(scale))}' or pass "
                        f"--model")
    best = nearest_scale(scale, {w.scale for w in candidates})
    return next(w for w in candidates if w.scale == best)
