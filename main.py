"""SRCNN super-resolution: train, upscale, evaluate and export.

    python main.py train --cpu -n -e 20          # train on samples_gen_*/ patches
    python main.py upscale -i photo.jpg          # -> images_upscaled/photo.<time>.png
    python main.py eval -i Set5/ --scale 2       # PSNR/SSIM table against bicubic
    python main.py export-onnx                   # -> web/srcnn.onnx

Each subcommand lives in sr/cmd_<name>.py; run it with --help for its options.
"""

import argparse

from sr import cli, cmd_eval, cmd_export, cmd_train, cmd_upscale

COMMANDS = {"train": cmd_train, "upscale": cmd_upscale, "eval": cmd_eval,
            "export-onnx": cmd_export}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in COMMANDS.items():
        p = sub.add_parser(name, help=module.HELP.split(":")[0].split(".")[0],
                           description=module.HELP, formatter_class=cli.HelpFormatter)
        module.add_arguments(p)
        p.set_defaults(func=module.run)
    args, unknown = parser.parse_known_args(argv)
    if unknown:   # the command's usage, not the top level's, goes with the complaint
        sub.choices[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    cli.run(main)
