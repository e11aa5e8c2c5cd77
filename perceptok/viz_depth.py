"""Pictures of depth tokens: input, reconstruction (with the token grid) and error side by side,
in the perceptual Turbo colour map (near = warm)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from perceptok.checkpoint import atomic_write

# Polynomial fit of Google's Turbo colour map (Mikhailov, 2019), x in [0, 1].
_TURBO = np.array([
    [0.13572138, 4.61539260, -42.66032258, 132.13108234, -152.94239396, 59.28637943],
    [0.09140261, 2.19418839, 4.84296658, -14.18503333, 4.27729857, 2.82956604],
    [0.10667330, 12.64194608, -60.58204836, 110.36276771, -89.90310912, 27.34824973],
])


def turbo(x: np.ndarray) -> np.ndarray:
    """``(H, W)`` values in [0, 1] → ``(H, W, 3)`` uint8 RGB."""
    x = np.clip(x, 0, 1)[..., None]
    powers = x ** np.arange(6)  # (H, W, 6)
    return (np.clip(powers @ _TURBO.T, 0, 1) * 255).astype(np.uint8)


def depth_preview(
    true_rel: torch.Tensor, pred_rel: torch.Tensor, valid: torch.Tensor, grid: tuple[int, int], out_path: str | Path
) -> Path:
    """Write a PNG: input | reconstruction with the token grid | absolute error (0 to 0.25).

    Args:
        true_rel, pred_rel: ``(H, W)`` relative inverse depth in [0, 1] (1 = nearest).
        valid: ``(H, W)`` bool; invalid input pixels are drawn dark gray.
        grid: token grid ``(rows, cols)`` to overlay.
    """
    t, p, ok = true_rel.numpy(), pred_rel.numpy(), valid.numpy()
    h, w = t.shape
    gray = np.array([40, 40, 40], np.uint8)
    left = np.where(ok[..., None], turbo(t), gray)
    middle = turbo(p)
    rows = (np.arange(1, grid[0]) * h / grid[0]).astype(int)
    cols = (np.arange(1, grid[1]) * w / grid[1]).astype(int)
    middle[rows, :] = middle[rows, :] // 2 + 127
    middle[:, cols] = middle[:, cols] // 2 + 127
    right = np.where(ok[..., None], turbo(np.abs(p - t) / 0.25), gray)
    gap = np.full((h, 6, 3), 255, np.uint8)
    image = Image.fromarray(np.concatenate([left, gap, middle, gap, right], axis=1))
    out = Path(out_path)
    atomic_write(out, lambda tmp: image.save(tmp, format="PNG"))
    return out
