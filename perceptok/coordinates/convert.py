"""Rewriting coordinate text from one convention into another."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from perceptok.coordinates.tokenizer import CoordinateTokenizer


def convert_text(
    text: str | Sequence[str],
    src: CoordinateTokenizer,
    dst: CoordinateTokenizer,
    canvas_size: tuple[int, int] | None,
    strict: bool,
    prepare: Callable[[np.ndarray, tuple[int, int] | None], np.ndarray] = lambda items, _: items,
) -> str | list[str]:
    """Decode ``text`` (one string or a batch) with ``src`` onto the ``canvas_size=(H, W)`` image
    (the unit square if ``None``), ``prepare`` the items, and encode them with ``dst``; labels are
    kept. Pixel conventions (Qwen2.5-VL) need ``canvas_size``."""
    parsed = src.parse(text, strict=strict, return_tensors="np")
    decoded = src.decode(parsed.ids, canvas_size=canvas_size, return_tensors="np")
    if isinstance(text, str):
        ids = dst.encode(prepare(decoded, canvas_size), canvas_size=canvas_size, clip=True, return_tensors="np").ids
    else:
        ids = dst.encode([prepare(items, canvas_size) for items in decoded], canvas_size=canvas_size, clip=True,
                         return_tensors="np").ids
    return dst.to_text(ids, labels=parsed.labels)
