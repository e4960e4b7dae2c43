"""Exporting a trained network to one self-contained ONNX file for the browser."""
from __future__ import annotations

import contextlib
import io
import os
import tempfile
from pathlib import Path

import onnx
import torch

from sr.errors import UserError
from srcnn import architecture_name

OPSET = 18


def export_onnx(model, scale: int, path, overwrite: bool = False) -> Path:
    """Write model as ONNX: input "luma" float32 (N, 1, H, W) in [0, 1], already
    interpolated to the output size; output "upscaled" of the same shape.
    N, H and W are dynamic.  Weights are embedded (no .onnx.data file).

    metadata_props tell a runtime how to use it: scale, architecture, radius,
    residual, colour space.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise UserError(f"{path}: already exists; pass --overwrite to replace it")
    model = model.eval().cpu()
    example = torch.rand(1, 1, 2 * model.radius + 5, 2 * model.radius + 7)
    dims = {0: torch.export.Dim("batch", min=1), 2: torch.export.Dim("height", min=1),
            3: torch.export.Dim("width", min=1)}
    with contextlib.redirect_stdout(io.StringIO()):  # the exporter chats on stdout
        program = torch.onnx.export(model, (example,), dynamo=True, external_data=False,
                                    input_names=["luma"], output_names=["upscaled"],
                                    dynamic_shapes={"x": dims}, opset_version=OPSET,
                                    verbose=False)
    proto = program.model_proto
    meta = {"scale": str(scale), "architecture": architecture_name(model),
            "filters": "-".join(map(str, model.filters)), "radius": str(model.radius),
            "residual": str(model.residual).lower(), "colour_space": "bt601-studio-luma/255",
            "input": "bicubic-interpolated luma, float32 [N,1,H,W], Y/255"}
    onnx.helper.set_model_props(proto, meta)
    onnx.checker.check_model(proto)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        onnx.save_model(proto, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def read_metadata(path) -> dict:
    """metadata_props of an ONNX file as a dict of strings."""
    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
