"""Curriculum records from synthetic scenes, real depth maps and real COCO boxes."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import torch
import pytest

from perceptok import BoxTokenizer, PointTokenizer, PooledDepthTokenizer, load
from perceptok_llava.data import MULTI_TASKS, build_records, mark_points, pad_to_square
from perceptok_llava.sources import Sample, coco_samples, manifest_samples, shard_samples, synthetic_samples

TOKS = dict(depth=PooledDepthTokenizer(), boxes=BoxTokenizer.from_preset("aurora"), points=PointTokenizer.from_preset("aurora"))


def test_synthetic_records_cover_every_task_with_exact_answers():
    records = build_records(synthetic_samples(12, seed=1, size=(96, 128)), **TOKS, seed=0)
    tasks = {r["task"] for r in records}
    assert tasks == {"depth_generation", "box_listing", "relative_depth_cot", "relative_depth_direct",
                     "counting_cot", "counting_direct"}
    for r in records:
        assert r["prompt"].count("<image>") == 1 and r["image"].size == (128, 128)  # padded to a square
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


def test_records_show_their_progress_when_asked(capsys):
    """A large dataset (with a depth model, an hour) shows a bar of samples done; quiet by default."""
    build_records(synthetic_samples(3, size=(48, 64)), **TOKS, tasks=["depth_generation"])
    assert "curriculum records" not in capsys.readouterr().err
    build_records(synthetic_samples(3, size=(48, 64)), **TOKS, tasks=["depth_generation"], progress=True)
    err = capsys.readouterr().err
    assert "curriculum records: 3sample" in err, err  # the count of samples done, with no total known


def test_marked_points_are_drawn():
    sample = next(synthetic_samples(1, seed=3, size=(96, 128)))
    records = build_records([sample], **TOKS, tasks=["relative_depth_direct"], seed=2)
    padded = pad_to_square(sample).image.load()
    marked = records[0]["image"].load()
    assert records and marked.size == padded.size == (128, 128)
    red = (np.asarray(marked, int) - np.asarray(padded, int)).any(-1)  # (H, W) pixels the marks changed
    for x, y in records[0]["points"]:  # a circle around every point, none elsewhere than near the points
        assert red[int(y) - 5 : int(y) + 6, int(x) - 5 : int(x) + 6].any()
    assert red.mean() < 0.2


def test_records_hold_recipes_not_pixels_and_load_the_same_image_from_a_file(tmp_path):
    """A curriculum of 20k photos held as decoded images needed ~56 GB; records now hold where each
    image comes from, its padding and its marks, and load the pixels when a batch needs them: from
    a file, exactly the image that the same photo held in memory gives."""
    import pickle

    from PIL import Image

    from perceptok_llava.images import ImageRecipe

    sample = next(synthetic_samples(1, seed=5, size=(96, 128)))
    photo = tmp_path / "photo.png"
    sample.image.load().save(photo)
    tasks = ["depth_generation", "relative_depth_direct", "counting_cot"]
    in_memory = build_records([sample], **TOKS, tasks=tasks, seed=4)
    on_disk = build_records([Sample(sample.id, str(photo), sample.depth, sample.boxes, sample.labels)], **TOKS,
                            tasks=tasks, seed=4)
    assert [r["task"] for r in on_disk] == [r["task"] for r in in_memory] and len(on_disk) == 3
    for a, b in zip(in_memory, on_disk):
        assert isinstance(b["image"], ImageRecipe) and b["image"].size == (128, 128) and a["target"] == b["target"]
        assert np.array_equal(np.asarray(a["image"].load()), np.asarray(b["image"].load()))
    pixels = 128 * 128 * 3
    assert len(pickle.dumps(on_disk)) < pixels / 10  # a recipe is a path and a few numbers
    assert Image.open(photo).size == (128, 96)  # the file is read, never written


def test_a_missing_or_broken_image_file_is_a_clear_error(tmp_path):
    from perceptok_llava.images import load_image

    with pytest.raises(FileNotFoundError, match="nowhere.png not found"):
        Sample("gone", str(tmp_path / "nowhere.png"))
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(ValueError, match="text.png: not an image file"):
        Sample("text", str(tmp_path / "text.png"))
    photo = tmp_path / "cut.png"
    next(synthetic_samples(1, size=(64, 80))).image.load().save(photo)
    sample = Sample("cut", str(photo))  # the header is whole; the pixels are cut short afterwards
    photo.write_bytes(photo.read_bytes()[: photo.stat().st_size // 2])
    with pytest.raises(ValueError, match="cut.png: cannot be read"):
        load_image(sample.image)


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


@pytest.mark.parametrize("square", [True, False])
def test_a_box_lands_on_the_pixels_the_model_sees(square):
    """Issue 13 (10): llava-hf's CLIPImageProcessor resizes the short side to 336 and centre-crops,
    so targets about the full photo described pixels the model never saw. Records pad to a square
    (LLaVA-1.5's way); the box's tokens then name the red pixels of the processed image. Without
    padding (square=False) they do not, which is what the padding fixes."""
    from PIL import Image, ImageDraw
    from transformers import CLIPImageProcessor


    photo = Image.new("RGB", (500, 281), (90, 90, 90))
    box = [400, 50, 480, 150]  # near the right edge, which a centre crop cuts away
    ImageDraw.Draw(photo).rectangle([box[0], box[1], box[2] - 1, box[3] - 1], fill=(255, 0, 0))
    record = build_records([Sample("photo", photo, boxes=np.array([box], float), labels=["red"])], **TOKS,
                           tasks=["box_listing"], square=square)[0]
    clip = CLIPImageProcessor(size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336})  # llava-hf's
    pixels = clip(record["image"].load(), return_tensors="pt")["pixel_values"][0]  # (3, 336, 336), normalised
    red = (pixels[0] > 1.5) & (pixels[1] < -1.0)
    ys, xs = torch.nonzero(red, as_tuple=True)
    said = TOKS["boxes"].decode(TOKS["boxes"].parse(record["target"]).ids, canvas_size=(336, 336))[0]
    seen = torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=said.dtype) if len(xs) else None
    agrees = seen is not None and bool(((said - seen).abs() <= 2).all())
    assert agrees == square, (said, seen)



def test_point_counts_choose_how_many_points_a_question_marks():
    samples = list(synthetic_samples(6, size=(64, 80)))
    records = build_records(samples, **TOKS, tasks=["relative_depth_direct"], point_counts=(4,))
    assert records and all(len(r["letters"]) == 4 == len(r["points"]) for r in records)
    by_id = {s.id: pad_to_square(s) for s in samples}  # the records describe the square image
    for r in records:  # the gold answer is the marked point nearest the camera (the smallest metric depth)
        depth = by_id[r["id"].split("/")[0]].depth.values
        nearest = min(range(4), key=lambda i: float(depth[int(r["points"][i][1]), int(r["points"][i][0])]))
        assert r["answer"] == f"({'ABCD'[nearest]})"
    with pytest.raises(ValueError, match="from 2 to 5"):
        build_records(samples[:1], **TOKS, point_counts=(2, 6))
    with pytest.raises(ValueError, match="no depth"):
        mark_points(Sample("rgb-only", samples[0].image), 2, np.random.default_rng(0))


def test_token_shards_are_a_curriculum_source(shared_data, tmp_path):
    """Tokenize once (``perceptok tokenize depth``), build curricula from the shards: the same
    images as the manifest, the maps decoded back in metres, and the records built from them."""
    import json

    pytest.importorskip("datasets")
    from perceptok.cli.main import main as cli

    manifest = shared_data / "depth" / "manifest.jsonl"
    out = tmp_path / "tokens"
    assert cli(["tokenize", "depth", "--manifest", str(manifest), "--out", str(out), "--quiet"]) == 0
    samples = {s.id: s for s in shard_samples(out)}
    direct = {s.id: s for s in manifest_samples(manifest)}
    assert sorted(samples) == sorted(direct)
    for key in list(direct)[:3]:
        got, ref = samples[key], direct[key]
        assert np.array_equal(np.asarray(got.image.load()), np.asarray(ref.image.load()))
        assert got.depth.values.shape == ref.depth.values.shape and got.depth.kind == ref.depth.kind
        ok = ref.depth.valid & got.depth.valid
        error = (got.depth.values[ok] - ref.depth.values[ok]).abs() / ref.depth.values[ok]
        assert float(error.median()) < 0.25  # the tokenizer's reconstruction, in the map's units
    records = build_records(list(samples.values())[:4], **TOKS, tasks=["depth_generation", "relative_depth_direct"])
    assert {r["task"] for r in records} == {"depth_generation", "relative_depth_direct"}
    from perceptok_llava.cli import load_samples

    assert sorted(s.id for s in load_samples([str(out)], seed=0)) == sorted(direct)  # perceptok-llava train --data DIR
    meta = json.loads((out / "metadata.json").read_text())
    tampered = dict(meta, tokenizer=dict(meta["tokenizer"], sha256="0" * 64))
    (out / "metadata.json").write_text(json.dumps(tampered))
    with pytest.raises(ValueError, match="another 'depth' tokenizer"):
        next(shard_samples(out))
    (out / "metadata.json").write_text(json.dumps(dict(meta, options=dict(meta["options"], source="folder=x:::"))))
    with pytest.raises(ValueError, match="needs the images"):
        next(shard_samples(out))


def test_padded_token_shards_give_the_targets_of_the_maps_themselves(shared_data, tmp_path):
    """Shards tokenized with ``--pad-square`` hold the tokens of the padded map, which the records
    take as their depth targets as they are: the same targets as records built from the maps (not
    a re-encoded reconstruction), marked points on the photo, never on the padding."""
    pytest.importorskip("datasets")
    from perceptok.cli.main import main as cli

    manifest = shared_data / "depth" / "manifest.jsonl"
    out = tmp_path / "tokens"
    assert cli(["tokenize", "depth", "--manifest", str(manifest), "--out", str(out), "--pad-square", "--quiet"]) == 0
    tasks, toks = ["depth_generation", "relative_depth_direct"], dict(TOKS, depth=load("depth"))  # the shards' tokenizer
    direct = {r["id"]: r for r in build_records(manifest_samples(manifest), **toks, tasks=tasks)}
    shards = {r["id"]: r for r in build_records(shard_samples(out), **toks, tasks=tasks)}
    depth_ids = [k for k in direct if k.endswith("/depth")]
    assert len(depth_ids) == 21 and all(shards[k]["target"] == direct[k]["target"] for k in depth_ids)
    marked = [r for r in shards.values() if r["task"] == "relative_depth_direct"]
    assert len(marked) >= 15
    for r in marked:
        image = r["image"]
        (x0, y0), (w, h) = image.frame.offset, image.source_size
        assert image.size[0] == image.size[1] == max(w, h)
        assert all(x0 <= x < x0 + w and y0 <= y < y0 + h for x, y in r["points"]), r["id"]
    sample = next(shard_samples(out))
    with pytest.raises(ValueError, match="carries depth tokens"):
        pad_to_square(dataclasses.replace(sample, image=sample.image.source))  # unpadded, with the padded map's tokens
