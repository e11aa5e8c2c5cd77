"""Box tokenizer throughput: vectorised ids ⇄ boxes on a million boxes, beside a per-box Python
loop (how research code usually writes it) measured in the same run, and the text path.

Run: ``.venv/bin/python -m pytest benchmarks/test_box_throughput.py --benchmark-columns=mean,stddev,rounds``
Each test stores ``boxes_per_s`` in ``extra_info``; compare the vectorised figure with the loop.
"""

from __future__ import annotations

import torch

from perceptok import BoxTokenizer

MILLION = 1_000_000
LOOP_N = 20_000  # the Python loop is too slow for a million boxes per round


def random_boxes(n: int, seed: int = 0) -> torch.Tensor:
    """``(n, 4)`` normalised xyxy boxes."""
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g, dtype=torch.float64) * 0.9
    wh = torch.rand(n, 2, generator=g, dtype=torch.float64) * 0.09 + 0.01
    return torch.cat([xy, xy + wh], dim=1)


def python_loop_round_trip(boxes: list[list[float]], bins: int = 336) -> list[list[float]]:
    out = []
    for box in boxes:
        for v in box:
            if not (0.0 <= v <= 1.0):
                raise ValueError(box)
        ids = [round(v * (bins - 1)) for v in box]
        out.append([i / (bins - 1) for i in ids])
    return out


def test_vectorised_ids_round_trip_1m(benchmark):
    tok = BoxTokenizer.from_preset("aurora")
    boxes = random_boxes(MILLION)
    out = benchmark.pedantic(lambda: tok.decode(tok.encode(boxes).ids), rounds=5, warmup_rounds=1)
    assert out.shape == (MILLION, 4)
    benchmark.extra_info["boxes_per_s"] = MILLION / benchmark.stats["mean"]


def test_python_loop_baseline(benchmark):
    boxes = random_boxes(LOOP_N).tolist()
    out = benchmark.pedantic(lambda: python_loop_round_trip(boxes), rounds=5, warmup_rounds=1)
    assert len(out) == LOOP_N
    benchmark.extra_info["boxes_per_s"] = LOOP_N / benchmark.stats["mean"]


def test_text_round_trip_10k(benchmark):
    tok = BoxTokenizer.from_preset("aurora")
    ids = tok.encode(random_boxes(10_000)).ids
    out = benchmark.pedantic(lambda: tok.from_text(tok.to_text(ids)), rounds=5, warmup_rounds=1)
    assert torch.equal(out, ids)
    benchmark.extra_info["boxes_per_s"] = 10_000 / benchmark.stats["mean"]


def coco_like(images: int = 20_000, seed: int = 0) -> tuple[list, list, list]:
    """``images`` COCO-like images of 480×640 with 0–14 labelled xywh pixel boxes each: the boxes,
    the labels (80 class names) and the canvas sizes."""
    g = torch.Generator().manual_seed(seed)
    counts = torch.randint(0, 15, (images,), generator=g).tolist()
    boxes, labels = [], []
    for n in counts:
        xy = torch.rand(n, 2, generator=g, dtype=torch.float64) * torch.tensor([600.0, 440.0], dtype=torch.float64)
        wh = 1 + torch.rand(n, 2, generator=g, dtype=torch.float64) * (torch.tensor([640.0, 480.0], dtype=torch.float64) - 1 - xy)
        boxes.append(torch.cat([xy, wh], 1).tolist())
        labels.append([f"class {int(c)}" for c in torch.randint(0, 80, (n,), generator=g)])
    return boxes, labels, [(480, 640)] * images


def test_coco_like_batch_encode_and_text(benchmark):
    """A dataset's images as one batch (what ``perceptok tokenize boxes`` does a shard at a time)."""
    tok = BoxTokenizer.from_preset("aurora")
    boxes, labels, sizes = coco_like()
    texts = benchmark.pedantic(lambda: tok.to_text(tok.encode(boxes, canvas_size=sizes, labels=labels, format="xywh",
                                                              return_tensors="np")), rounds=5, warmup_rounds=1)
    assert len(texts) == len(boxes) and texts[1] == tok.to_text(tok.encode(boxes[1], canvas_size=sizes[1],
                                                                          labels=labels[1], format="xywh"))
    benchmark.extra_info["images_per_s"] = len(boxes) / benchmark.stats["mean"]


def test_coco_like_image_by_image_baseline(benchmark):
    """The same images through the same tokenizer one image at a time."""
    tok = BoxTokenizer.from_preset("aurora")
    boxes, labels, sizes = coco_like()

    def loop():
        return [tok.to_text(tok.encode(b, canvas_size=s, labels=lab, format="xywh", return_tensors="np"))
                for b, lab, s in zip(boxes, labels, sizes)]

    texts = benchmark.pedantic(loop, rounds=3, warmup_rounds=1)
    assert len(texts) == len(boxes)
    benchmark.extra_info["images_per_s"] = len(boxes) / benchmark.stats["mean"]
