"""Turning user coordinates into validated, normalised float64 arrays (numpy: the coordinate
tokenizers import no torch unless a caller asks for tensors)."""

from __future__ import annotations

import math
import sys
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


def check_finite(a: np.ndarray, what: str) -> None:
    bad = ~np.isfinite(a).all(-1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{what} {i} has NaN or infinite coordinates {a[i].tolist()}; drop or fix it")


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


def normalise(xy: np.ndarray, canvas_size: tuple[int, int] | None, what: str) -> np.ndarray:
    """Divide ``(..., 2)`` x, y pixel coordinates by the canvas ``(H, W)``."""
    canvas = check_canvas(canvas_size)
    if canvas is None:
        return xy
    h, w = canvas
    return xy / np.array([w, h])


def check_range(xy: np.ndarray, clip: bool, canvas_size: tuple[int, int] | None, what: str) -> np.ndarray:
    """Refuse (or, with ``clip``, clamp) normalised ``(N, P, 2)`` coordinates outside [0, 1]."""
    eps = 1e-9
    outside = ((xy < -eps) | (xy > 1 + eps)).any(axis=(1, 2))
    if outside.any() and not clip:
        i = int(np.flatnonzero(outside)[0])
        where = f"the {canvas_size[0]}×{canvas_size[1]} (H×W) image" if canvas_size else "[0, 1]"
        hint = "" if canvas_size else "; for pixel coordinates pass canvas_size=(H, W)"
        raise ValueError(
            f"{what} {i} lies outside {where}: normalised {xy[i].flatten().tolist()}{hint}; "
            "pass clip=True to clip onto the border"
        )
    return np.clip(xy, 0.0, 1.0)
