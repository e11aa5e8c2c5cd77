"""Conversion of point text between conventions (e.g. Molmo ⇄ Qwen2.5-VL ⇄ AURORA)."""

from __future__ import annotations

from collections.abc import Sequence

from perceptok.coordinates.convert import convert_text
from perceptok.points.tokenizer import PointTokenizer


def convert(
    text: str | Sequence[str],
    src: str | PointTokenizer,
    dst: str | PointTokenizer,
    canvas_size: tuple[int, int] | None = None,
    strict: bool = True,
) -> str | list[str]:
    """Rewrite point text (one string or a batch) from ``src``'s convention into ``dst``'s;
    labels and counts are kept, and each coordinate moves by at most half a bin of each."""
    def tok(spec: str | PointTokenizer) -> PointTokenizer:
        return spec if isinstance(spec, PointTokenizer) else PointTokenizer.from_preset(spec)

    return convert_text(text, tok(src), tok(dst), canvas_size, strict)
