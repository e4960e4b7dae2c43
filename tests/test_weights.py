"""sr.weights on crafted and damaged checkpoints: every one is a one-line UserError
(list_weights skips it with a warning), and no tensor reads memory outside the file."""
from __future__ import annotations

import collections
import io
import pickle
import zipfile

import numpy as np
import pytest
import torch

from sr import weights as weights_module
from sr.checkpoint import FORMAT, VERSION, save_checkpoint
from sr.errors import UserError
from sr.weights import nearest_weights, read_checkpoint_dict, read_weights
from tests.helpers import perturbed_model, picture, run_script


# --- writing checkpoints by hand, as torch.save lays them out ---------------------------

class Storage:
    """A persistent id ('storage', torch.<kind>, key, 'cpu', count) in data.pkl."""

    def __init__(self, key, count, kind="FloatStorage"):
        self.key, self.count, self.kind = key, count, kind


class Tensor:
    """torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...) in data.pkl."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def __reduce__(self):
        return (torch._utils._rebuild_tensor_v2,
                (self.storage, self.offset, self.size, self.stride, False,
                 collections.OrderedDict()))


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", getattr(torch, obj.kind), obj.key, "cpu", obj.count)
        return None


def dumps(payload) -> bytes:
    buf = io.BytesIO()
    _Pickler(buf, protocol=2).dump(payload)
    return buf.getvalue()


def write_archive(path, pkl: bytes, blobs: dict, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pkl, compress_type=compression)
        archive.writestr("archive/byteorder", "little")
        archive.writestr("archive/version", "3\n")
        for key, data in blobs.items():
            archive.writestr(f"archive/data/{key}", data)
    return path


def genuine(model=None, created="2099-01-01T00:00:00"):
    """(payload, storage bytes) of a checkpoint of model, as save_checkpoint writes it."""
    model = model or perturbed_model("9-1-5")
    state, blobs = {}, {}
    for i, (name, tensor) in enumerate(model.state_dict().items()):
        blobs[str(i)] = tensor.numpy().tobytes()
        state[name] = Tensor(Storage(str(i), tensor.numel()), 0, tuple(tensor.shape),
                             tensor.stride())
    payload = {"format": FORMAT, "version": VERSION, "model": model.config, "scale": 2,
               "created": created, "state_dict": state}
    return payload, blobs


def crafted(path, change=None):
    """A hand-written checkpoint; change(state, blobs) edits its conv1.bias first."""
    payload, blobs = genuine()
    if change:
        change(payload["state_dict"], blobs)
    return write_archive(path, dumps(payload), blobs)


def test_hand_written_checkpoints_are_read_as_torch_reads_them(tmp_path):
    """The writer above is right, so the refusals below are of one flaw each."""
    model = perturbed_model("9-1-5")
    path = crafted(tmp_path / "m.pt")
    loaded = torch.load(path, weights_only=True)
    weights = read_weights(path)
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded["state_dict"][name], tensor)
        assert np.array_equal(weights.state[name], tensor.numpy())


def bias(storage=None, offset=0, size=(64,), stride=(1,)):
    def change(state, blobs):
        state["conv1.bias"] = Tensor(storage or state["conv1.bias"].storage, offset, size,
                                     stride)
    return change


def small_storage(count):
    def change(state, blobs):
        blobs["1"] = blobs["1"][:4 * count]
        state["conv1.bias"] = Tensor(Storage("1", count), 0, (64,), (1,))
    return change


def storage(count=64, nbytes=256, kind="FloatStorage"):
    def change(state, blobs):
        blobs["1"] = bytes(nbytes)
        state["conv1.bias"] = Tensor(Storage("1", count, kind), 0, (64,), (1,))
    return change


BAD_TENSORS = {
    "size beyond the storage": (small_storage(4), "does not fit in its storage of 4"),
    "offset beyond the storage": (bias(offset=1), "does not fit in its storage of 64"),
    "more elements than the storage": (bias(size=(4096,), stride=(0,)), "does not fit"),
    "negative offset": (bias(offset=-1), "bad tensor size"),
    "negative stride": (bias(offset=63, stride=(-1,)), "bad tensor size"),
    "negative size": (bias(size=(-1,)), "bad tensor size"),
    "float size": (bias(size=(64.0,)), "bad tensor size"),
    "huge stride of a size-1 dimension": (bias(size=(64, 1), stride=(1, 2 ** 70)),
                                          "bad tensor size"),
    "sizes and strides disagree": (bias(stride=(1, 1)), "bad tensor size"),
    "a tensor as storage": (bias(storage=Tensor(Storage("1", 64), 0, (64,), (1,))),
                            "storage is not in the archive"),
    "a list as storage": (bias(storage=[0.0] * 64), "storage is not in the archive"),
    "storage with bytes to spare": (storage(64, 260), "holds 260 bytes, not 64 float"),
    "storage too short": (storage(64, 252), "holds 252 bytes, not 64 float"),
    "negative element count": (storage(-1), "bad storage record"),
    "huge element count": (storage(2 ** 40), "bad storage record"),
    "storage used as two types": (lambda state, blobs: state.update(
        {"conv1.bias": Tensor(Storage("0", 64 * 81 // 2, "DoubleStorage"), 0, (64,), (1,))}),
        "declared twice"),
}


@pytest.mark.parametrize("case", BAD_TENSORS)
def test_tensors_outside_their_storage_are_refused(tmp_path, case):
    change, message = BAD_TENSORS[case]
    path = crafted(tmp_path / "bad.pt", change)
    with pytest.raises(UserError, match="not an SRCNN checkpoint") as error:
        read_checkpoint_dict(path)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_the_pickle_cannot_change_a_storage_type(tmp_path):
    """A BUILD after the GLOBAL could set the storage type's dtype to any NumPy type."""
    payload, blobs = genuine()
    pkl = dumps(payload)
    glob = b"ctorch\nFloatStorage\n"
    build = b"}X\x05\x00\x00\x00dtypeX\x02\x00\x00\x00S4sb"   # {'dtype': 'S4'} BUILD
    path = write_archive(tmp_path / "s4.pt", pkl.replace(glob, glob + build, 1), blobs)
    with pytest.raises(UserError, match="not an SRCNN checkpoint"):
        read_checkpoint_dict(path)


def patched_pickle(tmp_path, edit):
    payload, blobs = genuine()
    return write_archive(tmp_path / "p.pt", edit(dumps(payload)), blobs)


@pytest.mark.parametrize("edit, message", [
    # LONG_BINPUT 2**20 for BINPUT 0: the C unpickler would zero a memo of 2**21 slots
    # (for 2**32 - 1, 64 GiB)
    (lambda pkl: pkl.replace(b"}q\x00", b"}r\x00\x00\x10\x00", 1), "unexpected memo index"),
    # BINBYTES8 of 2**62 bytes: the C unpickler allocates it first (MemoryError)
    (lambda pkl: b"\x80\x04\x8e" + (2 ** 62).to_bytes(8, "little") + b"..", "bytes8"),
], ids=["memo index", "bytes8 length"])
def test_pickle_lengths_and_indices_are_checked_first(tmp_path, edit, message):
    with pytest.raises(UserError, match=message):
        read_checkpoint_dict(patched_pickle(tmp_path, edit))


@pytest.mark.parametrize("what", ["storages", "tensors", "data.pkl"])
def test_what_a_file_may_allocate_is_capped(tmp_path, monkeypatch, what):
    """With smaller caps: the storages, the tensors made of them (three more views of
    conv1.weight, without more storage) and data.pkl."""
    payload, blobs = genuine()
    weight = payload["state_dict"]["conv1.weight"]
    payload["views"] = [Tensor(weight.storage, 0, weight.size, weight.stride) for _ in "abc"]
    total = sum(len(data) for data in blobs.values())
    limit, value = {"storages": ("MAX_STORAGE_BYTES", total - 1),
                    "tensors": ("MAX_STORAGE_BYTES", total + 1000),
                    "data.pkl": ("MAX_PICKLE_BYTES", 500)}[what]
    monkeypatch.setattr(weights_module, limit, value)
    path = write_archive(tmp_path / "m.pt", dumps(payload), blobs)
    with pytest.raises(UserError, match="larger than|too large"):
        read_checkpoint_dict(path)


def damaged_zip(path, how):
    """data.pkl deflated and its stream destroyed, or its central directory entry marked
    encrypted or with an unknown compression method."""
    payload, blobs = genuine()
    write_archive(path, dumps(payload), blobs, zipfile.ZIP_DEFLATED)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("archive/data.pkl")
    if how == "bad deflate stream":   # 0xff: final block of the reserved type
        local = info.header_offset
        start = local + 30 + int.from_bytes(data[local + 26:local + 28], "little") + \
            int.from_bytes(data[local + 28:local + 30], "little")
        data[start:start + info.compress_size] = b"\xff" * info.compress_size
    else:
        central = data.index(b"PK\x01\x02")
        while data[central + 46:central + 62] != b"archive/data.pkl":
            central = data.index(b"PK\x01\x02", central + 1)
        if how == "encrypted":
            data[central + 8] |= 1
        else:
            data[central + 10:central + 12] = (99).to_bytes(2, "little")
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("how", ["bad deflate stream", "encrypted", "unknown compression"])
def test_damaged_archives_are_refused(tmp_path, how):
    with pytest.raises(UserError, match="not an SRCNN checkpoint"):
        read_checkpoint_dict(damaged_zip(tmp_path / "z.pt", how))


# --- checkpoint dicts that do not describe an SRCNN ------------------------------------

def saved(path, change):
    """A torch.save'd checkpoint dict, edited by change(ckpt)."""
    model = perturbed_model("9-1-5")
    ckpt = {"format": FORMAT, "version": VERSION, "model": model.config, "scale": 2,
            "created": "2099-01-01T00:00:00",
            "state_dict": {k: v.clone() for k, v in model.state_dict().items()}}
    change(ckpt)
    torch.save(ckpt, path)
    return path


@pytest.mark.parametrize("change, message", [
    (lambda c: c.update(format=torch.zeros(2)), "missing format tag"),
    (lambda c: c.update(version=torch.ones(2)), "version <ndarray> is not supported"),
    (lambda c: c.update(version=True), "version True is not supported"),
], ids=["format tensor", "version tensor", "version True"])
def test_format_and_version_must_be_plain_values(tmp_path, change, message):
    with pytest.raises(UserError, match=message):
        read_checkpoint_dict(saved(tmp_path / "m.pt", change))


def edit_model(**changes):
    return lambda c: c["model"].update(changes)


def edit_state(**changes):
    return lambda c: c["state_dict"].update(changes)


BAD_DICTS = {
    "four kernels": (edit_model(kernels=[9, 1, 5, 5]), "kernel sizes (9, 1, 5, 5)"),
    "kernels as text": (edit_model(kernels="915"), "kernel sizes are not a list"),
    "one filter count": (edit_model(filters=[64]), "1 filter counts for 3 layers"),
    "residual as text": (edit_model(residual="no"), "residual is 'no'"),
    "no scale": (lambda c: c.pop("scale"), "scale None is not an integer"),
    "fractional scale": (lambda c: c.update(scale=2.5), "scale 2.5 is not an integer"),
    "scale 1": (lambda c: c.update(scale=1), "scale 1 is not an integer from 2"),
    "scale as text": (lambda c: c.update(scale="2"), "scale '2' is not"),
    "huge scale": (lambda c: c.update(scale=10 ** 400), "scale <int> is not"),
    "created as a list": (lambda c: c.update(created=[1]), "created is <list>"),
    "missing weight": (lambda c: c["state_dict"].pop("conv3.bias"), "no conv3.bias"),
    "unexpected weight": (edit_state(**{"conv4.weight": torch.zeros(1)}),
                          "unexpected entry 'conv4.weight'"),
    "integer weights": (edit_state(**{"conv1.bias": torch.zeros(64, dtype=torch.int64)}),
                        "conv1.bias is int64, not a floating-point tensor"),
    "a list for a tensor": (edit_state(**{"conv1.bias": [0.0] * 64}),
                            "conv1.bias is <list>, not a floating-point tensor"),
    "model as a list": (lambda c: c.update(model=[9, 1, 5]), "model is <list>, not a dict"),
    "state_dict as a list": (lambda c: c.update(state_dict=[1]), "state_dict is <list>"),
}


@pytest.mark.parametrize("case", BAD_DICTS)
def test_dicts_that_do_not_match_the_architecture(tmp_path, case):
    change, message = BAD_DICTS[case]
    with pytest.raises(UserError, match="checkpoint does not match its architecture") as e:
        read_weights(saved(tmp_path / "m.pt", change))
    assert message in str(e.value)


def test_every_bad_file_is_skipped_with_a_warning(tmp_path):
    """list_weights (nearest_weights) reports each, and picks the good model, the oldest."""
    good = save_checkpoint(tmp_path / "good.pt", perturbed_model("9-1-5"), 2)
    bad = {crafted(tmp_path / f"tensor{i}.pt", change)
           for i, (change, _) in enumerate(BAD_TENSORS.values())}
    bad |= {saved(tmp_path / f"dict{i}.pt", change)
            for i, (change, _) in enumerate(BAD_DICTS.values())}
    bad |= {damaged_zip(tmp_path / "deflate.pt", "bad deflate stream")}
    warnings = []
    assert nearest_weights(tmp_path, 2, warn=warnings.append).path == good
    assert len(warnings) == len(bad)
    assert all(w.startswith("skipping ") and "\n" not in w for w in warnings)


def test_upscale_warns_and_uses_the_good_model(tmp_path):
    models = tmp_path / "models"
    good = save_checkpoint(models / "srcnn_x2.good.pt", perturbed_model("9-1-5"), 2)
    saved(models / "srcnn_x2.kernels.pt", edit_model(kernels=[9, 1, 5, 5]))
    crafted(models / "srcnn_x2.outside.pt", small_storage(4))
    picture(12, 10).save(tmp_path / "a.png")
    result = run_script("main.py", "upscale", "--cpu", "-i", tmp_path / "a.png", "--models",
                        models, "-o", tmp_path / "out")
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2, result.stderr
    assert "srcnn_x2.kernels.pt" in warnings[0] and "srcnn_x2.outside.pt" in warnings[1]
    assert f"model {good} " in result.stdout
    assert len(list((tmp_path / "out").iterdir())) == 1
