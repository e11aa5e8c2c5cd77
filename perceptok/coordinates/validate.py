"""Turning user coordinates into validated, normalised float64 arrays (numpy: the coordinate
tokenizers import no torch unless a caller asks for tensors)."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


def is_torch_tensor(x: Any) -> bool:
    """Whether ``x`` is a torch tensor. Torch is looked up, never imported: where it is not
    loaded, ``x`` cannot be one of its tensors."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def as_numpy(x: Any) -> Any:
    """A torch tensor (on any device and of any dtype; floats become float64, exactly) as a numpy
    array; anything else unchanged."""
    if is_torch_tensor(x):
        x = x.detach().cpu()
        return (x.double() if x.dtype.is_floating_point else x).numpy()
    return x


def as_float_array(x: Any, width: int, what: str) -> np.ndarray:
    """``x`` as a ``(N, width)`` float64 array; an empty sequence is ``(0, width)``."""
    try:
        a = np.asarray(as_numpy(x), dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{what} must be numbers shaped (N, {width}); could not read {type(x).__name__}: {err}") from err
    if a.size == 0:
        return a.reshape(0, width)
    if a.ndim != 2 or a.shape[1] != width:
        raise ValueError(
            f"{what} must have shape (N, {width}) for one image, got {tuple(a.shape)}; "
            f"wrap a single item as [[...]] and pass a batch as a list of (N, {width}) arrays"
        )
    return a


def check_finite(a: np.ndarray, name: Callable[[int], str]) -> None:
    """Refuse rows of ``a`` ``(M, W)`` with a NaN or infinite value; ``name(i)`` names row ``i``."""
    bad = ~np.isfinite(a).all(-1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name(i)} has NaN or infinite coordinates {a[i].tolist()}; drop or fix it")


def check_canvas(canvas_size: Any) -> tuple[float, float] | None:
    """``canvas_size`` as ``(H, W)`` floats, refusing anything but two positive finite numbers."""
    if canvas_size is None:
        return None
    try:
        h, w = (float(v) for v in as_numpy(canvas_size))
    except (TypeError, ValueError):
        raise ValueError(f"canvas_size must be (H, W), two numbers, got {canvas_size!r}") from None
    if not (math.isfinite(h) and math.isfinite(w) and h > 0 and w > 0):
        raise ValueError(f"canvas_size must be (H, W) with positive finite sides, got {canvas_size!r}")
    return h, w


def item_canvases(canvases: Sequence[tuple[float, float] | None], counts: Sequence[int]) -> np.ndarray | None:
    """Each item's canvas ``(M, 2)`` (H, W) from its image's (checked ``check_canvas`` values) and
    the images' item counts; NaN for items of images without one (normalised input); None where
    no image has one."""
    if all(c is None for c in canvases):
        return None
    per_image = np.array([(math.nan, math.nan) if c is None else c for c in canvases], dtype=np.float64).reshape(-1, 2)
    return np.repeat(per_image, counts, axis=0)


def normalise(xy: np.ndarray, canvas: np.ndarray | None) -> np.ndarray:
    """Divide ``(M, P, 2)`` x, y pixel coordinates by each item's canvas ``(M, 2)`` (H, W; NaN: the
    item is normalised already)."""
    if canvas is None:
        return xy
    wh = np.where(np.isnan(canvas), 1.0, canvas)[:, None, ::-1]  # (M, 1, 2): W, H
    return xy / wh


def check_range(xy: np.ndarray, clip: bool, canvas: np.ndarray | None, name: Callable[[int], str]) -> np.ndarray:
    """Refuse (or, with ``clip``, clamp) normalised ``(M, P, 2)`` coordinates outside [0, 1];
    ``canvas`` as ``normalise`` takes it, ``name(i)`` names item ``i``."""
    eps = 1e-9
    outside = ((xy < -eps) | (xy > 1 + eps)).any(axis=(1, 2))
    if outside.any() and not clip:
        i = int(np.flatnonzero(outside)[0])
        pixels = canvas is not None and not np.isnan(canvas[i]).any()
        where = f"the {_side(canvas[i][0])}×{_side(canvas[i][1])} (H×W) image" if pixels else "[0, 1]"
        hint = "" if pixels else "; for pixel coordinates pass canvas_size=(H, W)"
        raise ValueError(
            f"{name(i)} lies outside {where}: normalised {xy[i].flatten().tolist()}{hint}; "
            "pass clip=True to clip onto the border"
        )
    return np.clip(xy, 0.0, 1.0)


def _side(v: float) -> int | float:
    """A canvas side as the user wrote it: 480, not 480.0."""
    return int(v) if float(v).is_integer() else v
