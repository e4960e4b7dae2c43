"""DistributedDataParallel set-up for runs started by torchrun.

torchrun sets RANK, LOCAL_RANK and WORLD_SIZE; without them everything here is
a no-op and training runs in one process.  Backend: NCCL on CUDA, gloo on CPU.
"""

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class Dist:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        """True in the one process that writes checkpoints, logs and output."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def init(device: str) -> tuple[Dist, str]:
    """Join the process group if launched by torchrun; returns (Dist, device)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist(), device
    rank = int(os.environ["RANK"])
    if device.startswith("cuda"):
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return Dist(rank, world), device


def any_true(flag: bool, d: Dist, device: str) -> bool:
    """True on every process if flag is true on any (e.g. one received Ctrl-C)."""
    if not d.active:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def barrier(d: Dist) -> None:
    if d.active:
        dist.barrier()


def shutdown(d: Dist) -> None:
    if d.active and dist.is_initialized():
        dist.destroy_process_group()
