"""Hole filling and resizing of relative depth maps ``(B, C, H, W)``, and the tokenizer's network
input made with them (``model_input``: on a CPU one compiled loop a map, ``perceptok.depth.fill_kernel``;
``model_input_tensors``, its definition, everywhere else and wherever gradients flow). ``resize``
also serves training crops and decoded maps.

Axis legend: ``B`` maps, ``C`` channels, ``H, W`` pixels.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from perceptok.depth.masks import every, weights


def _sum2(x: torch.Tensor) -> torch.Tensor:
    """Sums of 2×2 cells of ``(B, C, H, W)`` (odd sizes padded with zeros): ``(B, C, ⌈H/2⌉, ⌈W/2⌉)``.
    Strided adds, about three times faster than ``avg_pool2d`` on CPUs."""
    h, w = x.shape[-2:]
    if h % 2 or w % 2:
        x = F.pad(x, (0, w % 2, 0, h % 2))
    rows = x[..., 0::2, :] + x[..., 1::2, :]
    return rows[..., 0::2] + rows[..., 1::2]


def fill_holes(x: torch.Tensor, valid: torch.Tensor, sync: bool = False, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Push-pull fill of ``(B, 1, H, W)`` maps that are 0 where not ``valid`` (as
    ``normalize_depth`` leaves them): each hole takes the average of the measurements of the
    finest 2ⁿ×2ⁿ cell around it that has any, blended bilinearly between cells; a map with no
    measurement is 0. The pyramid goes down to 1×1, so nothing waits on the device;
    ``sync=True`` stops at the first level where every cell has a measurement (the same
    result, cheaper, one host sync a level). ``weight``: ``valid`` as ``x``'s dtype, where the
    caller has it. An empty batch comes back as it is."""
    if x.numel() == 0:
        return x
    levels = [(x, weights(valid, x.dtype) if weight is None else weight)]  # (sum of measured values, count of measurements) per cell
    while max(levels[-1][0].shape[-2:]) > 1 and (len(levels) == 1 or not (sync and bool((levels[-1][1] > 0).all()))):
        xs, ws = levels[-1]
        levels.append((_sum2(xs), _sum2(ws)))
    xs, ws = levels[-1]
    filled = torch.where(ws > 0, xs / ws.clamp_min(1), torch.zeros_like(xs))
    if len(levels) == 1:
        return torch.where(valid, x, filled)
    for xs, ws in reversed(levels[1:-1]):
        up = _bilinear(filled, xs.shape[-2:], antialias=False)
        filled = torch.where(ws > 0, xs / ws.clamp_min(1), up)
    # full resolution: measured pixels keep their value, so only the holes need the coarser level
    return torch.where(valid, x, _bilinear(filled, x.shape[-2:], antialias=False))


@functools.lru_cache(maxsize=64)
def _axis_weights(n_in: int, n_out: int, antialias: bool, dtype: torch.dtype) -> torch.Tensor:
    """``(n_out, n_in)`` CPU weights of ``F.interpolate``'s bilinear resize along one axis (half-pixel
    centres), read off by resizing an identity with it: row ``i`` weighs the inputs of output ``i``."""
    eye = torch.eye(n_in, dtype=dtype, device="cpu").view(n_in, 1, 1, n_in)
    out = F.interpolate(eye, size=(1, n_out), mode="bilinear", align_corners=False, antialias=antialias)
    return out.view(n_in, n_out).T.contiguous()


# The dense weights do (input ÷ output) times the work of F.interpolate's taps along an axis when
# shrinking, input ÷ 2 when growing; BLAS pays that back where the smaller side is at most this.
MATMUL_SIDE = 128


def _bilinear(x: torch.Tensor, size: tuple[int, int], antialias: bool) -> torch.Tensor:
    """``F.interpolate(x, size, mode="bilinear", align_corners=False, antialias=antialias)`` of
    ``(B, C, H, W)``. Float maps on a CPU whose smaller side, in or out, is at most ``MATMUL_SIDE``
    on both axes (token grids, training crops) go through two matrix products with its very
    weights (``_axis_weights``): 1.5–10× faster than its kernels there, equal within two ulps."""
    *lead, h, w = x.shape
    if (x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64)
            or max(min(h, size[0]), min(w, size[1])) > MATMUL_SIDE):
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=antialias)
    out = x.reshape(-1, h, w)  # (B·C, H, W)
    if w != size[1]:
        out = out @ _axis_weights(w, size[1], antialias, x.dtype).T
    if h != size[0]:
        out = _axis_weights(h, size[0], antialias, x.dtype) @ out
    return out.view(*lead, *size)


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of ``(B, C, H, W)``, anti-aliased when shrinking. An empty batch is not
    handed to the kernel: CUDA's anti-aliased one fails on it ("invalid argument")."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    if x.numel() == 0:
        return x.new_empty((*x.shape[:-2], *size))
    return _bilinear(x, size, antialias=True)


def compiled_route(x: torch.Tensor) -> bool:
    """Whether ``perceptok.depth.fill_kernel`` serves maps like ``x``: on a CPU, float32 or
    float64, carrying no gradient."""
    return x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and not x.requires_grad


def model_input(rel: torch.Tensor, valid: torch.Tensor, size: tuple[int, int], holes: bool | None = None) -> torch.Tensor:
    """Network input ``(B, 2, *size)`` from relative maps (0 where invalid) and validity masks
    ``(B, 1, H, W)``: holes filled, resized, scaled to [-1, 1], with the resized validity as a
    second channel. ``holes``: whether any pixel is invalid, where the caller knows (None: look,
    one device sync). On a CPU, float32 and float64 maps that carry no gradient go through one
    compiled loop a map (``perceptok.depth.fill_kernel``, 2–3× faster; the same numbers within
    float rounding); ``model_input_tensors`` is the definition, and runs everywhere else."""
    if compiled_route(rel) and valid.shape == rel.shape and rel.shape[-1] > 0 and rel.shape[-2] > 0:
        from perceptok.depth.fill_kernel import model_input_cpu  # numba, imported on first use

        return model_input_cpu(rel, valid, size)
    return model_input_tensors(rel, valid, size, holes)


def model_input_tensors(rel: torch.Tensor, valid: torch.Tensor, size: tuple[int, int],
                        holes: bool | None = None) -> torch.Tensor:
    """``model_input`` in tensor operations, on any device and dtype."""
    look = holes is None  # the caller already waits on the device: the fill may stop early too
    if look:
        holes = not every(valid)
    weight = weights(valid, rel.dtype)
    filled = fill_holes(rel, valid, sync=look, weight=weight) if holes else rel
    return torch.cat([resize(filled, size) * 2 - 1, resize(weight, size)], dim=1)
