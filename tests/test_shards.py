"""``perceptok tokenize``: whole datasets to Parquet shards, read back, bad inputs skipped,
killed and resumed exactly once, split across torchrun ranks, boxes, HF datasets, RGB images."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import perceptok
from perceptok.cli.main import main as cli
from perceptok.io import read_depth, read_manifest
from perceptok.shards import decode_row, decode_rows, load_rows, manifest_items, metadata, tokenize_depth

datasets = pytest.importorskip("datasets")  # the tokenize extra; in every dev install


@pytest.fixture(autouse=True)
def _datasets_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-datasets-cache"))


def write_maps(folder: Path, n: int, size: tuple[int, int] = (48, 64), seed: int = 0) -> list[Path]:
    """``n`` 16-bit PNG depth maps in millimetres (a tilted plane with bumps)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0 : size[0], 0 : size[1]]
    paths = []
    for i in range(n):
        mm = 800 + 20 * yy + rng.integers(0, 400) * np.sin(xx / (3 + i % 5)) ** 2 + rng.integers(0, 50, size)
        path = folder / f"map_{i:03d}.png"
        Image.fromarray(mm.astype(np.uint16)).save(path)
        paths.append(path)
    return paths


def rows_by_id(out: Path) -> dict[str, dict]:
    rows = load_rows(out)
    ids = rows["id"]
    assert len(set(ids)) == len(ids), "an input was written twice"
    return {r["id"]: r for r in rows}


def test_manifest_to_shards_and_back(shared_data, tmp_path):
    """The README's one command on the 21 real maps: every map once, the same ids as encoding it
    directly, and a row decodes back to the map in metres."""
    out = tmp_path / "tokens"
    assert cli(["tokenize", "depth", "--manifest", str(shared_data / "depth" / "manifest.jsonl"),
                "--out", str(out), "--shard-size", "8", "--workers", "2", "--batch-size", "4", "--quiet"]) == 0
    tok = perceptok.load("depth")
    entries = read_manifest(shared_data / "depth" / "manifest.jsonl")
    rows = rows_by_id(out)
    assert sorted(rows) == sorted(e.id for e in entries)
    plain = datasets.load_dataset("parquet", data_dir=str(out), split="train")  # what the issue promises users
    assert plain.num_rows == 21
    for e in entries:  # workers read the codes and prepare the maps: the ids of the obvious loop all the same
        assert rows[e.id]["ids"] == tok.encode(e.load()).ids.tolist(), e.id
    entry = entries[3]
    depth = entry.load()
    enc = tok.encode(depth)
    row = rows[entry.id]
    assert row["ids"] == enc.ids.tolist() and row["text"] == tok.to_text(enc) and tuple(row["grid"]) == enc.stats.grids[0]
    back = decode_row(tok, row)
    assert back.shape == depth.values.shape
    assert torch.allclose(back, tok.decode(enc.ids[None], stats=enc.stats)[0], rtol=1e-5, atol=1e-5)
    every = [rows[e.id] for e in entries]  # two sizes, and the same tokens read as other kinds: decoded together
    every += [dict(every[0], kind="disparity", id="d"), dict(every[1], kind="relative_inverse", id="r")]
    assert len({(r["kind"], r["height"], r["width"]) for r in every}) == 4
    for units in (True, False):
        together = decode_rows(tok, every, units=units)
        for r, m in zip(every, together):  # batches change float rounding in the decoder, nothing more
            alone = decode_row(tok, r, units=units)
            assert m.shape == alone.shape == (r["height"], r["width"])
            assert torch.allclose(m, alone, rtol=1e-5, atol=1e-6, equal_nan=True), r["id"]
    meta = metadata(out)
    assert meta["tokenizer"]["type"] == tok.tokenizer_type and len(meta["tokenizer"]["sha256"]) == 64
    assert (out / "errors.jsonl").read_text() == ""


@pytest.mark.parametrize("workers", [0, 2])
def test_pad_square_tokenizes_each_map_centred_on_a_square(shared_data, tmp_path, capsys, workers):
    """``--pad-square``: the ids of every real map are those of the map centred on a square of
    no-measurement pixels (``perceptok.io.square``), read as codes by workers that prepare them or
    as maps here; rows have the square's size; the option is part of the run's options."""
    from perceptok.io import pad_square

    manifest = str(shared_data / "depth" / "manifest.jsonl")
    out = tmp_path / "tokens"
    base = ["tokenize", "depth", "--manifest", manifest, "--out", str(out), "--workers", str(workers), "--quiet"]
    assert cli([*base, "--pad-square"]) == 0
    tok = perceptok.load("depth")
    rows = rows_by_id(out)
    entries = read_manifest(manifest)
    assert any(e.load().values.shape[0] != e.load().values.shape[1] for e in entries)
    for e in entries:
        square = pad_square(e.load())
        side = max(square.values.shape)
        assert rows[e.id]["ids"] == tok.encode(square).ids.tolist(), e.id
        assert (rows[e.id]["height"], rows[e.id]["width"]) == (side, side)
    assert metadata(out)["options"]["pad"] == "square"
    capsys.readouterr()
    assert cli(base) == 2  # the same folder without it: other options
    assert "pad" in capsys.readouterr().err


def test_pad_square_keeps_codes_as_codes_where_the_table_has_a_blank():
    from perceptok.io import pad_square
    from perceptok.io.depth_files import DepthCodes

    table = torch.arange(4, dtype=torch.float32)
    table[0] = float("nan")
    codes = DepthCodes(torch.tensor([[1, 2, 3]], dtype=torch.int32), table, "metric")
    padded = pad_square(codes)
    assert isinstance(padded, DepthCodes) and padded.codes.tolist() == [[0, 0, 0], [1, 2, 3], [0, 0, 0]]
    full = DepthCodes(codes.codes, torch.arange(4, dtype=torch.float32) + 1, "metric")  # no blank code
    expanded = pad_square(full)
    assert not isinstance(expanded, DepthCodes) and expanded.valid.tolist() == [[False] * 3, [True] * 3, [False] * 3]
    assert pad_square(padded) is padded


def test_bad_inputs_are_skipped_with_their_reason(tmp_path, capsys):
    folder = tmp_path / "maps"
    good = write_maps(folder, 5)
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8) + 100).save(folder / "rgb.png")
    (folder / "empty.png").write_bytes(b"")
    Image.fromarray(np.zeros((20, 20), np.uint16)).save(folder / "all_invalid.png")
    out = tmp_path / "tokens"
    assert cli(["tokenize", "depth", "--folder", str(folder), "--scale", "0.001", "--out", str(out),
                "--shard-size", "3", "--batch-size", "4", "--quiet"]) == 0
    assert "5 maps tokenized, 4 skipped" in capsys.readouterr().err
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert sorted(e["id"] for e in errors) == ["all_invalid.png", "corrupt.png", "empty.png", "rgb.png"]
    assert all(e["reason"] for e in errors)
    assert "channels" in next(e for e in errors if e["id"] == "rgb.png")["reason"]
    assert "0 valid pixels" in next(e for e in errors if e["id"] == "all_invalid.png")["reason"]
    assert sorted(rows_by_id(out)) == sorted(p.name for p in good)


def test_a_killed_run_resumes_exactly_once(tmp_path):
    """SIGKILL midway, then the same command again: every input exactly once, with the ids of a
    run that was never interrupted."""
    folder = tmp_path / "maps"
    write_maps(folder, 120, size=(96, 128))
    command = [sys.executable, "-m", "perceptok.cli", "tokenize", "depth", "--folder", str(folder), "--scale", "0.001",
               "--shard-size", "4", "--batch-size", "2", "--quiet"]
    out = tmp_path / "resumed"
    proc = subprocess.Popen([*command, "--out", str(out)], stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not list(out.glob("train-*.parquet")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.005)
    time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    written = len(list(out.glob("train-*.parquet")))
    assert 0 < written < 30, f"the kill should land midway ({written} of 30 shards written)"
    assert subprocess.run([*command, "--out", str(out)], capture_output=True).returncode == 0
    again = subprocess.run([*command, "--out", str(tmp_path / "whole")], capture_output=True)
    assert again.returncode == 0
    resumed, whole = rows_by_id(out), rows_by_id(tmp_path / "whole")
    assert sorted(resumed) == sorted(whole) and len(resumed) == 120
    assert all(resumed[k]["ids"] == whole[k]["ids"] for k in whole)
    assert not list(out.glob(".*.tmp")) and not list(out.glob("errors/.*.tmp"))


def test_resuming_with_other_options_is_a_clear_error(tmp_path, capsys):
    folder = tmp_path / "maps"
    write_maps(folder, 4)
    out = tmp_path / "tokens"
    base = ["tokenize", "depth", "--folder", str(folder), "--scale", "0.001", "--out", str(out), "--quiet"]
    assert cli([*base, "--shard-size", "2"]) == 0
    capsys.readouterr()
    assert cli([*base, "--shard-size", "3"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "options.shard_size: 2 then, 3 now" in err
    assert cli([*base, "--shard-size", "2", "--tokenizer", "depth:pooled"]) == 2
    assert "tokenizer" in capsys.readouterr().err


def test_torchrun_ranks_take_disjoint_shards_that_cover_the_input(tmp_path):
    """Two ranks under torchrun: each writes only its shards (k % 2 == rank); together every
    input exactly once."""
    folder = tmp_path / "maps"
    write_maps(folder, 11)
    out = tmp_path / "tokens"
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                          str(29500 + os.getpid() % 1000), "-m", "perceptok.cli", "tokenize", "depth", "--folder",
                          str(folder), "--scale", "0.001", "--out", str(out), "--shard-size", "2", "--quiet"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stderr.count("maps tokenized") == 2
    assert sorted(rows_by_id(out)) == sorted(f"map_{i:03d}.png" for i in range(11))
    assert sorted(int(p.stem[6:]) for p in out.glob("train-*.parquet")) == list(range(6))


def test_each_rank_takes_its_own_accelerator(monkeypatch):
    """Under torchrun ``--device cuda`` (and the depth model's default) is each rank's own GPU
    (``LOCAL_RANK``), not every rank's the first; an explicit index and the CPU stay as given."""
    from perceptok.distributed import local_device

    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert local_device("cuda") == torch.device("cuda") and local_device(None) == torch.device("cpu")
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert local_device("cuda") == torch.device("cuda", 3) and local_device(torch.device("xpu")) == torch.device("xpu", 3)
    assert local_device("cuda:1") == torch.device("cuda", 1) and local_device("cpu") == torch.device("cpu")


def test_hugging_face_dataset_source(tmp_path):
    rng = np.random.default_rng(0)
    maps = [(1.0 + rng.random((24, 32))).tolist() for _ in range(5)]
    datasets.Dataset.from_dict({"id": [f"m{i}" for i in range(5)], "depth": maps}).save_to_disk(str(tmp_path / "ds"))
    out = tmp_path / "tokens"
    assert cli(["tokenize", "depth", "--hf-dataset", str(tmp_path / "ds"), "--column", "depth", "--out", str(out),
                "--workers", "1", "--quiet"]) == 0
    rows = rows_by_id(out)
    tok = perceptok.load("depth")
    assert rows["m2"]["ids"] == tok.encode(torch.tensor(maps[2])).ids.tolist()


def test_rgb_images_through_a_depth_model(tmp_path):
    """--images with a tiny random Depth Anything saved from its config (no download)."""
    pytest.importorskip("transformers")
    from test_llava_depth_estimation import tiny_depth_anything

    model, processor = tiny_depth_anything()
    model.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")
    images = tmp_path / "images"
    images.mkdir()
    for i in range(3):
        Image.fromarray((np.random.default_rng(i).random((40, 50, 3)) * 255).astype(np.uint8)).save(images / f"{i}.jpg")
    out = tmp_path / "tokens"
    assert cli(["tokenize", "depth", "--images", str(images), "--depth-model", str(tmp_path / "model"),
                "--out", str(out), "--quiet", "--batch-size", "2"]) == 0
    rows = rows_by_id(out)
    assert sorted(rows) == ["0.jpg", "1.jpg", "2.jpg"]
    assert {r["kind"] for r in rows.values()} == {"relative_inverse"} and rows["1.jpg"]["width"] == 50


def test_coco_boxes_to_shards(shared_data, tmp_path):
    out = tmp_path / "boxes"
    coco = shared_data / "boxes" / "voc100" / "instances.json"
    assert cli(["tokenize", "boxes", "--coco", str(coco), "--preset", "qwen3vl", "--out", str(out),
                "--shard-size", "30", "--quiet"]) == 0
    rows = rows_by_id(out)
    assert len(rows) == 100 and sum(r["count"] for r in rows.values()) == 273
    tok = perceptok.BoxTokenizer.from_preset("qwen3vl")
    row = next(iter(rows.values()))
    parsed = tok.parse(row["text"])
    assert parsed.ids.tolist() == row["ids"] and parsed.labels == row["labels"]


def test_coco_images_are_encoded_a_shard_at_once_and_a_bad_one_costs_only_itself(shared_data, tmp_path):
    """Each shard's images go through the box tokenizer as one batch; where one image is bad (an
    inverted box, a box of three numbers, an annotation without a box, an image without its height)
    the shard is retried image by image: every good image gets the row that encoding it alone
    gives, and each bad one is in errors.jsonl with its reason."""
    from perceptok.shards import tokenize_boxes

    coco = json.loads((shared_data / "boxes" / "voc100" / "instances.json").read_text())
    first = {}
    for a in coco["annotations"]:
        first.setdefault(a["image_id"], a)
    ids = [im["id"] for im in coco["images"]]
    first[ids[3]]["bbox"] = [50, 50, -10, 20]
    first[ids[40]]["bbox"] = [1, 2, 3]
    del first[ids[41]]["bbox"]
    del coco["images"][70]["height"]
    path = tmp_path / "coco.json"
    path.write_text(json.dumps(coco))
    tok = perceptok.BoxTokenizer.from_preset("aurora")
    calls = []
    encode = tok.encode
    tok.encode = lambda boxes, **kw: (calls.append(len(kw["canvas_size"]) if isinstance(kw["canvas_size"], list) else 1),
                                      encode(boxes, **kw))[1]
    summary = tokenize_boxes(path, tmp_path / "out", tok, "boxes:aurora", shard_size=30, progress=False)
    assert (summary.rows, summary.skipped) == (96, 4)
    # shard 0 at once (its inverted box fails in encode), then image by image; shards 1 and 2 fail
    # before encoding (a box missing, a height missing), so only their good images reach encode,
    # one by one; shard 3 at once
    assert calls == [30] + [1] * 30 + [1] * 29 * 2 + [10]
    errors = {e["id"]: e["reason"] for e in map(json.loads, (tmp_path / "out" / "errors.jsonl").read_text().splitlines())}
    assert set(errors) == {str(ids[3]), str(ids[40]), str(ids[41]), str(ids[70])}
    assert "box 0 [50.0, 50.0, 40.0, 70.0] (as x1 y1 x2 y2) is inverted" in errors[str(ids[3])] and "(N, 4)" in errors[str(ids[40])] and "bbox" in errors[str(ids[41])]
    names = {c["id"]: c["name"] for c in coco["categories"]}
    rows = rows_by_id(tmp_path / "out")
    for im in coco["images"][::7]:
        if str(im["id"]) in errors:
            continue
        anns = [a for a in coco["annotations"] if a["image_id"] == im["id"]]
        alone = encode([a["bbox"] for a in anns], canvas_size=(im["height"], im["width"]), format="xywh",
                       labels=[names[a["category_id"]] for a in anns])
        row = rows[str(im["id"])]
        assert row["ids"] == alone.ids.tolist() and row["text"] == tok.to_text(alone) and row["count"] == len(anns)


def test_python_api_matches_the_command(shared_data, tmp_path):
    tok = perceptok.load("depth")
    items = manifest_items(shared_data / "depth" / "manifest.jsonl")[:4]
    summary = tokenize_depth(items, tmp_path / "t", tok, "depth", "first four", shard_size=3, progress=False)
    assert (summary.rows, summary.skipped, summary.shards_written) == (4, 0, 2)
    row = rows_by_id(tmp_path / "t")[items[0].id]
    assert row["ids"] == tok.encode(read_depth(items[0].source, encoding=items[0].encoding, scale=items[0].scale,
                                               kind=items[0].kind, invalid=items[0].invalid)).ids.tolist()


def test_codes_sent_as_one_tensor_a_batch_give_the_rows_of_workers_that_prepare(tmp_path):
    """The accelerator path (workers read codes, each batch crosses as one stacked tensor per size
    and table, the main process normalises batches), run on the CPU: the same rows as workers
    that do the pixel work, the bad file skipped either way."""
    from perceptok.shards.run import CodesBatch, _collate
    from perceptok.shards.sources import folder_items

    folder = tmp_path / "maps"
    write_maps(folder, 9, size=(48, 64))
    write_maps(folder / "wide", 5, size=(40, 90), seed=1)
    for path in (folder / "wide").iterdir():
        path.rename(folder / f"wide_{path.name}")
    (folder / "broken.png").write_bytes(b"\x89PNG not really")
    items = folder_items(folder, None, "metric", 0.001)
    tok = perceptok.load("depth")
    runs = {}
    seen = []  # the maps that went through the network in this process, per run
    encode = tok.encode_prepared
    tok.encode_prepared = lambda prepared: (seen.append((prepare, len(prepared.features))), encode(prepared))[1]
    for prepare in (True, False):
        summary = tokenize_depth(items, tmp_path / str(prepare), tok, "depth", "t", batch_size=6, workers=2,
                                 shard_size=5, progress=False, workers_prepare=prepare)
        assert (summary.rows, summary.skipped) == (14, 1)
        runs[prepare] = rows_by_id(tmp_path / str(prepare))
    # workers that prepare also encode: the main process encodes at most the first input, before
    # they start (what that compiles, they inherit; here it is the broken file, which encodes
    # nothing); where they only read, it encodes everything
    assert sum(n for run, n in seen if run) <= 1 and sum(n for run, n in seen if not run) == 14
    assert runs[True].keys() == runs[False].keys()
    for key, row in runs[True].items():
        other = runs[False][key]
        assert (row["ids"], row["grid"], row["low"], row["high"]) == (other["ids"], other["grid"], other["low"], other["high"])
    from perceptok.io import read_depth_codes

    batch = [(i, read_depth_codes(items[i].source, scale=0.001)) for i in range(len(items)) if "broken" not in items[i].source]
    _, stacked, rest = _collate(batch)
    assert rest == [] and sorted(len(g.indices) for g in stacked) == [5, 9]  # one tensor per size
    assert all(isinstance(g, CodesBatch) and g.codes.shape[0] == len(g.indices) for g in stacked)
    tables: list[torch.Tensor] = []
    maps = [m for g in stacked for m in g.to(torch.device("cpu"), tables)]
    assert all(torch.equal(m.codes, dict(batch)[i].codes) for i, m in maps)
    again = _collate(batch)[1][0]  # the next batch's table is a copy (as it is after crossing processes)
    again.table = again.table.clone()
    assert len(tables) == 1 and again.to(torch.device("cpu"), tables)[0][1].table is tables[0]
    extremes = batch[0][1].codes.clone()
    extremes.view(-1)[:4] = torch.tensor([0, 32767, 32768, 65535])  # every 16-bit code survives the int16 crossing
    (_, back), = _collate([(0, dataclasses.replace(batch[0][1], codes=extremes))])[1][0].to(torch.device("cpu"))
    assert back.codes.dtype == torch.int32 and torch.equal(back.codes, extremes)


def test_workers_prepare_runs_of_maps_and_skip_only_the_bad_one(tmp_path, monkeypatch):
    """A worker prepares its maps in runs (one ``prepare`` call for many maps of mixed sizes and
    both kinds of input), cut at ``PREPARE_PIXELS``: every map gets the ids it gets alone, however
    the runs fall, and a map that cannot be prepared (no valid pixel) costs only itself."""
    from perceptok.io import DepthMap, read_depth_codes
    from perceptok.shards import run

    paths = write_maps(tmp_path / "a", 4, size=(48, 64)) + write_maps(tmp_path / "b", 3, size=(40, 90), seed=1)
    maps: list = [read_depth_codes(p, scale=0.001) for p in paths]
    maps.insert(2, dataclasses.replace(maps[0], codes=torch.zeros_like(maps[0].codes)))  # every code invalid
    maps.insert(5, read_depth(paths[1], scale=0.001))  # a value map among code maps
    tok = perceptok.load("depth")
    alone = {i: tok.encode(m).ids.tolist() for i, m in enumerate(maps) if i != 2}
    calls = []
    prepare = tok.prepare
    tok.prepare = lambda group: (calls.append(len(group)), prepare(group))[1]
    for pixels in (10**9, 48 * 64 * 3, 1):  # one run (the bad map fails it: map by map), runs of 3 maps, of 1
        monkeypatch.setattr(run, "PREPARE_PIXELS", pixels)
        calls.clear()
        joined, stacked, rest = run._collate(list(enumerate(maps)), tokenizer=tok)
        assert stacked == [] and [i for i, _ in rest] == [2] and "0 valid pixels" in rest[0][1]
        (indices, values), = joined
        assert sorted(indices) == sorted(alone) and {i: v["ids"] for i, v in zip(indices, values)} == alone
        # what crosses back to the main process is plain values, pickled with the batch (a tensor
        # would each cross in shared memory: a file and a handshake)
        assert all(type(v["ids"]) is list and type(v["low"]) is float and type(v["text"]) is str for v in values)
        assert max(calls) == {10**9: 9, 48 * 64 * 3: 3, 1: 1}[pixels]
    assert isinstance(maps[5], DepthMap)


class _BatchOfBuffers(torch.utils.data.Dataset):
    """Each item holds 24 buffers of 4 MB at once (as a batch of maps does) and frees them; it
    returns the page faults that took."""

    def __len__(self) -> int:
        return 4

    def __getitem__(self, k: int) -> int:
        import resource

        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        buffers = [np.ones(2**19) for _ in range(24)]
        del buffers
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def test_workers_keep_the_memory_they_free(tmp_path):
    """``tokenize_depth``'s workers tell glibc to keep freed memory: a batch's buffers are then
    faulted in once, not again for every batch (by default the freed 96 MB go back to the kernel
    each time). Where libc has no ``mallopt``, the setting is skipped without harm."""
    import ctypes

    from perceptok.shards.run import _keep_freed_memory

    def faults(init):  # a spawned worker starts from glibc's defaults (a forked one from this process's history)
        loader = torch.utils.data.DataLoader(_BatchOfBuffers(), batch_size=None, num_workers=1, worker_init_fn=init,
                                             multiprocessing_context="spawn")
        return list(loader)[1:]  # after the first batch

    tuned, plain = faults(_keep_freed_memory), faults(None)
    if hasattr(ctypes.CDLL(None), "mallopt"):
        # 24 × 4 MB is 24,576 pages: by default a fresh process gives half of them back each time
        assert max(tuned) < 100 and min(plain) > 5000, (tuned, plain)
    else:
        assert len(tuned) == len(plain) == 3


def test_bench_tokenize_command(capsys):
    code = cli(["bench", "tokenize", "--files", "6", "--workers", "2", "--batch-size", "2", "--repeats", "1",
                "--loop-files", "3", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and (result["files"], result["loop_files"]) == (6, 3)
    assert set(result["workers_maps_s"]) == {"0", "1", "2"} and all(v > 0 for v in result["workers_maps_s"].values())
    assert set(result["seconds_of_one_pass"]) == {"decode_files", "prepare_pixels", "network_and_text", "write_parquet"}
    per_map = result["per_map"]  # CPU and page faults a map: the workers' appear once they ran
    assert set(per_map) == {"loop", "0", "1", "2"} and all(use["main_cpu_ms"] > 0 for use in per_map.values())
    assert per_map["1"]["workers_cpu_ms"] > 0 and per_map["2"]["workers_page_faults"] > 0
    assert cli(["bench", "tokenize", "--files", "2", "--workers", "1", "--batch-size", "2", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "tokenize, 1 workers:" in out and "ms CPU" in out and "page faults" in out
