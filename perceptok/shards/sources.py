"""What ``perceptok tokenize depth`` reads: a deterministic list of inputs, each loaded (in a
DataLoader worker) to a map or to the reason it could not be.

Sources: a manifest (``perceptok.io`` format), a folder of depth files, a local Hugging Face
dataset (arrow from ``save_to_disk`` or parquet files; an image or array column), or a folder of
RGB images (depth from a ``depth-estimation`` model, in the main process, batched).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from perceptok.io import read_manifest
from perceptok.io.square import pad_square as square
from perceptok.io.depth_files import (
    FLOAT_SUFFIXES, IMAGE_SUFFIXES, DepthCodes, DepthMap, read_depth, read_depth_codes, to_values,
)

RGB_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


@dataclasses.dataclass(frozen=True)
class DepthItem:
    """One input: its id, where it came from, and how to read it."""

    id: str
    source: str  # a file path, or "dataset:ROW"
    encoding: str | None = None
    scale: float | None = None
    kind: str = "metric"
    invalid: tuple[float, ...] = (0,)


def manifest_items(path: str | Path) -> list[DepthItem]:
    return [DepthItem(e.id, str(e.depth), e.encoding, e.scale, e.kind, tuple(e.invalid)) for e in read_manifest(path)]


def folder_items(folder: str | Path, glob: str | None, kind: str, scale: float | None,
                 suffixes: Sequence[str] = FLOAT_SUFFIXES + IMAGE_SUFFIXES) -> list[DepthItem]:
    """Files of ``folder`` matching ``glob`` (default: every depth file, recursively), sorted;
    ids are paths relative to the folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"folder {folder} does not exist")
    files = sorted(p for p in folder.glob(glob or "**/*") if p.is_file() and (glob or p.suffix.lower() in suffixes))
    if not files:
        raise ValueError(f"{folder} holds no files matching {glob or ', '.join(suffixes)}")
    return [DepthItem(str(p.relative_to(folder)), str(p), None, scale, kind) for p in files]


def image_items(folder: str | Path, glob: str | None) -> list[DepthItem]:
    """RGB images of a folder, for a depth-estimation model (depth is relative inverse)."""
    items = folder_items(folder, glob, "relative_inverse", None, RGB_SUFFIXES)
    return [dataclasses.replace(item, encoding="rgb") for item in items]


def dataset_items(path: str | Path, column: str, kind: str, scale: float | None) -> list[DepthItem]:
    """Rows of a local Hugging Face dataset; ids from an ``id`` column where there is one."""
    ds = open_dataset(path)
    if column not in ds.column_names:
        raise ValueError(f"{path} has no column {column!r}; its columns are {ds.column_names}")
    ids = ds["id"] if "id" in ds.column_names else range(len(ds))
    return [DepthItem(str(i), f"dataset:{row}", None, scale, kind) for row, i in enumerate(ids)]


def open_dataset(path: str | Path) -> Any:
    """A local dataset: a ``save_to_disk`` folder, or a folder (or file) of parquet files."""
    try:
        import datasets
    except ImportError as err:
        raise ImportError("reading a Hugging Face dataset needs datasets: pip install 'perceptok[tokenize]'") from err
    path = Path(path)
    if (path / "dataset_info.json").exists() or (path / "state.json").exists():
        return datasets.load_from_disk(str(path))
    files = [str(path)] if path.is_file() else sorted(str(p) for p in path.glob("**/*.parquet"))
    if not files:
        raise ValueError(f"{path} is neither a save_to_disk dataset nor a folder of parquet files")
    return datasets.load_dataset("parquet", data_files=files, split="train")


def items_digest(items: Sequence[Any]) -> str:
    """A hash of the inputs' ids and sources, so that a resumed run reads the same inputs."""
    digest = hashlib.sha256()
    for item in items:
        digest.update(json.dumps([item.id, item.source]).encode())
    return digest.hexdigest()


def _array_map(value: Any, item: DepthItem) -> DepthMap:
    """A dataset cell (a PIL image or a nested list / array) as a ``DepthMap``."""
    raw = np.asarray(value, dtype=np.float64)
    if raw.ndim != 2 or min(raw.shape) == 0:
        raise ValueError(f"the cell holds an array of shape {raw.shape}; a depth map is a non-empty (H, W) array")
    values, bad = to_values(raw, "float", item.scale, item.kind, item.invalid)
    return DepthMap(torch.from_numpy(values), torch.from_numpy(~bad), item.kind)


def _read(item: DepthItem) -> DepthMap | DepthCodes:
    """A depth file as stored: integer images as ``DepthCodes`` (tokenizers encode those without
    expanding them), float files as ``DepthMap``."""
    floats = item.encoding == "float" or (item.encoding is None and Path(item.source).suffix.lower() in FLOAT_SUFFIXES)
    read = read_depth if floats else read_depth_codes
    return read(item.source, encoding=item.encoding, scale=item.scale, kind=item.kind, invalid=item.invalid)


class DepthInputs(Dataset):
    """``items[i]`` → ``(i, map)`` (``DepthCodes`` or ``DepthMap``, padded to a square with
    ``pad_square``; an RGB image for the estimator), or ``(i, reason)`` when it cannot be read.
    Runs in DataLoader workers; a dataset source is opened once per worker."""

    def __init__(self, items: Sequence[DepthItem], order: Sequence[int], dataset: str | None = None,
                 column: str | None = None, pad_square: bool = False):
        self.items, self.order, self.pad_square = items, list(order), pad_square
        self.dataset_path, self.column = dataset, column
        self._dataset: Any = None

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, k: int) -> tuple[int, Any]:
        i = self.order[k]
        item = self.items[i]
        try:
            if item.encoding == "rgb":  # for the estimator, which runs in the main process
                with Image.open(item.source) as im:
                    return i, im.convert("RGB")
            if item.source.startswith("dataset:"):
                if self._dataset is None:
                    self._dataset = open_dataset(self.dataset_path)
                depth = _array_map(self._dataset[int(item.source[8:])][self.column], item)
            else:
                depth = _read(item)
            return i, square(depth) if self.pad_square else depth
        except (ValueError, OSError, TypeError, UnidentifiedImageError) as err:
            return i, f"{type(err).__name__}: {err}"
