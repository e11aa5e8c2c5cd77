"""Curriculum records from synthetic scenes, real depth maps and real COCO boxes."""

from __future__ import annotations

import re

import numpy as np
import pytest

from perceptok import BoxTokenizer, PointTokenizer, PooledDepthTokenizer
from perceptok_llava.data import MULTI_TASKS, build_records, coco_samples, manifest_samples, synthetic_samples

TOKS = dict(depth=PooledDepthTokenizer(), boxes=BoxTokenizer.from_preset("aurora"), points=PointTokenizer.from_preset("aurora"))


def test_synthetic_records_cover_every_task_with_exact_answers():
    records = build_records(synthetic_samples(12, seed=1, size=(96, 128)), **TOKS, seed=0)
    tasks = {r["task"] for r in records}
    assert tasks == {"depth_generation", "box_listing", "relative_depth_cot", "relative_depth_direct",
                     "counting_cot", "counting_direct"}
    for r in records:
        assert r["prompt"].count("<image>") == 1 and r["image"].size == (128, 96)
        if r["task"] == "depth_generation":
            assert TOKS["depth"].from_text(r["target"]).shape == (100,)
        if r["task"] == "relative_depth_direct":
            k = 2 if "Two points" in r["prompt"] else None
            assert re.fullmatch(r"\([A-E]\)", r["target"]) and (k is None or r["target"] in ("(A)", "(B)"))
        if r["task"] == "relative_depth_cot":
            assert "<DEPTH_START>" in r["target"] and r["target"].endswith(")")
        if r["task"] == "counting_cot":
            n = int(r["target"].rsplit(":", 1)[1])
            assert TOKS["boxes"].parse(r["target"].split(" There are")[0]).counts == n


def test_marked_points_are_drawn():
    sample = next(synthetic_samples(1, seed=3, size=(96, 128)))
    records = build_records([sample], **TOKS, tasks=["relative_depth_direct"], seed=2)
    assert records and np.abs(np.asarray(records[0]["image"], float) - np.asarray(sample.image, float)).sum() > 0


def test_real_sources(shared_data):
    depth_records = build_records(manifest_samples(shared_data / "depth" / "manifest.jsonl"), **TOKS,
                                  tasks=["depth_generation", "relative_depth_cot"])
    assert sum(r["task"] == "depth_generation" for r in depth_records) == 21
    box_records = build_records(coco_samples(shared_data / "boxes" / "voc100" / "instances.json"), **TOKS,
                                tasks=["box_listing", "counting_direct"])
    assert sum(r["task"] == "counting_direct" for r in box_records) == 100


def test_unknown_task():
    with pytest.raises(ValueError, match="unknown tasks"):
        build_records([], **TOKS, tasks=["captioning"])
    assert set(MULTI_TASKS) >= {"counting_cot"}


def test_few_valid_pixels_inside_the_margin_give_no_sample_rather_than_an_error():
    """Issue 13 (6): the count was checked before the margin filter, so rng.choice(0, k) raised."""
    import numpy as np
    import torch

    from perceptok_llava.data import _pick_points

    rel = torch.rand(100, 100)
    ok = torch.zeros(100, 100, dtype=torch.bool)
    ok[:, :3] = True  # plenty of valid pixels, all in the left margin
    assert _pick_points(rel, ok, 3, np.random.default_rng(0)) is None
