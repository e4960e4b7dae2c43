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

import io
import math
import pickle
import pickletools
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sr.errors import UserError

# The same tags as sr.checkpoint (which imports torch, so they are repeated here;
# tests/test_upscale_backends.py checks that they agree).
FORMAT = "srcnn-checkpoint"
VERSION = 1

# torch storage class name -> NumPy dtype of its elements.
STORAGE_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64,
                  "HalfStorage": np.float16, "LongStorage": np.int64,
                  "IntStorage": np.int32, "ShortStorage": np.int16,
                  "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_}

# What a file may make this reader allocate, far above any SRCNN checkpoint (a 9-5-5
# network with its Adam state is under 1 MB): data.pkl, and the storages together (and
# again the tensors copied out of them).  A crafted file cannot fill the memory.
MAX_PICKLE_BYTES = 16 << 20
MAX_STORAGE_BYTES = 256 << 20
MAX_SCALE = 1000          # a model's scale: an integer from 2 to this

# What a crafted or damaged file can raise while it is read (zipfile: an unsupported
# or encrypted entry raises NotImplementedError or RuntimeError, bad deflate data
# zlib.error; numpy: ValueError; pickle: almost anything): all mean "not a checkpoint".
_BAD_FILE_ERRORS = (zipfile.BadZipFile, pickle.UnpicklingError, zlib.error, struct.error,
                    LookupError, EOFError, ValueError, TypeError, AttributeError, OSError,
                    RuntimeError, ArithmeticError, MemoryError)


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
    """What find_class returns for torch.<Name>Storage.  Only the name is kept (no
    __dict__, so a BUILD in the pickle cannot give it another dtype), and it is looked
    up in STORAGE_DTYPES again when a storage is read."""
    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name


def _is_count(value) -> bool:
    """An int (not a bool, a float or an array) from 0 to MAX_STORAGE_BYTES: a count, an
    index or a stride that can be right (larger ones are not worth a product or a str())."""
    return type(value) is int and 0 <= value <= MAX_STORAGE_BYTES


def _short(value) -> str:
    """value for an error message: never long, and never str() of a crafted structure."""
    if isinstance(value, (bool, float, str, type(None))) or \
            (type(value) is int and abs(value) < 10 ** 12):
        return repr(value)[:40]
    return f"<{type(value).__name__}>"


def _mib(nbytes: int) -> str:
    return f"{nbytes / 2 ** 20:.3g} MiB"


def _check_opcodes(data: bytes) -> None:
    """Walk the pickle's opcodes (pickletools builds nothing) before the C unpickler runs,
    which would allocate a BINBYTES8's stated length at once (MemoryError) and size its
    memo table by the largest index it is given (LONG_BINPUT 2**32 - 1: 64 GiB zeroed).
    genops refuses lengths beyond the end; memo indices may only grow one at a time, as
    every pickler writes them."""
    memo = 0
    for opcode, arg, _pos in pickletools.genops(data):
        if opcode.name in ("PUT", "BINPUT", "LONG_BINPUT"):
            if not _is_count(arg) or arg > memo:
                raise pickle.UnpicklingError(f"unexpected memo index {_short(arg)}")
            memo = max(memo, arg + 1)
        elif opcode.name == "MEMOIZE":
            memo += 1


def _read_entry(archive: zipfile.ZipFile, name: str, limit: int) -> bytes:
    """An archive member, if its stated size is within limit (zipfile never returns more
    than the stated size, so a deflate bomb cannot get past this)."""
    size = archive.getinfo(name).file_size
    if size > limit:
        raise pickle.UnpicklingError(f"{name} is larger than {_mib(limit)}")
    return archive.read(name)


class _CheckpointUnpickler(pickle.Unpickler):
    """Knows only the names a state-dict checkpoint uses; anything else is refused.
    Storages are checked against their archive entries and tensors against their
    storages, so a tensor never reads memory outside the file's data."""

    def __init__(self, file, archive: zipfile.ZipFile, prefix: str):
        super().__init__(file)
        self.archive, self.prefix, self.storages = archive, prefix, {}
        self.storage_ids = {}          # id(array) -> array, for the storages read
        self.storage_bytes = self.tensor_bytes = 0

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            import collections
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return self._rebuild_tensor
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")

    def persistent_load(self, pid):
        # ('storage', storage type, key, location, number of elements)
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise pickle.UnpicklingError("unexpected persistent id")
        _, kind, key, _location, count = pid
        name = kind.name if isinstance(kind.name, str) else None
        if name not in STORAGE_DTYPES or not isinstance(key, str) or not _is_count(count):
            raise pickle.UnpicklingError(f"bad storage record ({_short(name)}, "
                                         f"{_short(key)}, {_short(count)})")
        dtype = np.dtype(STORAGE_DTYPES[name]).newbyteorder("<")
        if key in self.storages:
            storage = self.storages[key]
            if storage.dtype != dtype or storage.size != count:
                raise pickle.UnpicklingError(f"storage {key[:40]!r} is declared twice, "
                                             f"differently")
            return storage
        entry = f"{self.prefix}/data/{key}"
        nbytes, stored = count * dtype.itemsize, self.archive.getinfo(entry).file_size
        if stored != nbytes:
            raise pickle.UnpicklingError(f"storage {key[:40]!r} holds {stored} bytes, not "
                                         f"{count} {name[:-len('Storage')].lower()} values")
        self.storage_bytes += nbytes
        if self.storage_bytes > MAX_STORAGE_BYTES:
            raise pickle.UnpicklingError(f"tensors larger than {_mib(MAX_STORAGE_BYTES)}")
        raw = self.archive.read(entry)
        if len(raw) != nbytes:
            raise pickle.UnpicklingError(f"storage {key[:40]!r} is truncated")
        storage = self.storages[key] = np.frombuffer(raw, dtype=dtype, count=count)
        self.storage_ids[id(storage)] = storage
        return storage

    def _rebuild_tensor(self, storage, offset, size, stride, *_ignored):
        """torch._utils._rebuild_tensor_v2 for NumPy: a strided view, copied; refused
        unless every element it names lies in a storage read from this archive."""
        if self.storage_ids.get(id(storage)) is not storage:
            raise pickle.UnpicklingError("a tensor whose storage is not in the archive")
        if not (isinstance(size, (tuple, list)) and isinstance(stride, (tuple, list))
                and len(size) == len(stride) <= 64 and _is_count(offset)
                and all(map(_is_count, size)) and all(map(_is_count, stride))):
            raise pickle.UnpicklingError(f"bad tensor size {_short(size)}, stride "
                                         f"{_short(stride)} or offset {_short(offset)}")
        numel = math.prod(size)
        if numel:   # the last element it reads, and no more elements than the storage
            last = offset + sum((n - 1) * s for n, s in zip(size, stride))
            if last >= storage.size or numel > storage.size:
                raise pickle.UnpicklingError(
                    f"a tensor of size {tuple(size)} (stride {tuple(stride)}, offset "
                    f"{offset}) does not fit in its storage of {storage.size} values")
        self.tensor_bytes += numel * storage.itemsize
        if self.tensor_bytes > MAX_STORAGE_BYTES:
            raise pickle.UnpicklingError(f"tensors larger than {_mib(MAX_STORAGE_BYTES)}")
        itemsize = storage.dtype.itemsize
        if not size:
            return storage[offset].copy()
        view = np.lib.stride_tricks.as_strided(storage[offset:], shape=tuple(size),
                                               strides=tuple(s * itemsize for s in stride))
        return np.array(view)


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
            order = _read_entry(archive, f"{prefix}/byteorder", 64) if \
                f"{prefix}/byteorder" in archive.namelist() else b"little"
            if order.strip() != b"little":
                raise pickle.UnpicklingError("big-endian checkpoints are not supported")
            data = _read_entry(archive, pickles[0], MAX_PICKLE_BYTES)
            _check_opcodes(data)
            ckpt = _CheckpointUnpickler(io.BytesIO(data), archive, prefix).load()
    except _BAD_FILE_ERRORS as e:
        raise UserError(f"{path}: not an SRCNN checkpoint ({str(e)[:160] or type(e).__name__})"
                        ) from None
    tag = ckpt.get("format") if isinstance(ckpt, dict) else None
    if not (isinstance(tag, str) and tag == FORMAT):
        raise UserError(f"{path}: not an SRCNN checkpoint (missing format tag)")
    version = ckpt.get("version")
    if not (type(version) is int and version == VERSION):
        raise UserError(f"{path}: checkpoint version {_short(version)} is not supported")
    return ckpt


def _small_ints(value, what: str) -> tuple:
    """A list or tuple of ints from 1 to 2**31 - 1, as a tuple."""
    if not (isinstance(value, (list, tuple)) and
            all(type(v) is int and 1 <= v < 2 ** 31 for v in value)):
        raise ValueError(f"{what} are not a list of positive integers")
    return tuple(value)


def weights_from_dict(ckpt: dict, path) -> Weights:
    """Check the weights' shapes against the stated architecture; any other dict (a key
    missing, a value of another type) is a UserError too."""
    try:
        model = ckpt["model"]
        if not isinstance(model, dict):
            raise ValueError(f"model is {_short(model)}, not a dict")
        kernels = _small_ints(model.get("kernels"), "kernel sizes")
        filters = _small_ints(model.get("filters"), "filters")
        if len(kernels) != 3 or any(k % 2 == 0 for k in kernels):
            raise ValueError(f"kernel sizes {kernels}")
        if len(filters) != len(kernels) - 1:
            raise ValueError(f"{len(filters)} filter counts for {len(kernels)} layers")
        residual = model.get("residual", True)
        if not isinstance(residual, bool):
            raise ValueError(f"residual is {_short(residual)}, not True or False")
        scale = ckpt.get("scale")
        if not (type(scale) is int and 2 <= scale <= MAX_SCALE):
            raise ValueError(f"scale {_short(scale)} is not an integer from 2 to {MAX_SCALE}")
        created = ckpt.get("created", "")
        if not isinstance(created, str):
            raise ValueError(f"created is {_short(created)}, not a text")
        saved = ckpt["state_dict"]
        if not isinstance(saved, dict):
            raise ValueError(f"state_dict is {_short(saved)}, not a dict")
        channels = (1, *filters, 1)
        want = {}
        for i, k in enumerate(kernels):
            want[f"conv{i + 1}.weight"] = (channels[i + 1], channels[i], k, k)
            want[f"conv{i + 1}.bias"] = (channels[i + 1],)
        missing = [name for name in want if name not in saved]
        extra = [name for name in saved if name not in want]
        if missing or extra:
            raise ValueError(f"no {missing[0]}" if missing else
                             f"unexpected entry {_short(extra[0])} in state_dict")
        for name, v in saved.items():
            if not (isinstance(v, np.ndarray) and v.dtype.kind == "f"):
                kind = v.dtype if isinstance(v, np.ndarray) else _short(v)
                raise ValueError(f"{name} is {kind}, not a floating-point tensor")
        state = {k: np.asarray(v, dtype=np.float32) for k, v in saved.items()}
        for name, shape in want.items():
            if state[name].shape != shape:
                raise ValueError(f"{name} has shape {state[name].shape}, expected {shape}")
        if not all(np.isfinite(v).all() for v in state.values()):
            raise ValueError("weights are not finite")
    except (LookupError, TypeError, ValueError, AttributeError, ArithmeticError) as e:
        raise UserError(f"{path}: checkpoint does not match its architecture "
                        f"({str(e)[:160] or type(e).__name__})") from None
    return Weights(Path(path), scale, kernels, filters, residual, created, state)


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
