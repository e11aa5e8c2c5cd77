"""Pictures of depth tokens: input, reconstruction (with the token grid) and error side by side,
in the perceptual Turbo colour map (near = warm), each panel titled, with a colour bar and its
units, and the map's scores written under them. Pillow only (no plotting library needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from perceptok.checkpoint import atomic_write

# Polynomial fit of Google's Turbo colour map (Mikhailov, 2019), x in [0, 1].
_TURBO = np.array([
    [0.13572138, 4.61539260, -42.66032258, 132.13108234, -152.94239396, 59.28637943],
    [0.09140261, 2.19418839, 4.84296658, -14.18503333, 4.27729857, 2.82956604],
    [0.10667330, 12.64194608, -60.58204836, 110.36276771, -89.90310912, 27.34824973],
])
ERROR_SATURATION = 0.25  # the error panel's colour bar ends here (relative inverse depth)
_GRAY = np.array([40, 40, 40], np.uint8)  # pixels without a measurement


def turbo(x: np.ndarray) -> np.ndarray:
    """``(H, W)`` values in [0, 1] → ``(H, W, 3)`` uint8 RGB."""
    x = np.clip(x, 0, 1)[..., None]
    powers = x ** np.arange(6)  # (H, W, 6)
    return (np.clip(powers @ _TURBO.T, 0, 1) * 255).astype(np.uint8)


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one bitmap size
        return ImageFont.load_default()


def _panel(pixels: np.ndarray, title: str, ticks: tuple[str, str], unit: str, scale: float) -> Image.Image:
    """A titled image over a horizontal colour bar with end labels and a unit."""
    h, w = pixels.shape[:2]
    s = max(scale, 1.0)
    title_h, bar_h, label_h = int(22 * s), int(12 * s), int(36 * s)
    font, small = _font(int(13 * s)), _font(int(11 * s))
    panel = Image.new("RGB", (w, title_h + h + 6 + bar_h + label_h), "white")
    draw = ImageDraw.Draw(panel)
    draw.text((4, 4), title, fill="black", font=font)
    panel.paste(Image.fromarray(pixels), (0, title_h))
    bar = turbo(np.tile(np.linspace(0, 1, w), (bar_h, 1)))
    top = title_h + h + 6
    panel.paste(Image.fromarray(bar), (0, top))
    draw.rectangle([0, top, w - 1, top + bar_h - 1], outline="black")
    draw.text((2, top + bar_h + 2), ticks[0], fill="black", font=small)
    right = draw.textlength(ticks[1], font=small)
    draw.text((w - right - 2, top + bar_h + 2), ticks[1], fill="black", font=small)
    middle = draw.textlength(unit, font=small)
    draw.text(((w - middle) / 2, top + bar_h + int(16 * s)), unit, fill="black", font=small)
    return panel


def depth_preview(
    true_rel: torch.Tensor, pred_rel: torch.Tensor, valid: torch.Tensor, grid: tuple[int, int], out_path: str | Path,
    scores: dict[str, float] | None = None,
) -> Path:
    """Write a PNG: input | reconstruction with the token grid | absolute error (0 to 0.25).

    Args:
        true_rel, pred_rel: ``(H, W)`` relative inverse depth in [0, 1] (1 = nearest).
        valid: ``(H, W)`` bool; invalid input pixels are drawn dark gray.
        grid: token grid ``(rows, cols)`` to overlay.
        scores: figures of this map to print under the panels (e.g. abs_rel, ordinal accuracy).
    """
    t, p, ok = true_rel.numpy(), pred_rel.numpy(), valid.numpy()
    h, w = t.shape
    scale = max(w, 320) / 320  # text grows with large maps
    left = np.where(ok[..., None], turbo(t), _GRAY)
    middle = turbo(p)
    rows = (np.arange(1, grid[0]) * h / grid[0]).astype(int)
    cols = (np.arange(1, grid[1]) * w / grid[1]).astype(int)
    middle[rows, :] = middle[rows, :] // 2 + 127
    middle[:, cols] = middle[:, cols] // 2 + 127
    right = np.where(ok[..., None], turbo(np.abs(p - t) / ERROR_SATURATION), _GRAY)
    unit = "relative inverse depth"  # ASCII only: Pillow's built-in font has no other glyphs
    panels = [
        _panel(left, "input (gray: no measurement)", ("0 far", "1 near"), unit, scale),
        _panel(middle, f"from {grid[0] * grid[1]} tokens ({grid[0]}x{grid[1]} grid)", ("0 far", "1 near"), unit, scale),
        _panel(right, "absolute error", ("0", f"{ERROR_SATURATION} or more"), f"|error| in {unit}", scale),
    ]
    gap = int(8 * scale)
    footer = int(24 * scale) if scores else 0
    width = sum(pn.width for pn in panels) + gap * (len(panels) - 1)
    image = Image.new("RGB", (width, panels[0].height + footer), "white")
    x = 0
    for pn in panels:
        image.paste(pn, (x, 0))
        x += pn.width + gap
    if scores:
        text = "   ".join(f"{k} {v:.3f}" for k, v in scores.items())
        ImageDraw.Draw(image).text((4, panels[0].height + 2), text, fill="black", font=_font(int(13 * scale)))
    out = Path(out_path)
    atomic_write(out, lambda tmp: image.save(tmp, format="PNG"))
    return out
