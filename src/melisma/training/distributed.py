"""Data-parallel training over processes started by ``torchrun`` (one machine or many), with torch.distributed.

Every process holds the whole model; each draws its own share of the batch (its own data-order and noise
generator, seeded ``seed + rank``), computes gradients, and the gradients are averaged across processes with
one all-reduce per update before the optimiser step (what DistributedDataParallel does, done by hand because a
step calls the network through several entry points, not one ``forward``). Weights therefore stay identical on
every process; rank 0 alone validates, writes checkpoints, logs and the pack, and broadcasts its decisions
(validation figures, early stop, time limits, checkpoint times) so every process takes the same branch.

Without torchrun's environment (``WORLD_SIZE`` unset or 1) everything here is a no-op for one process.
The trainer runs on the CPU; the backend is gloo, or nccl where CUDA is available (each process then uses the GPU
of its ``LOCAL_RANK`` for the collectives alone, copying CPU tensors there and back: untested, no GPU in CI).
Waits for rank 0's one-off work (filling the feature cache) go through a second gloo group whose timeout is
hours, not the default 30 minutes, so a large dataset's extraction does not time the others out.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from melisma.errors import MelismaError


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (rank 0 of 1 when not distributed)."""

    rank: int = 0
    size: int = 1
    device: str = "cpu"  # where collectives run: "cpu" (gloo) or "cuda:N" (nccl)
    patient_group: Any = field(default=None, compare=False, repr=False)  # gloo, long timeout (see barrier)

    @property
    def active(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self, patient: bool = False) -> None:
        """Wait for every process; ``patient``: for as long as rank 0's one-off work takes (hours)."""
        if self.active:
            if patient and self.patient_group is not None:
                dist.barrier(group=self.patient_group)
            else:
                dist.barrier()

    def leave(self) -> None:
        """Wait until every process is done (rank 0 has written its files), then close the process group, so no
        process exits while another is still inside a collective (a gloo peer that vanishes mid-operation aborts
        the others)."""
        if self.active and dist.is_initialized():
            self.barrier(patient=True)
            dist.destroy_process_group()
            _PATIENT.clear()

    def _on_device(self, t: torch.Tensor) -> torch.Tensor:
        return t if self.device == "cpu" else t.to(self.device)

    def average_gradients(self, params: Iterable[torch.nn.Parameter]) -> None:
        """Mean of every parameter's gradient over the processes, in one flat all-reduce."""
        if not self.active:
            return
        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return
        flat = self._on_device(torch.cat([g.reshape(-1) for g in grads]))
        dist.all_reduce(flat)
        flat = flat.cpu() / self.size
        offset = 0
        for g in grads:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()

    def broadcast_weights(self, *nets: torch.nn.Module) -> None:
        """Rank 0's weights and buffers to every process (identical starts, whatever each built)."""
        if self.active:
            for net in nets:
                for t in net.state_dict().values():
                    moved = self._on_device(t)
                    dist.broadcast(moved, 0)
                    if moved is not t:
                        t.copy_(moved)

    def from_main(self, value: Any) -> Any:
        """Rank 0's ``value`` (any picklable object) on every process."""
        if not self.active:
            return value
        box = [value]
        dist.broadcast_object_list(box, 0)
        return box[0]

    def gather(self, value: Any) -> list[Any]:
        """Every process's ``value``, in rank order, on every process."""
        if not self.active:
            return [value]
        out: list[Any] = [None] * self.size
        dist.all_gather_object(out, value)
        return out


_PATIENT: dict[str, Any] = {}  # the long-timeout group, made once per process


def join_world() -> World:
    """Join the process group torchrun describes in the environment (RANK, WORLD_SIZE, MASTER_ADDR/PORT);
    ``World()`` for a single process. Safe to call twice. nccl where CUDA is available, else gloo."""
    size = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if size <= 1:
        return World()
    if not dist.is_available():
        raise MelismaError("WORLD_SIZE > 1 but this PyTorch has no torch.distributed")
    if not dist.is_initialized():
        missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
        if missing:
            raise MelismaError(f"WORLD_SIZE={size} but {', '.join(missing)} unset: start with torchrun")
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    device = f"cuda:{torch.cuda.current_device()}" if dist.get_backend() == "nccl" else "cpu"
    if "group" not in _PATIENT:
        _PATIENT["group"] = dist.new_group(backend="gloo", timeout=timedelta(hours=12))
    return World(dist.get_rank(), dist.get_world_size(), device, _PATIENT["group"])


def is_main_process() -> bool:
    """Whether this is rank 0 of a torchrun launch, or a single process (read from the environment, so it holds
    after the process group is closed)."""
    return int(os.environ.get("RANK", "0") or 0) == 0


def refuse_world(recipe: str) -> None:
    """MelismaError when started as several processes (torchrun): ``recipe`` trains on one process only, and
    N processes would each train their own copy."""
    size = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if size > 1:
        raise MelismaError(f"{recipe} trains on one process, not data-parallel: start it without torchrun "
                           f"(WORLD_SIZE={size})")
