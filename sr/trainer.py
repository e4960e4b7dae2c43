"""A training run: optimisation steps, validation, checkpoints, records, resume.

A run lives in runs/x<scale>-<time>/:
    last.pt        resumable state after the latest epoch or interruption
    best.pt        the same, at the best validation PSNR so far
    metrics.jsonl  one JSON record per epoch
    tensorboard/   event files, when the tensorboard package is installed
Both .pt files load with torch.load(..., weights_only=True).

Exact resume: an epoch's patches, order and augmentations come from generators
seeded by (seed, epoch) and the learning rate is a function of the step, so the
state to save is the weights, Adam's moments and the position (epoch, step).
"""

import json
import math
import signal
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from sr import distributed
from sr.checkpoint import save_checkpoint
from sr.cli import STOP_SIGNALS, ignore_interrupts, naming
from sr.errors import UserError
from sr.training import ValidRegion, augment, epoch_plan, lr_factor, validation_psnr


class StopRequest:
    """Set by Ctrl-C (SIGINT) or SIGTERM; the loop checks it between steps."""

    def __init__(self):
        self.requested = False

    def __enter__(self):
        try:
            self._previous = [signal.signal(s, self._handle) for s in STOP_SIGNALS]
        except ValueError:  # not the main thread: no handler
            self._previous = []
        return self

    def _handle(self, signum, frame):
        if self.requested:  # a second Ctrl-C stops at once (and a third is ignored)
            ignore_interrupts()
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        if self.requested and self._previous:   # stopping: no Ctrl-C into the exit
            ignore_interrupts()
            return
        for s, handler in zip(STOP_SIGNALS, self._previous):
            signal.signal(s, handler)


class Trainer:
    """Runs config["epochs"] epochs of Adam with warm-up + cosine learning rate.

    config: plain training settings (epochs, batch, lr, seed, scale, ...), stored
    in every checkpoint. source: PatchFolder or ImageCrops. val: HeldOutPictures
    (scored whole) or PatchSet (a gen_samples.py folder's held-out patches)."""

    def __init__(self, model, config: dict, source, val, device: str, run_dir: Path,
                 dist=None, log=print):
        self.model, self.config, self.source, self.val = model, config, source, val
        self.device, self.run_dir, self.log = device, Path(run_dir), log
        self.dist = dist or distributed.Dist()
        self.batch = int(config["batch"])
        self.steps_per_epoch = max(1, len(source) // self.batch)  # drop a partial batch
        self.total_steps = self.steps_per_epoch * int(config["epochs"])
        # On CUDA: bfloat16 autocast (no loss scaling needed), channels-last
        # tensors, which the cuDNN convolution kernels prefer, and Adam as one kernel.
        self.cuda = str(device).startswith("cuda")
        self.optimizer = torch.optim.Adam(model.parameters(), lr=config["lr"],
                                          fused=self.cuda or None)
        if self.cuda:
            model.to(memory_format=torch.channels_last)
            torch.backends.cudnn.benchmark = True  # patch shapes never change: time once
        net = ValidRegion(model)
        self.net = DistributedDataParallel(net) if self.dist.active else net
        self.epoch, self.step_in_epoch, self.step = 1, 0, 0
        self.best_psnr, self.history = -math.inf, []
        self.writer = None   # TensorBoard's, made by the first record() (False: not installed)

    # ---- checkpoints -------------------------------------------------------
    def state(self) -> dict:
        return {"optimizer": self.optimizer.state_dict(),
                "progress": {"epoch": self.epoch, "step_in_epoch": self.step_in_epoch,
                             "step": self.step},
                "best_psnr": self.best_psnr, "seed": self.config["seed"],
                "data_hash": self.source.hash, "rng": {"torch": torch.get_rng_state()},
                "history": self.history}

    def load_state(self, ckpt: dict) -> None:
        self.optimizer.load_state_dict(ckpt["optimizer"])
        progress = ckpt["progress"]
        self.epoch, self.step_in_epoch = progress["epoch"], progress["step_in_epoch"]
        self.step, self.best_psnr = progress["step"], ckpt["best_psnr"]
        self.history = list(ckpt.get("history", []))
        torch.set_rng_state(ckpt["rng"]["torch"])

    def save(self, name: str) -> None:
        path = self.run_dir / f"{name}.pt"
        if self.dist.main:
            with naming(path):
                save_checkpoint(path, self.model, self.config["scale"], train=self.config,
                                overwrite=True, extra=self.state())

    # ---- records -----------------------------------------------------------
    def record(self, entry: dict) -> None:
        self.history.append(entry)
        if not self.dist.main:
            return
        with open(self.run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(entry) + "\n")
        if self.writer is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:   # the tensorboard package is not installed
                self.writer = False
            else:
                self.writer = SummaryWriter(str(self.run_dir / "tensorboard"))
        if self.writer:
            for key in ("loss", "val_psnr", "val_psnr_bicubic", "lr"):
                self.writer.add_scalar(key, entry[key], entry["step"])
            self.writer.flush()

    # ---- the loop ----------------------------------------------------------
    def train_step(self, x, t) -> torch.Tensor:
        """One Adam step on (N, 1, P, P) pairs, for the MSE of the valid output (N, 1,
        P-2r, P-2r) against t's centre; the loss as a 0-d tensor (not synced)."""
        for group in self.optimizer.param_groups:
            group["lr"] = self.config["lr"] * lr_factor(self.step, self.total_steps)
        if self.cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        r = self.model.radius
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.cuda):
            loss = F.mse_loss(self.net(x), t[:, :, r:t.shape[2] - r, r:t.shape[3] - r])
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.step += 1
        return loss.detach()  # a tensor: reading it would wait for the GPU every step

    def run_epoch(self, stop: StopRequest, stop_after: int | None) -> bool:
        """Train the rest of the current epoch; False if stopped part-way."""
        epoch_start = time.perf_counter()
        x_all, t_all = self.source.epoch(self.epoch, self.device)  # (N, 1, P, P) each
        order, turns, flips = epoch_plan(len(x_all), self.batch, self.config["seed"], self.epoch)
        order = order.to(self.device)
        losses, start = [], time.perf_counter()
        with tqdm(total=self.steps_per_epoch, initial=self.step_in_epoch, leave=False,
                  desc=f"epoch {self.epoch}/{self.config['epochs']}", unit="step",
                  dynamic_ncols=True, disable=None if self.dist.main else True) as bar:
            for s in range(self.step_in_epoch, self.steps_per_epoch):
                idx = order[s * self.batch:(s + 1) * self.batch][self.dist.rank::self.dist.world]
                x = augment(x_all[idx], int(turns[s]), bool(flips[s]))
                t = augment(t_all[idx], int(turns[s]), bool(flips[s]))
                losses.append(self.train_step(x, t))
                self.step_in_epoch = s + 1
                bar.update(1)
                if s % 50 == 0:
                    bar.set_postfix(loss=f"{losses[-1].item():.2e}")
                halt = stop.requested or (stop_after is not None and self.step >= stop_after)
                if distributed.any_true(halt, self.dist, self.device) \
                        and self.step_in_epoch < self.steps_per_epoch:
                    return False
        self.finish_epoch(losses, time.perf_counter() - start, epoch_start)
        return not (stop.requested or (stop_after is not None and self.step >= stop_after))

    def validate(self) -> tuple[float, float, str]:
        """(model PSNR, bicubic PSNR, text for the log) on the held-out data; only
        the main process validates, the others get NaN."""
        ours, bicubic = validation_psnr(self.model, self.val) if self.dist.main \
            else (float("nan"), float("nan"))
        return ours, bicubic, (f"val PSNR {ours:.2f} dB (bicubic {bicubic:.2f}, "
                               f"{ours - bicubic:+.2f})")

    def finish_epoch(self, losses, seconds: float, epoch_start: float) -> None:
        """Validate, record, write last (and best), go to the next epoch.  seconds: the steps
        alone; wall_seconds adds crops and validation (tools/device-train.sh's budget)."""
        loss = torch.stack(losses).mean().item() if losses else float("nan")
        # the weights are NaN from here on: say so now, not when publishing them fails
        if losses and not math.isfinite(loss):
            raise UserError(f"training diverged in epoch {self.epoch} (loss {loss}); "
                            f"start again with a lower --lr than {self.config['lr']:g}")
        ours, bicubic, text = self.validate()
        patches = self.steps_per_epoch * self.batch
        entry = {"epoch": self.epoch, "step": self.step, "loss": loss,
                 "val_psnr": ours, "val_psnr_bicubic": bicubic,
                 "lr": self.config["lr"] * lr_factor(self.step - 1, self.total_steps),
                 "seconds": seconds, "patches_per_second": patches / max(seconds, 1e-9),
                 "wall_seconds": time.perf_counter() - epoch_start}
        self.record(entry)
        self.log(f"epoch {self.epoch:3d}/{self.config['epochs']}  loss {entry['loss']:.3e}  "
                 f"{text}  {seconds:.1f}s")
        is_best = ours > self.best_psnr
        self.best_psnr = max(self.best_psnr, ours)   # NaN (not the main process): unchanged
        self.epoch, self.step_in_epoch = self.epoch + 1, 0
        self.save("last")
        if is_best:
            self.save("best")
        distributed.barrier(self.dist)

    def score_start(self) -> float:
        """Score a fine-tune's (or --init's) starting weights as the best so far: a run
        whose epochs all score lower publishes them unchanged, never a worse model."""
        ours, _, text = self.validate()
        self.best_psnr = ours if math.isfinite(ours) else -math.inf
        self.save("best")
        self.log(f"starting weights: {text}")
        return ours

    def run(self, stop_after: int | None = None) -> bool:
        """Train to the end (True) or until Ctrl-C / stop_after steps (False); either
        way last.pt holds a state that resumes exactly."""
        if self.dist.main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self.model.train()
        try:
            with StopRequest() as stop:
                while self.epoch <= self.config["epochs"]:
                    if not self.run_epoch(stop, stop_after):
                        if self.step_in_epoch:  # part-way through an epoch
                            self.save("last")
                        return self.epoch > self.config["epochs"]
            return True
        finally:   # stopped, failed or done: TensorBoard's last events reach the disk
            if self.writer:
                self.writer.close()
                self.writer = None
