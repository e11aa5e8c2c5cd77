"""Monocular depth targets through transformers' depth-estimation pipeline, with a tiny
randomly initialised Depth Anything built from its config, and the cache."""

from __future__ import annotations

import numpy as np
import torch
import pytest
from PIL import Image

pytest.importorskip("transformers")

from perceptok.depth.estimate import MonocularDepth  # noqa: E402


def tiny_depth_anything():
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config, DPTImageProcessor

    backbone = Dinov2Config(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64,
                            image_size=56, patch_size=14, out_features=["stage1", "stage2", "stage3", "stage4"],
                            reshape_hidden_states=False)
    config = DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=32, neck_hidden_sizes=[8, 16, 32, 32],
                                 fusion_hidden_size=16, head_hidden_size=8, patch_size=14)
    processor = DPTImageProcessor(size={"height": 56, "width": 56}, keep_aspect_ratio=False, ensure_multiple_of=14,
                                  do_pad=False)
    return DepthAnythingForDepthEstimation(config).eval(), processor


def test_batched_estimates_are_cached(tmp_path):
    model, processor = tiny_depth_anything()
    estimator = MonocularDepth(model, image_processor=processor, cache_dir=tmp_path, batch_size=2, device=-1)
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)) for _ in range(3)]
    maps = estimator(images)
    assert estimator.estimated == 3 and len(list(tmp_path.glob("*/*.npy"))) == 3
    assert {np.load(p).dtype for p in tmp_path.glob("*/*.npy")} == {np.dtype(np.float16)}  # half the disk
    assert all(m.values.shape == (40, 60) and m.kind == "relative_inverse" for m in maps)
    again = estimator(images[:2] + [images[2].transpose(Image.FLIP_LEFT_RIGHT)])
    assert estimator.estimated == 4  # two from the cache, one new image
    assert np.array_equal(again[0].values.numpy(), maps[0].values.numpy())  # served as when it was estimated
    assert again[0].values.dtype == torch.float32 and bool(again[0].valid.all())


def test_another_model_does_not_reuse_the_cache(tmp_path):
    """Issue 13 (7): the cache keyed on image bytes alone served one model's estimates to another."""
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)) for _ in range(2)]
    torch.manual_seed(0)
    first = MonocularDepth(*tiny_depth_anything(), cache_dir=tmp_path, device=-1)
    a = first(images)
    torch.manual_seed(1)  # the same architecture with other weights
    second = MonocularDepth(*tiny_depth_anything(), cache_dir=tmp_path, device=-1)
    b = second(images)
    assert second.estimated == 2 and not np.allclose(a[0].values.numpy(), b[0].values.numpy())
    torch.manual_seed(0)  # the first model's weights again: served from its cache
    again = MonocularDepth(*tiny_depth_anything(), cache_dir=tmp_path, device=-1)
    c = again(images)
    assert again.model_key == first.model_key and again.estimated == 0
    assert np.allclose(c[0].values.numpy(), a[0].values.numpy())


def test_records_estimate_the_depth_of_many_samples_at_once():
    """``build_records`` gives depth to RGB-only samples through the estimator a chunk of samples
    at a time (one call for up to ``RECORD_BATCH`` images, which the pipeline batches), and encodes
    their maps together; the records are those of the same samples with the estimates given."""
    import dataclasses

    from perceptok import BoxTokenizer, PointTokenizer, load
    from perceptok_llava.data import RECORD_BATCH, build_records
    from perceptok_llava.sources import synthetic_samples

    estimator = MonocularDepth(*tiny_depth_anything(), batch_size=8, device=-1)
    calls = []
    estimate = estimator.__call__
    count = lambda images: (calls.append(len(images)), estimate(images))[1]  # noqa: E731
    rgb = [dataclasses.replace(s, depth=None) for s in synthetic_samples(RECORD_BATCH + 3, size=(48, 64))]
    toks = dict(depth=load("depth"), boxes=BoxTokenizer.from_preset("aurora"), points=PointTokenizer.from_preset("aurora"))
    records = build_records(rgb, **toks, estimator=count, tasks=["depth_generation"], seed=0)
    assert calls == [RECORD_BATCH, 3] and len(records) == RECORD_BATCH + 3
    given = [dataclasses.replace(s, depth=m) for s, m in zip(rgb, estimate([s.image.load() for s in rgb]))]
    assert [r["target"] for r in records] == [r["target"] for r in build_records(given, **toks, tasks=["depth_generation"], seed=0)]


def test_a_folder_of_images_is_a_curriculum_source_once_depth_is_estimated(tmp_path, capsys):
    """``--data DIR`` of RGB images (AURORA's ADE20k route): every image becomes a sample read from
    its file, with depth from the estimator; without one the CLI says, before loading any model,
    that the images give no records and what to pass."""
    from perceptok import BoxTokenizer, PointTokenizer, load
    from perceptok.depth.estimate import MonocularDepth
    from perceptok_llava.cli import load_samples, main as llava_cli
    from perceptok_llava.data import build_records
    from perceptok_llava.sources import synthetic_samples

    (tmp_path / "images" / "sub").mkdir(parents=True)
    for i, sample in enumerate(synthetic_samples(3, size=(48, 64))):
        sample.image.load().save(tmp_path / "images" / ("sub" if i == 2 else "") / f"{i}.jpg", quality=95)
    (tmp_path / "images" / "notes.txt").write_text("not an image")
    samples = list(load_samples([str(tmp_path / "images")], seed=0))
    assert [s.id for s in samples] == ["0.jpg", "1.jpg", "sub/2.jpg"]
    assert all(s.depth is None and s.boxes is None and s.image.size == (64, 48) for s in samples)
    toks = dict(depth=load("depth"), boxes=BoxTokenizer.from_preset("aurora"), points=PointTokenizer.from_preset("aurora"))
    assert build_records(samples, **toks) == []
    estimator = MonocularDepth(*tiny_depth_anything(), device=-1)
    records = build_records(samples, **toks, estimator=estimator, tasks=["depth_generation"])
    assert [r["id"] for r in records] == ["0.jpg/depth", "1.jpg/depth", "sub/2.jpg/depth"] and estimator.estimated == 3
    assert records[0]["image"].load().size == (64, 64)  # read from its file and padded
    args = ["train", "--model", str(tmp_path), "--data", str(tmp_path / "images"), "--out", str(tmp_path / "run")]
    assert llava_cli(args) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "gave no training records" in err and "--depth-model" in err, err
