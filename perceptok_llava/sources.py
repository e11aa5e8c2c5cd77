"""Where curriculum samples come from: synthetic scenes, RGB-D manifests, COCO detection files,
``perceptok tokenize depth`` folders and folders of RGB images, each as ``Sample`` objects for
``build_records``."""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from perceptok.io import DepthMap, read_manifest
from perceptok.synthetic import render_scene
from perceptok_llava.images import ImageRecipe

DECODE_ROWS = 32  # token rows that shard_samples decodes in one call


@dataclasses.dataclass
class Sample:
    """One source image with what is known about it.

    Attributes:
        id: a unique name.
        image: given as an RGB image, an image file's path (read when its pixels are needed) or
            an ``ImageRecipe``; held as an ``ImageRecipe``.
        depth: its depth map, if known.
        boxes: ``(N, 4)`` xyxy pixel boxes, if known; ``labels`` names them.
        depth_text: the depth map's tokens as text, where they are known already (token shards
            of padded maps): the records' depth target, instead of encoding ``depth`` again;
            ``depth`` then only places the marked points.
    """

    id: str
    image: ImageRecipe
    depth: DepthMap | None = None
    boxes: np.ndarray | None = None
    labels: list[str] | None = None
    depth_text: str | None = None

    def __post_init__(self) -> None:
        self.image = ImageRecipe.of(self.image)


def synthetic_samples(n: int, seed: int = 0, size: tuple[int, int] = (240, 320)) -> Iterator[Sample]:
    """Procedural scenes with exact depth, boxes and labels."""
    for i in range(n):
        s = render_scene(seed * 1_000_003 + i, size=size)
        depth = torch.from_numpy(s.depth)
        ok = torch.isfinite(depth)
        yield Sample(f"synthetic-{seed}-{i}", Image.fromarray(s.rgb),
                     DepthMap(torch.where(ok, depth, torch.full_like(depth, float("nan"))), ok, "metric"),
                     s.boxes, s.labels)


def manifest_samples(path: str | Path) -> Iterator[Sample]:
    """RGB + depth pairs of a depth manifest."""
    for entry in read_manifest(path):
        if entry.rgb is None:
            continue
        yield Sample(entry.id, entry.rgb, entry.load())


def shard_samples(folder: str | Path) -> Iterator[Sample]:
    """Images with the depth that a ``perceptok tokenize depth`` folder holds as tokens, so that a
    dataset is tokenized once (for RGB images the costly part: the depth-estimation model) and
    curricula are built from it many times.

    Each row's map is decoded back to its units (``perceptok.shards.decode_rows``, a chunk of rows
    at a time). A folder tokenized with ``--pad-square`` holds the tokens of the padded map that
    the model's square image goes with: they are the records' depth targets as they are
    (``Sample.depth_text``; the image comes padded), and the decoded map only places the marked
    points. Otherwise ``build_records`` re-encodes the decoded map on the square image, a
    reconstruction of a reconstruction (``benchmarks/llava_shard_targets.py``). Images come from
    the row's source for ``--images`` runs and from the manifest's ``rgb`` for ``--manifest`` runs;
    relative paths are read from the current folder, as the tokenize run saw them. The tokenizer named in the folder's metadata must still have the
    weights that made the tokens.
    """
    from perceptok import load
    from perceptok.shards import decode_rows, load_rows, metadata
    from perceptok.shards.store import tokenizer_identity

    meta = metadata(folder)
    made_by = meta["tokenizer"]
    if meta.get("modality") != "depth":
        raise ValueError(f"{folder} holds {meta.get('modality')} tokens; the curriculum reads depth token shards")
    tok = load(made_by["name"])
    if tokenizer_identity(tok, made_by["name"])["sha256"] != made_by["sha256"]:
        raise ValueError(f"the tokens in {folder} were made by another {made_by['name']!r} tokenizer than the one "
                         "installed now (different weights or config); tokenize again with this one")
    kind, _, value = meta["options"]["source"].partition("=")
    padded = meta["options"].get("pad") == "square"
    if kind == "images":
        rgb_of = None
    elif kind == "manifest":
        rgb_of = {e.id: e.rgb for e in read_manifest(value)}
    else:
        raise ValueError(f"{folder} was tokenized from {kind} (depth without images) and the curriculum needs the "
                         "images: tokenize a manifest with rgb entries, or --images DIR --depth-model ID")
    rows = iter(load_rows(folder))
    while chunk := list(itertools.islice(rows, DECODE_ROWS)):
        seen = []
        for row in chunk:
            path = row["source"] if rgb_of is None else rgb_of.get(row["id"])
            if path is None:
                continue  # a manifest entry without rgb: nothing to look at
            if not Path(path).is_file():
                raise FileNotFoundError(f"{folder}: image {path} of row {row['id']!r} not found; run from the folder "
                                        "the tokenize run was started in")
            seen.append((row, path))
        for (row, path), values in zip(seen, decode_rows(tok, [row for row, _ in seen])):  # (H, W) in the map's units
            if not padded:
                yield Sample(row["id"], path, DepthMap(values, torch.isfinite(values), row["kind"]))
                continue
            image = ImageRecipe.of(path)
            inside = torch.zeros(values.shape, dtype=torch.bool, device=values.device)
            image.frame.crop(inside)[...] = True  # the photo's part of the square: no points on the padding
            depth = DepthMap(torch.where(inside, values, torch.nan), inside & torch.isfinite(values), row["kind"])
            yield Sample(row["id"], image.padded(), depth, depth_text=row["text"])


def image_folder_samples(folder: str | Path) -> Iterator[Sample]:
    """Every RGB image under ``folder`` (recursively, sorted; ids are paths relative to it), with
    neither depth nor boxes: ``build_records`` with an estimator (``--depth-model``) gives them
    depth, as AURORA did for ADE20k with Depth Anything."""
    from perceptok.shards.sources import image_items

    for item in image_items(folder, None):
        yield Sample(item.id, item.source)


def coco_samples(instances: str | Path, images_dir: str | Path | None = None) -> Iterator[Sample]:
    """Images and boxes of a COCO detection file (``images/`` beside it by default)."""
    instances = Path(instances)
    data = json.loads(instances.read_text(encoding="utf-8"))
    folder = Path(images_dir) if images_dir else instances.parent / "images"
    names = {c["id"]: c["name"] for c in data["categories"]}
    anns: dict[int, list[dict]] = {}
    for a in data["annotations"]:
        anns.setdefault(a["image_id"], []).append(a)
    for im in data["images"]:
        boxes = np.array([a["bbox"] for a in anns.get(im["id"], [])], np.float64).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        yield Sample(str(im["file_name"]), folder / im["file_name"], None, boxes,
                     [names[a["category_id"]] for a in anns.get(im["id"], [])])
