"""Conversion of box text between conventions (e.g. AURORA ⇄ PaliGemma ⇄ Gemini)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from perceptok.boxes.tokenizer import BoxTokenizer
from perceptok.coordinates.convert import convert_text


def _tokenizer(spec: str | BoxTokenizer) -> BoxTokenizer:
    return spec if isinstance(spec, BoxTokenizer) else BoxTokenizer.from_preset(spec)


def convert(
    text: str | Sequence[str],
    src: str | BoxTokenizer,
    dst: str | BoxTokenizer,
    canvas_size: tuple[int, int] | None = None,
    strict: bool = True,
) -> str | list[str]:
    """Rewrite box text (one string or a batch) from ``src``'s convention into ``dst``'s; labels
    and counts are kept.

    ``src`` and ``dst`` are preset names or tokenizers. Boxes are decoded onto the
    ``canvas_size=(H, W)`` image (the unit square if ``None``; Qwen2.5-VL's pixels need it) and
    encoded again, so each coordinate moves by at most half a ``src`` bin plus half a ``dst``
    bin. Boxes that become empty in a coarser ``dst`` grid are widened to one bin rather than
    dropped, so counts are preserved.
    """
    return convert_text(text, _tokenizer(src), _tokenizer(dst), canvas_size, strict, _widen)


def _widen(boxes: np.ndarray, canvas_size: tuple[int, int] | None) -> np.ndarray:
    """Give zero-area ``(N, 4)`` xyxy boxes (a one-cell Kosmos-2 box decodes to a point) a tiny extent."""
    h, w = canvas_size if canvas_size is not None else (1.0, 1.0)
    eps = 1e-6 * np.array([w, h], dtype=np.float64)
    boxes = boxes.astype(np.float64)
    lo = np.maximum(np.minimum(boxes[:, :2], boxes[:, 2:] - eps), 0)
    hi = np.maximum(boxes[:, 2:], lo + eps)
    return np.concatenate([lo, hi], axis=1)
