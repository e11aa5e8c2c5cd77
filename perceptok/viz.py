"""Pictures of what tokens mean: boxes drawn on their image."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from torchvision.transforms.functional import pil_to_tensor, to_pil_image
from torchvision.utils import draw_bounding_boxes

from perceptok.checkpoint import atomic_write


def draw_box_preview(
    image_path: str | Path,
    truth: torch.Tensor,
    decoded: torch.Tensor,
    labels: list[str] | None,
    out_path: str | Path,
) -> Path:
    """Write ``out_path`` (PNG): ``truth`` boxes in green and boxes decoded from tokens in red.

    Args:
        truth, decoded: ``(N, 4)`` xyxy boxes in pixels of the image.
    """
    image = pil_to_tensor(Image.open(image_path).convert("RGB"))  # (3, H, W) uint8
    image = draw_bounding_boxes(image, truth.float(), colors="lime", width=3)
    image = draw_bounding_boxes(image, decoded.float(), labels=labels, colors="red", width=1)
    out = Path(out_path)
    atomic_write(out, lambda tmp: to_pil_image(image).save(tmp, format="PNG"))
    return out
