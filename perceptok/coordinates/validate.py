"""Turning user coordinates into validated, normalised float64 tensors."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch


def as_float_tensor(x: Any, width: int, what: str) -> torch.Tensor:
    """``x`` as a ``(N, width)`` float64 tensor; an empty sequence is ``(0, width)``."""
    if isinstance(x, torch.Tensor):
        t = x.detach().to("cpu", torch.float64)
    else:
        try:
            t = torch.as_tensor(np.asarray(x, dtype=np.float64))
        except (TypeError, ValueError) as err:
            raise TypeError(f"{what} must be numbers shaped (N, {width}); could not read {type(x).__name__}: {err}") from err
    if t.numel() == 0:
        return t.reshape(0, width)
    if t.ndim != 2 or t.shape[1] != width:
        raise ValueError(
            f"{what} must have shape (N, {width}) for one image, got {tuple(t.shape)}; "
            f"wrap a single item as [[...]] and pass a batch as a list of (N, {width}) arrays"
        )
    return t


def check_finite(t: torch.Tensor, what: str) -> None:
    bad = ~torch.isfinite(t).all(-1)
    if bad.any():
        i = int(bad.nonzero()[0])
        raise ValueError(f"{what} {i} has NaN or infinite coordinates {t[i].tolist()}; drop or fix it")


def check_canvas(canvas_size: Any) -> tuple[float, float] | None:
    """``canvas_size`` as ``(H, W)`` floats, refusing anything but two positive finite numbers."""
    if canvas_size is None:
        return None
    try:
        h, w = (float(v) for v in canvas_size)
    except (TypeError, ValueError):
        raise ValueError(f"canvas_size must be (H, W), two numbers, got {canvas_size!r}") from None
    if not (math.isfinite(h) and math.isfinite(w) and h > 0 and w > 0):
        raise ValueError(f"canvas_size must be (H, W) with positive finite sides, got {canvas_size!r}")
    return h, w


def normalise(xy: torch.Tensor, canvas_size: tuple[int, int] | None, what: str) -> torch.Tensor:
    """Divide ``(..., 2)`` x, y pixel coordinates by the canvas ``(H, W)``."""
    canvas = check_canvas(canvas_size)
    if canvas is None:
        return xy
    h, w = canvas
    return xy / torch.tensor([w, h], dtype=xy.dtype)


def check_range(xy: torch.Tensor, clip: bool, canvas_size: tuple[int, int] | None, what: str) -> torch.Tensor:
    """Refuse (or, with ``clip``, clamp) normalised ``(N, P, 2)`` coordinates outside [0, 1]."""
    eps = 1e-9
    outside = ((xy < -eps) | (xy > 1 + eps)).flatten(1).any(-1)
    if outside.any() and not clip:
        i = int(outside.nonzero()[0])
        where = f"the {canvas_size[0]}×{canvas_size[1]} (H×W) image" if canvas_size else "[0, 1]"
        hint = "" if canvas_size else "; for pixel coordinates pass canvas_size=(H, W)"
        raise ValueError(
            f"{what} {i} lies outside {where}: normalised {xy[i].flatten().tolist()}{hint}; "
            "pass clip=True to clip onto the border"
        )
    return xy.clamp(0.0, 1.0)
