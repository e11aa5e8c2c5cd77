"""Curriculum records from real and synthetic sources (AURORA §3.2).

A record is a plain dict: ``id``, ``task``, ``image``, ``prompt`` (with one ``<image>``
placeholder) and ``target``. Its ``image`` is an ``ImageRecipe`` (the source file or pixels, the
padding, the marks), not pixels: ``load()`` makes the PIL image, and training does so in its
DataLoader's workers, a batch at a time. Records of the same sample share one recipe.

Tasks, each atomic or multi-task:

- ``depth_generation`` (atomic): the image's depth map as depth tokens;
- ``box_listing`` (atomic): the boxes of one category as coordinate tokens;
- ``relative_depth_cot`` / ``relative_depth_direct``: 2–5 points marked on the image as lettered
  red circles (BLINK style; points ≥ 20 px apart on the 336-px image, depth gaps ≥ 20/255 as in
  the original); chain of thought = point coordinates → depth tokens → "Point X is closer";
- ``counting_cot`` / ``counting_direct``: how many objects of a category; chain of thought = their
  boxes → the number.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import string
from collections.abc import Iterable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from perceptok import BoxTokenizer, PointTokenizer
from perceptok.depth import GridDepthTokenizer
from perceptok.depth.normalize import normalize_depth
from perceptok.io import DepthMap
from perceptok.io.square import pad_square
from perceptok_llava.images import ImageRecipe, SquareFrame
from perceptok_llava.sources import Sample

ATOMIC_TASKS = ("depth_generation", "box_listing")
MULTI_TASKS = ("relative_depth_cot", "relative_depth_direct", "counting_cot", "counting_direct")
MARK_SIDE = 336  # the original's image side for the distance rule
MIN_POINT_DISTANCE = 20  # pixels on the 336-px image
MIN_DEPTH_GAP = 20 / 255  # in relative inverse depth
RECORD_BATCH = 32  # samples whose depth maps build_records encodes (and estimates) in one call


def pad_to_square(sample: Sample) -> Sample:
    """The sample as LLaVA-1.5 saw its images (padded to a square, not centre-cropped as
    llava-hf's processor would): the image centred on the square, depth padded with
    no-measurement pixels, boxes moved with the image. Every target then describes the pixels the
    model sees."""
    frame = SquareFrame(*sample.image.size)
    if frame.w == frame.h:
        return sample
    if sample.depth_text is not None:
        raise ValueError(f"sample {sample.id!r} carries depth tokens of its image as given, which padding would "
                         "change: tokenize the padded map (perceptok tokenize depth --pad-square) or drop depth_text")
    depth = pad_square(sample.depth) if sample.depth is not None else None
    boxes = sample.boxes
    if boxes is not None:
        boxes = np.asarray(boxes, np.float64) + np.tile(frame.offset, 2)
    return dataclasses.replace(sample, image=sample.image.padded(), depth=depth, boxes=boxes)


def _relative(depth: DepthMap) -> tuple[torch.Tensor, torch.Tensor]:
    norm = normalize_depth(depth.values[None], depth.kind, depth.valid[None])
    return norm.rel[0], norm.valid[0]


def _pick_points(rel: torch.Tensor, ok: torch.Tensor, k: int, rng: np.random.Generator, tries: int = 200) -> np.ndarray | None:
    """k valid pixels (x, y) ≥ 20 px apart on the 336-px image, with pairwise depth gaps ≥ 20/255:
    the first of ``tries`` random draws of k pixels (all drawn and checked at once) that keeps
    both rules. A draw repeats a pixel at times, which the distance rule refuses, so a kept
    draw is k distinct pixels, uniform over the sets that keep the rules."""
    h, w = rel.shape
    scale = np.array([MARK_SIDE / w, MARK_SIDE / h])
    margin = 0.06  # candidates lie strictly inside it: margin·side < coordinate < (1 - margin)·side
    y0, y1, x0, x1 = math.floor(margin * h) + 1, math.ceil((1 - margin) * h), math.floor(margin * w) + 1, math.ceil((1 - margin) * w)
    ys, xs = np.nonzero(ok.numpy()[y0:y1, x0:x1])  # row-major, as over the whole map
    ys, xs = ys + y0, xs + x0
    if len(xs) < k:  # counted after the margin: fewer candidates than points is no sample, not an error
        return None
    pick = rng.integers(len(xs), size=(tries, k))
    pts = np.stack([xs[pick], ys[pick]], -1).astype(np.float64)  # (tries, k, 2)
    apart = np.linalg.norm((pts[:, :, None] - pts[:, None]) * scale, axis=-1) + np.eye(k) * 1e9  # (tries, k, k)
    vals = rel.numpy()[ys[pick], xs[pick]]  # (tries, k)
    gaps = np.abs(vals[:, :, None] - vals[:, None]) + np.eye(k) * 1e9
    kept = (apart.min((1, 2)) >= MIN_POINT_DISTANCE) & (gaps.min((1, 2)) >= MIN_DEPTH_GAP)  # (tries,)
    return pts[int(np.argmax(kept))] if kept.any() else None


@dataclasses.dataclass
class MarkedPoints:
    """``k`` lettered points marked on an image for a relative-depth question.

    Attributes:
        image: the image with the points circled and lettered (BLINK style), as a recipe.
        points: ``(k, 2)`` x, y pixel centres of the depth map's pixels, in the image's frame.
        letters: "AB", "ABC", … in the order of ``points``.
        nearest: the letter of the point nearest the camera.
    """

    image: ImageRecipe
    points: np.ndarray
    letters: str
    nearest: str


def mark_points(sample: Sample, k: int, rng: np.random.Generator) -> MarkedPoints | None:
    """AURORA's marking rules on a sample with depth: ``k`` valid points ≥ 20 px apart on the
    336-px image, pairwise depth gaps ≥ 20/255 of relative inverse depth, away from the border;
    None when the map has no such points."""
    if sample.depth is None:
        raise ValueError(f"sample {sample.id!r} has no depth; relative-depth questions need a depth map")
    rel, ok = _relative(sample.depth)
    pts = _pick_points(rel, ok, k, rng)
    if pts is None:
        return None
    letters = string.ascii_uppercase[:k]
    nearest = letters[int(np.argmax([float(rel[int(y), int(x)]) for x, y in pts]))]
    h, w = rel.shape
    at_image = pts * np.array([sample.image.width / w, sample.image.height / h])  # the map may be smaller
    return MarkedPoints(sample.image.marked(at_image, letters), at_image, letters, nearest)


def _depth_prompt() -> str:
    return "<image>\nWhat is the depth map of this image? Answer with depth tokens."


def _relative_prompt(k: int, cot: bool) -> str:
    if k == 2:
        question = ("Two points are circled on the image, labeled by A and B beside each circle. Which point is closer "
                    "to the camera?\nSelect from the following choices.\n(A) A is closer\n(B) B is closer")
    else:
        question = ("Multiple points are circled on the image, labeled by letters beside each circle. Which point is "
                    "the closest to the camera?")
    hint = "\nLocate the points and estimate the depth map first." if cot else ""
    return f"<image>\n{question}{hint}"


def build_records(samples: Iterable[Sample], depth: GridDepthTokenizer, boxes: BoxTokenizer, points: PointTokenizer,
                  seed: int = 0, tasks: Iterable[str] = ATOMIC_TASKS + MULTI_TASKS, estimator=None,
                  square: bool = True, point_counts: Sequence[int] = (2, 3, 4, 5), progress: bool = False) -> list[dict]:
    """Records of every requested task that each sample supports.

    ``estimator`` (a ``MonocularDepth``) gives depth to samples that have none. ``square``: pad
    each sample to a square first (``pad_to_square``), as LLaVA-1.5 trained; llava-hf's image
    processor centre-crops a non-square photo, which would cut off the sides that the targets
    describe. Generation pads the same way (``generate_with_perception``). ``point_counts``: how
    many points a relative-depth question marks, drawn uniformly per sample (2 is BLINK's, 3–5
    HardBLINK's). Relative-depth records also hold ``answer`` ("(A)"), ``points`` (``k`` × [x, y]
    pixels in the record's image) and ``letters``. ``progress``: a bar of samples done (with an
    estimator, a large dataset takes a while).
    """
    if not point_counts or any(not 2 <= int(k) <= 5 for k in point_counts):
        raise ValueError(f"point_counts must be numbers from 2 to 5 (lettered A–E), got {tuple(point_counts)}")
    tasks = set(tasks)
    unknown = tasks - set(ATOMIC_TASKS + MULTI_TASKS)
    if unknown:
        raise ValueError(f"unknown tasks {sorted(unknown)}; choose from {ATOMIC_TASKS + MULTI_TASKS}")
    rng = np.random.default_rng(seed)
    records: list[dict] = []
    samples = iter(samples)
    bar = tqdm(unit="sample", desc="curriculum records", disable=not progress)
    while chunk := list(itertools.islice(samples, RECORD_BATCH)):
        missing = [i for i, s in enumerate(chunk) if s.depth is None] if estimator is not None else []
        for i, estimate in zip(missing, estimator([chunk[i].image.load() for i in missing]) if missing else []):
            chunk[i] = dataclasses.replace(chunk[i], depth=estimate)
        if square:
            chunk = [pad_to_square(s) for s in chunk]
        maps = [s.depth for s in chunk if s.depth is not None and s.depth_text is None]
        texts = iter(depth.to_text(depth.encode(maps)) if maps else [])  # with each map's grid marker where it has one
        for sample in chunk:
            if sample.depth is not None:
                text = sample.depth_text if sample.depth_text is not None else next(texts)
                records += _depth_records(sample, text, points, tasks, rng, point_counts)
            if sample.boxes is not None and sample.labels:
                records += _box_records(sample, boxes, tasks, rng)
        bar.update(len(chunk))
    bar.close()
    return records


def _depth_records(sample: Sample, depth_text: str, points: PointTokenizer, tasks: set[str],
                   rng: np.random.Generator, point_counts: Sequence[int]) -> list[dict]:
    out = []
    if "depth_generation" in tasks:
        out.append(dict(id=f"{sample.id}/depth", task="depth_generation", image=sample.image,
                        prompt=_depth_prompt(), target=depth_text))
    if not tasks & {"relative_depth_cot", "relative_depth_direct"}:
        return out
    k = int(point_counts[int(rng.integers(len(point_counts)))])
    marked = mark_points(sample, k, rng)
    if marked is None:
        return out
    answer = f"({marked.nearest})"
    # what scoring and the experiment need besides the text: the gold answer and where the points are
    question = dict(answer=answer, points=marked.points.tolist(), letters=marked.letters, image=marked.image)
    if "relative_depth_direct" in tasks:
        out.append(dict(id=f"{sample.id}/rel{k}", task="relative_depth_direct", prompt=_relative_prompt(k, cot=False),
                        target=answer, **question))
    if "relative_depth_cot" in tasks:
        h, w = marked.image.height, marked.image.width
        where = points.to_text(points.encode(marked.points, canvas_size=(h, w), labels=list(marked.letters)))
        verdict = "closer" if k == 2 else "the closest"
        target = f"The points are at {where}. {depth_text} Point {marked.nearest} is {verdict}: {answer}"
        out.append(dict(id=f"{sample.id}/rel{k}-cot", task="relative_depth_cot", prompt=_relative_prompt(k, cot=True),
                        target=target, **question))
    return out


def _box_records(sample: Sample, boxes: BoxTokenizer, tasks: set[str], rng: np.random.Generator) -> list[dict]:
    out = []
    h, w = sample.image.height, sample.image.width
    label = sample.labels[int(rng.integers(len(sample.labels)))]
    chosen = np.array([b for b, lab in zip(sample.boxes, sample.labels) if lab == label]).reshape(-1, 4)
    box_text = boxes.to_text(boxes.encode(chosen, canvas_size=(h, w), clip=True))
    plural = f"{label}s" if not label.endswith("s") else label
    n = len(chosen)
    if "box_listing" in tasks:
        out.append(dict(id=f"{sample.id}/boxes", task="box_listing", image=sample.image,
                        prompt=f"<image>\nFind every {label} in the image and give its bounding box.", target=box_text))
    if "counting_direct" in tasks:
        out.append(dict(id=f"{sample.id}/count", task="counting_direct", image=sample.image,
                        prompt=f"<image>\nHow many {plural} are in the image? Answer with a number.", target=str(n)))
    if "counting_cot" in tasks:
        out.append(dict(id=f"{sample.id}/count-cot", task="counting_cot", image=sample.image,
                        prompt=f"<image>\nHow many {plural} are in the image? Find them first.",
                        target=f"{box_text} There are {n} {plural}: {n}"))
    return out
