"""What the coordinate tokenizers return: ``CoordinateEncoding`` (ids, counts, labels), ids padded
with ``PAD_ID`` for images with fewer items, and numpy arrays handed back as torch tensors or as
they are (``return_tensors``)."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import numpy as np

from perceptok.base import TokenizerOutput

PAD_ID = -1  # fills the rows of images with fewer items than the largest in a batch

CanvasSize = tuple[int, int]
ReturnTensors = Literal["pt", "np"]


def as_return_type(a: np.ndarray, return_tensors: ReturnTensors) -> Any:
    """``a`` as a torch tensor (``"pt"``, sharing its memory) or unchanged (``"np"``)."""
    if return_tensors == "np":
        return a
    if return_tensors != "pt":
        raise ValueError(f"return_tensors must be 'pt' (torch) or 'np' (numpy), got {return_tensors!r}")
    import torch

    return torch.from_numpy(a if a.flags.c_contiguous else a.copy())


@dataclasses.dataclass
class CoordinateEncoding(TokenizerOutput):
    """Encoded boxes or points.

    Attributes:
        ids: ``(N, T)`` for one image, ``(B, N, T)`` for a batch (padded with ``PAD_ID``); int64,
            a torch tensor or (``return_tensors="np"``) a numpy array.
        counts: items per image, ``()`` or ``(B,)``; counting questions read it.
        labels: one optional label per item (``list``), or one such list per image in a batch.
    """

    counts: Any
    labels: list[Any] | None = None


def encoding(ids: np.ndarray, counts: np.ndarray, labels: list[Any] | None,
             return_tensors: ReturnTensors) -> CoordinateEncoding:
    """The encoding of numpy ``ids`` and ``counts``, each as ``return_tensors`` asks."""
    return CoordinateEncoding(ids=as_return_type(ids, return_tensors), counts=as_return_type(counts, return_tensors),
                              labels=labels)


def padded(flat: np.ndarray, counts: np.ndarray, width: int) -> np.ndarray:
    """``(sum N, T)`` items of consecutive images → ``(B, max N, T)`` ids padded with ``PAD_ID``."""
    if len(counts) and (counts == counts[0]).all():
        return flat.reshape(len(counts), int(counts[0]), width)
    ids = np.full((len(counts), int(counts.max(initial=0)), width), PAD_ID, dtype=np.int64)
    ids[np.arange(ids.shape[1]) < counts[:, None]] = flat
    return ids
