"""How depth batches are cut: inputs as tensors where they are, maps grouped by a key (shape, code
table, grid) in chunks of at most ``CHUNK`` for one network call each."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from perceptok.io.depth_files import DepthCodes, same_table

CHUNK = 64  # maps per network call


def table_keys(maps: Sequence[Any]) -> list[int]:
    """A key per map: -1 for value maps, else the index of its code table among the distinct ones."""
    tables: list[torch.Tensor] = []
    keys = []
    for m in maps:
        if not isinstance(m, DepthCodes):
            keys.append(-1)
            continue
        k = next((j for j, t in enumerate(tables) if same_table(t, m.table)), len(tables))
        tables += [m.table] if k == len(tables) else []
        keys.append(k)
    return keys


def as_tensor(x: Any) -> torch.Tensor:
    """A tensor stays where it is; arrays and lists become CPU tensors (never the default device)."""
    return x if isinstance(x, torch.Tensor) else torch.as_tensor(x, device="cpu")


def groups(keys: list, chunk: int) -> list[tuple[Any, list[int]]]:
    """Indices of equal keys, in chunks of at most ``chunk``, each chunk with its key."""
    by_key: dict[Any, list[int]] = {}
    for i, key in enumerate(keys):
        by_key.setdefault(key, []).append(i)
    return [(key, index[s : s + chunk]) for key, index in by_key.items() for s in range(0, len(index), chunk)]
