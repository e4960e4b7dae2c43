"""`main.py export-onnx`: one self-contained ONNX file for the browser page."""
from __future__ import annotations

from sr import cli

HELP = ("Write one self-contained ONNX file: input 'luma' float32 [N,1,H,W] in [0,1], "
        "already interpolated to the output size; output 'upscaled' of the same shape.")


def add_arguments(p) -> None:
    p.add_argument("-o", "--output", default="web/srcnn.onnx", help="ONNX file to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing file")
    cli.add_model_options(p)


def run(args) -> int:
    from sr.export import export_onnx
    model, _, model_path = cli.model_for(args, args.scale)
    path = export_onnx(model, args.scale, args.output, args.overwrite)
    print(f"exported {model_path} -> {path}")
    return 0
