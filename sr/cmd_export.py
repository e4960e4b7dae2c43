"""`main.py export-onnx`: self-contained ONNX files for the browser page (web/)."""

from pathlib import Path

from sr import cli
from sr.errors import UserError

HELP = ("Export models as self-contained ONNX files: input 'luma' float32 [N,1,H,W] in [0,1], "
        "already interpolated to the output size; output 'upscaled' of the same shape; scale, "
        "architecture, radius and colour space in the metadata_props. Without -o: every scale "
        "and JPEG artifact level with a model in --models goes into the page's folder (clean "
        "x2 -> web/srcnn.onnx, x3 -> web/srcnn_x3.onnx, ..., level L -> "
        "web/srcnn_x<s>_jpeg<L>.onnx; per scale and level the shipped model "
        "srcnn_x<s>[_jpeg<L>].shipped.safetensors if present, else the newest), replacing the "
        "page's files, and web/models.json is rewritten. With -o FILE: one model (the scale's "
        "clean one, or its lowest level) into FILE, which is never replaced unless --overwrite.")


def add_arguments(p) -> None:
    p.add_argument("-o", "--output", help="write one ONNX file here instead of the page's models")
    p.add_argument("--overwrite", action="store_true",
                   help="let -o replace an existing file (the page's models in --web are "
                        "always replaced: they are generated files kept under version control)")
    p.add_argument("--scale", type=cli.integer_scale, action="append",
                   help="export only this scale (repeatable; default: every scale found, "
                        "or 2 with -o)")
    p.add_argument("--model", help="export this model file (its own scale) instead")
    p.add_argument("--models", default=cli.MODELS_DIR, help="folder of .safetensors models")
    p.add_argument("--web", default="web", help="the page's folder")


def chosen_checkpoints(args) -> dict:
    """{(scale, JPEG level): Weights} from --model, --scale and --models; with -o,
    per scale only its lowest level (the clean model where there is one)."""
    from sr.export import checkpoints_to_export
    from sr.model_files import read_weights
    if args.model:
        weights = read_weights(args.model)
        if args.scale and args.scale != [weights.scale]:
            raise UserError(f"{args.model}: model is for x{weights.scale}, not "
                            f"x{', x'.join(map(str, args.scale))}")
        return {(weights.scale, weights.level): weights}
    scales = args.scale or ([2] if args.output else None)
    found = checkpoints_to_export(args.models, scales, warn=cli.warn)
    if args.output:
        found = {key: w for key, w in found.items()
                 if key == min(k for k in found if k[0] == key[0])}
    return found


def run(args) -> int:
    from sr.checkpoint import model_from_weights
    from sr.export import export_onnx, onnx_bytes, web_model_name, web_models, write_model_index
    from sr.model_files import describe_level
    chosen = chosen_checkpoints(args)
    if args.output:
        if len(chosen) > 1:
            raise UserError("-o writes one file: give one --scale")
        (weights,) = chosen.values()
        target = cli.check_file_target("-o", args.output, args.overwrite, inputs=[weights.path])
        export_onnx(model_from_weights(weights), weights.scale, target, args.overwrite,
                    weights.degradation)
        print(f"exported {weights.path} ({describe_level(weights, weights.level)}) -> {target}")
        return 0
    web, names = Path(args.web), {key: web_model_name(*key) for key in chosen}
    cli.check_folder_target("--web", web)   # all before any work
    cli.check_writable(web, "the page's models")
    inputs = {w.path.resolve() for w in chosen.values()}
    for name in names.values():
        if (web / name).resolve() in inputs:
            raise UserError(f"{web / name}: is the checkpoint being exported; inputs are "
                            f"never replaced")
    web_models(web, skip=names.values())  # the others readable?
    files = {names[key]: onnx_bytes(model_from_weights(w), w.scale, w.degradation)
             for key, w in chosen.items()}
    index = write_model_index(web, files)   # the page never sees half a set
    for key, weights in chosen.items():
        print(f"exported {weights.path} ({describe_level(weights, weights.level)}) -> "
              f"{web / names[key]}")
    print(f"wrote {index}")
    return 0
