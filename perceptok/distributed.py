"""Where this process stands under ``torchrun`` / ``accelerate launch``: its rank among the
processes, and the accelerator that is its own."""

from __future__ import annotations

import os

import torch


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the number of processes, from torchrun / accelerate's environment."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def local_device(device: str | torch.device | None) -> torch.device:
    """``device`` (None: the CPU), with an accelerator named without an index ("cuda") taken as
    this process's own under torchrun / accelerate (``LOCAL_RANK``): each rank on its GPU, not
    every rank on the first."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    if device.type != "cpu" and device.index is None and "LOCAL_RANK" in os.environ:
        device = torch.device(device.type, int(os.environ["LOCAL_RANK"]))
    return device
