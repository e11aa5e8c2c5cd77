"""Bounding boxes ⇄ coordinate tokens, in the conventions of AURORA, PaliGemma, Florence-2,
Kosmos-2 and Qwen2-VL (``REFERENCE.md``; AURORA paper §3, "box tokens").

Axis legend: ``B`` images, ``N`` boxes per image, ``T`` tokens per box (4, or 2 grid cells).
Image sizes are ``canvas_size=(H, W)``, torchvision's convention.
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

BOX_FORMATS = ("xyxy", "xywh", "cxcywh")


@dataclasses.dataclass(frozen=True)
class BoxTokenizerConfig(CoordinateConfig):
    """Config of ``BoxTokenizer``; the fields are those of ``CoordinateConfig``."""


def _check_format(format: str) -> str:
    if format not in BOX_FORMATS:
        raise ValueError(f"box format must be one of {BOX_FORMATS}, got {format!r}")
    return format


def box_convert(boxes: np.ndarray, src: str, dst: str) -> np.ndarray:
    """``(..., 4)`` boxes between "xyxy", "xywh" and "cxcywh" (torchvision's definitions, in numpy,
    without importing torchvision or torch, which take seconds)."""
    lo, hi = boxes[..., :2], boxes[..., 2:]
    if src == "xywh":
        lo, hi = lo, lo + hi
    elif src == "cxcywh":
        lo, hi = lo - hi / 2, lo + hi / 2
    if dst == "xywh":
        lo, hi = lo, hi - lo
    elif dst == "cxcywh":
        lo, hi = (lo + hi) / 2, hi - lo
    return np.concatenate([lo, hi], axis=-1)


def _is_bounding_boxes(x: Any) -> bool:
    """A ``torchvision.tv_tensors.BoundingBoxes`` (checked without importing torchvision)."""
    return type(x).__name__ == "BoundingBoxes" and type(x).__module__.startswith("torchvision")


@register_tokenizer("boxes")
class BoxTokenizer(CoordinateTokenizer):
    """Boxes ⇄ coordinate tokens.

    >>> tok = BoxTokenizer.from_preset("aurora")
    >>> tok.to_text(tok.encode([[0, 0, 168, 336]], canvas_size=(336, 336)))
    '(<PIXEL_0>,<PIXEL_0>,<PIXEL_168>,<PIXEL_335>)'
    """

    config_class = BoxTokenizerConfig
    points_per_item = 2
    item_kind = "box"
    input_width = 4

    def _read(self, boxes: Any, canvas_size: CanvasSize | None, name: Callable[[int], str],
              format: str = "xyxy") -> tuple[np.ndarray, CanvasSize | None]:
        if _is_bounding_boxes(boxes):
            format = boxes.format.name.lower()
            if format not in BOX_FORMATS:
                raise ValueError(f"BoundingBoxes in format {boxes.format.name} are not supported; use one of {BOX_FORMATS}")
            if canvas_size is not None and tuple(canvas_size) != tuple(boxes.canvas_size):
                raise ValueError(f"canvas_size {tuple(canvas_size)} disagrees with the BoundingBoxes' {tuple(boxes.canvas_size)}")
            canvas_size = tuple(boxes.canvas_size)
        t = as_float_array(boxes, 4, "box")
        check_finite(t, name)
        return (box_convert(t, _check_format(format), "xyxy") if format != "xyxy" else t), canvas_size

    def _to_points(self, boxes: np.ndarray, canvas: np.ndarray | None, clip: bool, name: Callable[[int], str]) -> np.ndarray:
        xy = normalise(boxes.reshape(-1, 2, 2), canvas)  # (M, 2 corners, x y)
        self._check_extent(xy, boxes, "inverted or empty", name)
        xy = check_range(xy, clip, canvas, name)
        if clip:
            self._check_extent(xy, boxes, "outside the image, so clipping leaves it empty", name)
        return xy

    @staticmethod
    def _check_extent(xy: np.ndarray, raw: np.ndarray, why: str, name: Callable[[int], str]) -> None:
        size = xy[:, 1] - xy[:, 0]  # (M, 2): width, height
        bad = (size <= 0).any(-1)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"{name(i)} {raw[i].tolist()} (as x1 y1 x2 y2) is {why}: boxes need x2 > x1 and "
                "y2 > y1; check the box format (xyxy / xywh / cxcywh) and drop empty boxes"
            )

    def _items_from_points(self, points: np.ndarray, format: str = "xyxy") -> np.ndarray:
        """Decoded corners ``(N, 2, 2)`` → ``(N, 4)`` boxes in ``format`` (decode's keyword)."""
        xyxy = points.reshape(len(points), 4)
        return (box_convert(xyxy, "xyxy", _check_format(format)) if format != "xyxy" else xyxy).astype(np.float32)
