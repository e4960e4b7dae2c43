"""`main.py export-onnx`: self-contained ONNX files for the browser page (web/)."""
from __future__ import annotations

from pathlib import Path

from sr import cli
from sr.errors import UserError

WEB_DIR = "web"   # the browser page, served by web/serve.py

HELP = ("Export models as self-contained ONNX files: input 'luma' float32 [N,1,H,W] in [0,1], "
        "already interpolated to the output size; output 'upscaled' of the same shape; "
        "scale, architecture, radius and colour space in the metadata_props. "
        "Without -o: every scale with a model in --models goes into the page's folder "
        "(x2 -> web/srcnn.onnx, x3 -> web/srcnn_x3.onnx, ...; per scale the shipped model "
        "srcnn_x<s>.shipped.safetensors if present, else the newest), replacing the page's files, "
        "and web/models.json is rewritten. With -o FILE: one model into FILE, which is "
        "never replaced unless --overwrite.")


def add_arguments(p) -> None:
    p.add_argument("-o", "--output",
                   help="write one ONNX file here instead of the page's models")
    p.add_argument("--overwrite", action="store_true",
                   help="let -o replace an existing file (the page's models in --web are "
                        "always replaced: they are generated files kept under version control)")
    p.add_argument("--scale", type=cli.integer_scale, action="append",
                   help="export only this scale (repeatable; default: every scale found, "
                        "or 2 with -o)")
    p.add_argument("--model", help="export this model file (its own scale) instead")
    p.add_argument("--models", default=cli.MODELS_DIR, help="folder of .safetensors models")
    p.add_argument("--web", default=WEB_DIR, help="the page's folder")


def chosen_checkpoints(args) -> dict:
    """{scale: checkpoint path} from --model, --scale and --models."""
    from sr.export import checkpoints_to_export
    from sr.model_files import read_weights
    if args.model:
        scale = read_weights(args.model).scale
        if args.scale and args.scale != [scale]:
            raise UserError(f"{args.model}: model is for x{scale}, not "
                            f"x{', x'.join(map(str, args.scale))}")
        return {scale: Path(args.model)}
    scales = args.scale or ([2] if args.output else None)
    return checkpoints_to_export(args.models, scales, warn=cli.warn)


def run(args) -> int:
    from sr.checkpoint import load_model
    from sr.export import export_onnx, onnx_bytes, web_model_name, web_models, write_model_index
    chosen = chosen_checkpoints(args)
    if args.output:
        if len(chosen) > 1:
            raise UserError("-o writes one file: give one --scale")
        ((scale, model_path),) = chosen.items()
        target = cli.check_file_target("-o", args.output, args.overwrite, inputs=[model_path])
        export_onnx(load_model(model_path, scale)[0], scale, target, args.overwrite)
        print(f"exported {model_path} (x{scale}) -> {target}")
        return 0
    names = {scale: web_model_name(scale) for scale in chosen}
    check_page_folder(Path(args.web), [Path(args.web) / n for n in names.values()],
                      chosen.values())
    web_models(args.web, skip=names.values())  # the others readable?
    files = {names[scale]: onnx_bytes(load_model(path, scale)[0], scale)
             for scale, path in chosen.items()}
    index = write_model_index(args.web, files)   # the page never sees half a set
    for scale, model_path in chosen.items():
        print(f"exported {model_path} (x{scale}) -> {Path(args.web) / names[scale]}")
    print(f"wrote {index}")
    return 0


def check_page_folder(web: Path, targets, checkpoints) -> None:
    """Before any work: --web is a folder (or can become one) and none of the page's
    files about to be replaced is one of the checkpoints being exported."""
    cli.check_folder_target("--web", web)
    cli.check_writable(web, "the page's models")
    inputs = {Path(c).resolve() for c in checkpoints}
    for target in targets:
        if target.resolve() in inputs:
            raise UserError(f"{target}: is the checkpoint being exported; inputs are never "
                            f"replaced")
