"""Shared fixtures: the real data in ``../shared/data`` (skipped cleanly where it is absent)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent (it sits beside the project in development and CI)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def voc100(shared_data: Path) -> list[dict]:
    """Per image of boxes/voc100: file name, (H, W), xywh boxes and category names."""
    data = json.loads((shared_data / "boxes" / "voc100" / "instances.json").read_text())
    names = {c["id"]: c["name"] for c in data["categories"]}
    images = {im["id"]: {"file_name": im["file_name"], "canvas_size": (im["height"], im["width"]),
                         "boxes": [], "labels": []} for im in data["images"]}
    for ann in data["annotations"]:
        images[ann["image_id"]]["boxes"].append(ann["bbox"])
        images[ann["image_id"]]["labels"].append(names[ann["category_id"]])
    return list(images.values())
