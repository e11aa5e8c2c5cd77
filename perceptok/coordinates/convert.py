"""Rewriting coordinate text from one convention into another."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from perceptok.coordinates.tokenizer import CoordinateTokenizer


def convert_text(
    text: str | Sequence[str],
    src: CoordinateTokenizer,
    dst: CoordinateTokenizer,
    canvas_size: tuple[int, int] | None,
    strict: bool,
    prepare: Callable[[torch.Tensor, tuple[int, int] | None], torch.Tensor] = lambda items, _: items,
) -> str | list[str]:
    """Decode ``text`` (one string or a batch) with ``src`` onto the ``canvas_size=(H, W)`` image
    (the unit square if ``None``), ``prepare`` the items, and encode them with ``dst``; labels are
    kept. Pixel conventions (Qwen2.5-VL) need ``canvas_size``."""
    parsed = src.parse(text, strict=strict)
    decoded = src.decode(parsed.ids, canvas_size=canvas_size)
    if isinstance(text, str):
        ids = dst.encode(prepare(decoded, canvas_size), canvas_size=canvas_size, clip=True).ids
    else:
        ids = dst.encode([prepare(items, canvas_size) for items in decoded], canvas_size=canvas_size, clip=True).ids
    return dst.to_text(ids, labels=parsed.labels)
