"""Bytes that autograd keeps for the backward pass: the activation memory a forward pass costs."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def saved_bytes(model: torch.nn.Module) -> Iterator[dict[int, int]]:
    """Within the block, every distinct storage autograd saves, ``model``'s parameters excepted:
    storage address → bytes (sum the values after the block)."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    kept: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            kept[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield kept
