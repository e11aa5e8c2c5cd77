"""Points and keypoints ⇄ coordinate tokens, with the box presets' quantisation (marked points
of the relative-depth tasks, AURORA paper §3).

Axis legend: ``B`` images, ``N`` points per image (a keypoint set is one image's points),
``T`` tokens per point (2, or 1 grid cell).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from perceptok.coordinates.config import CoordinateConfig
from perceptok.coordinates.outputs import CanvasSize
from perceptok.coordinates.tokenizer import CoordinateTokenizer
from perceptok.coordinates.validate import as_float_array, check_finite, check_range, normalise
from perceptok.registry import register_tokenizer


@dataclasses.dataclass(frozen=True)
class PointTokenizerConfig(CoordinateConfig):
    """Config of ``PointTokenizer``; the fields are those of ``CoordinateConfig``."""


@register_tokenizer("points")
class PointTokenizer(CoordinateTokenizer):
    """Points ``(N, 2)`` as x, y ⇄ coordinate tokens.

    >>> tok = PointTokenizer.from_preset("aurora")
    >>> tok.to_text(tok.encode([[168, 84]], canvas_size=(336, 336)))
    '(<PIXEL_168>,<PIXEL_84>)'
    """

    config_class = PointTokenizerConfig
    points_per_item = 1
    item_kind = "point"
    input_width = 2

    def _read(self, points: Any, canvas_size: CanvasSize | None, name: Callable[[int], str]) -> tuple[np.ndarray, CanvasSize | None]:
        t = as_float_array(points, 2, "point")
        check_finite(t, name)
        return t, canvas_size

    def _to_points(self, points: np.ndarray, canvas: np.ndarray | None, clip: bool, name: Callable[[int], str]) -> np.ndarray:
        return check_range(normalise(points.reshape(-1, 1, 2), canvas), clip, canvas, name)  # (M, 1, 2)

    def _items_from_points(self, points: np.ndarray) -> np.ndarray:
        return points.reshape(len(points), 2).astype(np.float32)  # (N, 1, 2) -> (N, 2)
