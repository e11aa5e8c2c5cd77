"""Padding a depth map to a square, centred, with no-measurement pixels: the geometry of
LLaVA-1.5's ``pad`` image aspect, so that tokens describe the square image such a model sees.
One rule (``square_offset``) for maps here and for the images they go with."""

from __future__ import annotations

import dataclasses

import torch

from perceptok.io.depth_files import DepthCodes, DepthMap


def square_offset(w: int, h: int) -> tuple[int, int, int]:
    """``(x0, y0, side)``: where a ``w × h`` image sits, centred, on the ``side × side`` square
    (``side = max(w, h)``) it is padded to."""
    side = max(w, h)
    return (side - w) // 2, (side - h) // 2, side


def pad_square(depth: DepthMap | DepthCodes) -> DepthMap | DepthCodes:
    """``depth`` centred on a square of no-measurement pixels (itself when it is square). Codes
    stay codes where their table has a no-measurement code (NaN), else they are expanded."""
    h, w = (depth.codes if isinstance(depth, DepthCodes) else depth.values).shape
    x0, y0, side = square_offset(w, h)
    if w == h:
        return depth
    if isinstance(depth, DepthCodes):
        blank = torch.isnan(depth.table).nonzero()
        if not len(blank):
            return pad_square(depth.to_map())
        codes = depth.codes.new_full((side, side), int(blank[0]))
        codes[y0 : y0 + h, x0 : x0 + w] = depth.codes
        return dataclasses.replace(depth, codes=codes)
    values = depth.values.new_full((side, side), float("nan"))
    valid = depth.valid.new_zeros((side, side))
    values[y0 : y0 + h, x0 : x0 + w], valid[y0 : y0 + h, x0 : x0 + w] = depth.values, depth.valid
    return dataclasses.replace(depth, values=values, valid=valid)
