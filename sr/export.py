"""Exporting trained networks to self-contained ONNX files for the browser page.

The page (web/) loads web/models.json, the list of its model files with each model's
scale, JPEG artifact level, receptive radius and colour space, copied from the file's
metadata_props, and the quality bounds of the levels (sr.jpeg.LEVELS), so that the page
picks a JPEG's model as `main.py upscale` does.
"""

import contextlib
import io
import json
import os
import re
import shutil
import signal
import tempfile
import threading
from pathlib import Path

import onnx
import torch

from sr.cli import naming
from sr.errors import UserError
from sr.atomic import write_file_atomic, write_text_atomic
from srcnn import architecture_name

OPSET = 18
MODEL_INDEX = "models.json"
COLOUR_SPACE = "bt601-studio-luma/255"


def export_onnx(model, scale: int, path, overwrite: bool = False,
                degradation: dict | None = None) -> Path:
    """Write model as ONNX (onnx_bytes) to path, which is not replaced unless overwrite
    (export-onnx -o refuses an existing file before any work: cli.check_file_target)."""
    data = onnx_bytes(model, scale, degradation)
    with naming(path):   # a full disk's error names no file
        return write_file_atomic(path, lambda f: f.write(data), overwrite=overwrite)


def onnx_bytes(model, scale: int, degradation: dict | None = None) -> bytes:
    """model as ONNX: input "luma" float32 (N, 1, H, W) in [0, 1], already
    interpolated to the output size; output "upscaled" of the same shape.
    N, H and W are dynamic.  Weights are embedded (no .onnx.data file).

    metadata_props tell a runtime how to use it: scale, architecture, radius,
    residual, colour space, and what it was trained on: degradation (the model file's,
    JSON; None: clean) and the JPEG artifact level that gives (sr.jpeg.level_of_range)."""
    from sr.jpeg import level_of_range
    degradation = degradation or {"resize": "bicubic"}
    model = model.eval().cpu()
    example = torch.rand(1, 1, 2 * model.radius + 5, 2 * model.radius + 7)
    # reflect padding needs more pixels than the radius on each side
    dims = {0: torch.export.Dim("batch", min=1),
            2: torch.export.Dim("height", min=model.radius + 1),
            3: torch.export.Dim("width", min=model.radius + 1)}
    with contextlib.redirect_stdout(io.StringIO()), interrupt_kept():  # it chats on stdout
        program = torch.onnx.export(model, (example,), dynamo=True, external_data=False,
                                    input_names=["luma"], output_names=["upscaled"],
                                    dynamic_shapes={"x": dims}, opset_version=OPSET,
                                    verbose=False)
    proto = program.model_proto
    meta = {"scale": str(scale), "architecture": architecture_name(model),
            "filters": "-".join(map(str, model.filters)), "radius": str(model.radius),
            "residual": str(model.residual).lower(), "colour_space": COLOUR_SPACE,
            "input": "bicubic-interpolated luma, float32 [N,1,H,W], Y/255",
            "degradation": json.dumps(degradation, sort_keys=True),
            "level": str(level_of_range(degradation.get("jpeg")))}
    onnx.helper.set_model_props(proto, meta)
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


@contextlib.contextmanager
def interrupt_kept():
    """Ctrl-C stays a KeyboardInterrupt inside: the exporter wraps whatever it meets,
    a Ctrl-C too, in errors of its own (TorchExportError, or worse)."""
    if threading.current_thread() is not threading.main_thread():
        yield                                    # signal handlers live in the main thread
        return
    pressed = []

    def on_sigint(signum, frame):
        pressed.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    except Exception:
        if pressed:
            raise KeyboardInterrupt from None
        raise
    finally:
        signal.signal(signal.SIGINT, previous)


def read_metadata(path) -> dict:
    """metadata_props of an ONNX file as a dict of strings."""
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as e:   # protobuf's DecodeError, or a file that is not ONNX at all
        raise UserError(f"{path}: not a readable ONNX file ({type(e).__name__}); "
                        f"re-export or delete it") from None
    return {p.key: p.value for p in proto.metadata_props}


def web_model_name(scale: int, level: int = 0) -> str:
    """The page's model file for a scale and JPEG artifact level: clean models
    srcnn.onnx (x2, the default) and srcnn_x<s>.onnx, level models srcnn_x<s>_jpeg<L>.onnx."""
    if level:
        return f"srcnn_x{int(scale)}_jpeg{int(level)}.onnx"
    return "srcnn.onnx" if int(scale) == 2 else f"srcnn_x{int(scale)}.onnx"


def checkpoints_to_export(models_dir, scales=None, warn=None) -> dict:
    """{(scale, level): Weights} for the page: per scale and JPEG artifact level, the
    shipped model (srcnn_x<s>[_jpeg<L>].shipped.safetensors) if valid, else the newest.
    scales: only these (UserError if one has no model at any level); None: all found."""
    from sr.model_files import list_models
    newest, shipped = {}, {}
    for weights in list_models(models_dir, warn=warn):  # newest first
        key = (weights.scale, weights.level)
        newest.setdefault(key, weights)
        jpeg = f"_jpeg{weights.level}" if weights.level else ""
        if weights.path.name == f"srcnn_x{weights.scale}{jpeg}.shipped.safetensors":
            shipped[key] = weights
    found = {**newest, **shipped}
    if scales is not None:
        missing = [s for s in scales if s not in {scale for scale, _ in found}]
        if missing:
            raise UserError(f"no x{missing[0]} model in {models_dir}/: train one with "
                            f"'python main.py train --scale {missing[0]}' or pass --model")
        found = {key: w for key, w in found.items() if key[0] in scales}
    if not found:
        raise UserError(f"no model in {models_dir}/: train one with 'python main.py train' "
                        f"or pass --model")
    return dict(sorted(found.items()))


def web_models(web_dir, skip=()) -> list[dict]:
    """The page's model files in web_dir (not those named in skip), by scale and level:
    [{"file", "scale", "level", "architecture", "radius", "colour_space"}] from each
    file's metadata_props (level 0, clean, for files exported before levels existed);
    a file without a scale, or not ONNX, is an error."""
    entries = []
    for path in sorted(Path(web_dir).glob("srcnn*.onnx")):
        if not re.fullmatch(r"srcnn(_x\d+(_jpeg\d)?)?\.onnx", path.name) or path.name in skip:
            continue
        meta = read_metadata(path)
        if "scale" not in meta or "radius" not in meta:
            raise UserError(f"{path}: no scale/radius in its metadata_props; re-export it")
        entries.append({"file": path.name, "scale": int(meta["scale"]),
                        "level": int(meta.get("level", 0)),
                        "architecture": meta.get("architecture", ""),
                        "radius": int(meta["radius"]),
                        "colour_space": meta.get("colour_space", "")})
    return sorted(entries, key=lambda e: (e["scale"], e["level"]))


def write_model_index(web_dir, files: dict | None = None) -> Path:
    """Write the page's new model files ({file name: ONNX bytes}) and models.json as one
    set: all into a hidden folder in web_dir first, then renamed into place, models.json
    last, so that a failure (a full disk) leaves the page's old set whole.  Returns
    models.json's path.  models.json carries what the module docstring says, since
    onnxruntime-web does not expose a file's metadata_props; its "levels" come from
    sr.jpeg.LEVELS, the one definition of the bounds, and "x1_highest_quality" is
    sr.jpeg.X1_HIGHEST_QUALITY."""
    from sr.jpeg import LEVELS, X1_HIGHEST_QUALITY
    web, files = Path(web_dir), files or {}
    web.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".export.", dir=web))
    try:
        for name, data in files.items():
            with naming(web / name):   # a full disk's error names no file
                write_file_atomic(stage / name, lambda f: f.write(data))
        entries = web_models(web, skip=files) + web_models(stage)
        with naming(web / MODEL_INDEX):
            write_text_atomic(stage / MODEL_INDEX, json.dumps(
                {"levels": [[level, low] for level, low, _ in LEVELS],
                 "x1_highest_quality": X1_HIGHEST_QUALITY,
                 "models": sorted(entries, key=lambda e: (e["scale"], e["level"]))},
                indent=2) + "\n")
        for name in [*files, MODEL_INDEX]:
            os.replace(stage / name, web / name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return web / MODEL_INDEX
