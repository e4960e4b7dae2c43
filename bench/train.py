"""Training speed: throughput, and wall time from scratch to a PSNR.

    python bench/train.py                      # patches/s and GFLOP/s, 9-1-5 and 9-5-5
    python bench/train.py --to-psnr 32.0       # minutes from scratch to Set5 x3 = 32.0 dB

Throughput: Adam steps on random (batch, 1, 48, 48) patches, the network's
multiply-adds x 3 (forward + the two backward products) per valid output pixel,
as a fraction of a float32 4096x4096 matrix product timed in the same run.
--to-psnr trains a fresh 9-5-5 residual network on --images (T91) with
the shipped recipe and evaluates Set5 (protocol of GUIDE §1, sr.evaluation)
after every epoch; the time excludes evaluation.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import srcnn  # noqa: E402
from sr import cli  # noqa: E402
from sr.evaluation import evaluate_image, mean_row  # noqa: E402
from sr.inference import TorchRunner  # noqa: E402
from sr.pictures import load_rgb as load_image  # noqa: E402
from sr.trainer import StopRequest, Trainer  # noqa: E402
from sr.training import ImageCrops, held_out_pictures, split_folder  # noqa: E402

MACS_PER_PIXEL = {"9-1-5": 8_032, "9-5-5": 57_184, "11-5-5": 59_744}


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def matmul_gflops(device: str, repeats: int = 5) -> float:
    """Median float32 GFLOP/s of a 4096 x 4096 matrix product."""
    a = torch.randn(4096, 4096, device=device)
    b = torch.randn(4096, 4096, device=device)
    a @ b
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        a @ b
        sync(device)
        times.append(time.perf_counter() - start)
    return 2 * 4096 ** 3 / statistics.median(times) / 1e9


def train_throughput(arch: str, device: str, batch: int, steps: int) -> float:
    """Median patches/s of full training steps (forward, backward, Adam)."""
    model = srcnn.build(arch).to(device)
    trainer = Trainer(model, {"batch": batch, "epochs": 1, "lr": 1e-4, "seed": 0, "scale": 2},
                      source=[0] * batch, val=None, device=device, run_dir=Path("."))
    x = torch.rand(batch, 1, 48, 48, device=device)
    t = torch.rand(batch, 1, 48, 48, device=device)
    times = []
    for i in range(steps + 2):
        sync(device)
        start = time.perf_counter()
        trainer.train_step(x, t)
        sync(device)
        if i >= 2:  # warm-up steps excluded
            times.append(time.perf_counter() - start)
    return batch / statistics.median(times)


def throughput(args) -> None:
    ceiling = matmul_gflops(args.device)
    print(f"device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"float32 4096x4096 matmul: {ceiling:.0f} GFLOP/s (the ceiling)")
    for arch in ("9-1-5", "9-5-5"):
        radius = srcnn.build(arch).radius
        rate = train_throughput(arch, args.device, args.batch, args.steps)
        gflops = rate * (48 - 2 * radius) ** 2 * MACS_PER_PIXEL[arch] * 2 * 3 / 1e9
        print(f"{arch}: {rate:8.0f} patches/s (48 px, batch {args.batch}), "
              f"{gflops:6.1f} GFLOP/s = {gflops / ceiling:.2f} of the matmul ceiling")


def set5_psnr(model, folder: Path, scale: int) -> float:
    model.eval()
    device = next(model.parameters()).device
    rows = [evaluate_image([(TorchRunner(model, device, half=False), scale)], load_image(f),
                           scale)
            for f in cli.image_files(folder)]
    model.train()
    return mean_row(rows)["psnr"]


def to_psnr(args) -> None:
    torch.manual_seed(0)
    train, held = split_folder(args.images, 0.1, 0, cli.warn)
    source = ImageCrops(train, args.patches, 48, args.scale, 0, rescale=0.6)
    val_set = held_out_pictures(held, args.scale)
    config = {"batch": args.batch, "epochs": args.max_epochs, "lr": 1e-3, "seed": 0,
              "scale": args.scale}
    model = srcnn.build("9-5-5").to(args.device)
    trainer = Trainer(model, config, source, val_set, args.device, Path(args.run_dir),
                      log=lambda *_: None)
    trainer.run_dir.mkdir(parents=True, exist_ok=True)
    spent = 0.0
    with StopRequest() as stop:
        for epoch in range(1, args.max_epochs + 1):
            sync(args.device)
            start = time.perf_counter()
            trainer.run_epoch(stop, None)
            sync(args.device)
            spent += time.perf_counter() - start
            psnr = set5_psnr(model, Path(args.set5), args.scale)
            print(f"epoch {epoch:3d}: {spent:7.1f} s of training, Set5 x{args.scale} "
                  f"{psnr:.2f} dB", flush=True)
            if psnr >= args.to_psnr:
                print(f"reached {args.to_psnr} dB after {spent:.1f} s ({spent / 60:.1f} min) "
                      f"on {args.device}")
                return
    print(f"did not reach {args.to_psnr} dB in {args.max_epochs} epochs ({spent:.0f} s)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=10, help="timed steps per network")
    p.add_argument("--to-psnr", type=float, help="train until Set5 reaches this PSNR")
    p.add_argument("--scale", type=int, default=3)
    p.add_argument("--images", default="../shared/datasets/T91")
    p.add_argument("--set5", default="../shared/datasets/Set5")
    p.add_argument("--patches", type=int, default=8192, help="patches per epoch")
    p.add_argument("--max-epochs", type=int, default=60)
    p.add_argument("--run-dir", default="runs/bench")
    args = p.parse_args()
    to_psnr(args) if args.to_psnr else throughput(args)


if __name__ == "__main__":
    main()
