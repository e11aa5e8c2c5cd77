"""The depth commands: eval on the real maps (with the pooled baseline), encode with a preview,
decode to a file, and training from the command line."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from perceptok import DepthTokenizer, PooledDepthTokenizer
from perceptok.cli import main

KEYS = {"abs_rel", "delta1", "rmse_rel", "ordinal_acc", "ordinal_acc_3pt", "ordinal_acc_4pt", "ordinal_acc_5pt",
        "codebook_usage", "perplexity", "tokens_per_map", "maps_per_s"}


def test_eval_prints_one_json_object_with_baseline(capsys, shared_data):
    manifest = shared_data / "depth" / "manifest.jsonl"
    assert main(["eval", "depth", "--tokenizer", "depth:pooled", "--manifest", str(manifest), "--json",
                 "--baseline", "pooled"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert KEYS <= set(result) and KEYS <= set(result["baselines"]["pooled"])
    # The figures for this baseline: ordinal_acc 0.945, abs_rel 0.070.
    assert abs(result["ordinal_acc"] - 0.945) < 0.01 and abs(result["abs_rel"] - 0.070) < 0.005
    assert result["tokens_per_map"] == 100 and result["maps"] == 21


def test_eval_sparse_lidar_like_maps(capsys, shared_data):
    manifest = shared_data / "depth" / "manifest.jsonl"
    assert main(["eval", "depth", "--tokenizer", "depth:pooled", "--manifest", str(manifest), "--json",
                 "--degrade", "lidar"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert main(["eval", "depth", "--tokenizer", "depth:pooled", "--manifest", str(manifest), "--json"]) == 0
    dense = json.loads(capsys.readouterr().out)
    # well above chance (0.5), near the dense figure, and measured on other pixels than the dense run
    assert 0.85 < result["ordinal_acc"] <= 1.0 and result["abs_rel"] < 0.15
    assert result["abs_rel"] != dense["abs_rel"]


def test_encode_with_preview_and_decode(capsys, shared_data, tmp_path):
    manifest = shared_data / "depth" / "manifest.jsonl"
    preview = tmp_path / "preview.png"
    assert main(["encode", "depth", "iclnuim_2", "--manifest", str(manifest), "--tokenizer", "depth:pooled",
                 "--preview", str(preview)]) == 0
    out = capsys.readouterr()
    text = out.out.strip()
    assert PooledDepthTokenizer().from_text(text).shape == (100,)
    image = np.asarray(Image.open(preview).convert("RGB"))
    assert image.shape[1] == 3 * 640 + 2 * 16 and image.shape[0] > 480 + 60  # three panels, titles and colour bars
    title, bar, footer = image[:40], image[44 + 480 + 8 : 44 + 480 + 26], image[-40:]  # scale 2: 22·2 px of title
    assert (title < 100).any() and (footer < 100).any()  # dark text: the titles and the map's scores
    assert len({tuple(px) for px in bar[:, :640].reshape(-1, 3)}) > 100  # a colour bar, not text
    assert "abs_rel" not in out.out  # the scores are on the picture, the token text alone on stdout
    assert main(["decode", "depth", text, "--out", str(tmp_path / "d.npy"), "--size", "48", "64",
                 "--tokenizer", "depth:pooled"]) == 0
    rel = np.load(tmp_path / "d.npy")
    assert rel.shape == (48, 64) and 0 <= rel.min() and rel.max() <= 1


def test_encode_a_depth_file(capsys, tmp_path):
    depth = (np.linspace(500, 4000, 64 * 80).reshape(64, 80)).astype(np.uint16)
    Image.fromarray(depth).save(tmp_path / "d.png")
    assert main(["encode", "depth", str(tmp_path / "d.png"), "--scale", "0.001", "--tokenizer", "depth:pooled"]) == 0
    assert capsys.readouterr().out.startswith("<DEPTH_START>")


def test_depth_cli_errors(capsys, tmp_path):
    assert main(["encode", "depth", str(tmp_path / "nope.png"), "--tokenizer", "depth:pooled"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["eval", "depth", "--tokenizer", "boxes", "--manifest", str(tmp_path / "m.jsonl")]) == 2
    assert "not a depth tokenizer" in capsys.readouterr().err


def test_train_from_the_command_line(capsys, tmp_path):
    assert main(["train", "depth", "--preset", "tiny", "--data", "synthetic:8", "--out", str(tmp_path),
                 "--steps", "4", "--batch-size", "4", "--eval-every", "2", "--val-scenes", "4",
                 "--set", "quantizer=fsq", "--set", "fsq_levels=[4,4]", "--set", "decoder_stride=2"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["step"] == 4
    saved = json.loads((tmp_path / "tokenizer" / "config.json").read_text())
    assert saved["quantizer"] == "fsq" and saved["fsq_levels"] == [4, 4] and saved["decoder_stride"] == 2


@pytest.mark.parametrize("pair, match", [("widht=3", "FIELD one of"), ("cell_size", "FIELD=VALUE"),
                                         ("cell_size=3", "cell_size must be a power of two"),
                                         ("fsq_levels=[64,2]", "must be ≥ 3")])
def test_bad_training_overrides_are_user_errors(capsys, tmp_path, pair, match):
    assert main(["train", "depth", "--data", "synthetic:2", "--out", str(tmp_path), "--set", pair]) == 2
    assert match in capsys.readouterr().err


@pytest.mark.parametrize("extra, match", [(["--init", "depth", "--preset", "default"], "drop --preset and --set"),
                                          (["--init", "boxes"], "needs a VQ-VAE depth tokenizer")])
def test_bad_fine_tuning_is_a_user_error(capsys, tmp_path, extra, match):
    assert main(["train", "depth", "--data", "synthetic:2", "--out", str(tmp_path), "--steps", "1", *extra]) == 2
    err = capsys.readouterr().err
    assert match in err and len(err.strip().splitlines()) == 1


def test_eval_appends_to_the_model_card(capsys, shared_data, tmp_path):
    PooledDepthTokenizer().save_pretrained(tmp_path)
    manifest = shared_data / "depth" / "manifest.jsonl"
    assert main(["eval", "depth", "--tokenizer", "depth:pooled", "--manifest", str(manifest), "--card", str(tmp_path)]) == 0
    card = (tmp_path / "README.md").read_text()
    assert "## Evaluation" in card and '"ordinal_acc"' in card and "library_name: perceptok" in card


def test_training_under_torchrun_with_two_processes(tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "-m", "perceptok.cli", "train", "depth",
           "--preset", "tiny", "--data", "synthetic:8", "--out", str(tmp_path), "--steps", "4", "--batch-size", "4",
           "--eval-every", "2", "--val-scenes", "4", "--workers", "0"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    printed = [line for line in out.stdout.splitlines() if line.startswith("{")]
    assert len(printed) == 1 and json.loads(printed[0])["step"] == 4  # rank 0 reports once
    assert (tmp_path / "tokenizer" / "model.safetensors").exists()


def test_three_ranks_with_a_time_limit_stop_together_with_identical_weights(tmp_path):
    """The time limit is read by rank 0 alone and broadcast, so ranks whose clocks and pools
    differ (7 scenes on 3 ranks; rank 0 also validates) take the same steps; a rank that
    stopped on its own clock would leave the others blocked in DDP's all-reduce (the timeout
    below) or with different weights."""
    worker = Path(__file__).with_name("ddp_depth_worker.py")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=3", str(worker), str(tmp_path), "0.1"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=240)  # about 35 s when correct
    assert out.returncode == 0, out.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(3)]
    assert ranks[0]["steps"] > 3  # it trained, and validated on the way
    assert len({r["steps"] for r in ranks}) == 1 and len({r["weights"] for r in ranks}) == 1
    saved = DepthTokenizer.from_pretrained(tmp_path / "tokenizer")
    assert ranks[0]["weights"] == _fingerprint(saved)


def _fingerprint(tok) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(tok.state_tensors().items()):
        digest.update(name.encode() + tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def test_wide_map_round_trips_through_the_shell_with_its_grid(capsys, tmp_path):
    wide = np.tile(np.linspace(2.0, 30.0, 60, dtype=np.float32)[:, None], (1, 240))  # 240×60, metres
    np.save(tmp_path / "wide.npy", wide)
    assert main(["encode", "depth", str(tmp_path / "wide.npy"), "--kind", "metric"]) == 0
    text = capsys.readouterr().out.strip()
    assert text.startswith("<DEPTH_START><DEPTH_GRID_5x20>")
    assert main(["decode", "depth", text, "--out", str(tmp_path / "back.npy")]) == 0
    assert np.load(tmp_path / "back.npy").shape == (20, 80)  # the 5×20 grid's own size, not 10×10 stripes


def test_encode_json_and_decode_stats_give_metres_back(capsys, shared_data, tmp_path):
    """Issue 10 (6): `decode depth` could only give relative depth; `encode --json` prints the
    map's statistics and `decode --stats` takes them."""
    from perceptok.io import read_manifest

    manifest = shared_data / "depth" / "manifest.jsonl"
    assert main(["encode", "depth", "iclnuim_2", "--manifest", str(manifest), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["stats"]["kind"] == "metric" and printed["stats"]["size"] == [480, 640]
    out = tmp_path / "m.npy"
    assert main(["decode", "depth", printed["text"], "--stats", json.dumps(printed["stats"]), "--out", str(out)]) == 0
    truth = next(e for e in read_manifest(manifest) if e.id == "iclnuim_2").load()
    metres, ok = np.load(out), truth.valid.numpy()
    assert metres.shape == (480, 640)
    assert np.mean(np.abs(metres[ok] - truth.values.numpy()[ok]) / truth.values.numpy()[ok]) < 0.1
    assert main(["decode", "depth", printed["text"], "--stats", "{not json", "--out", str(out)]) == 2
    assert "encode depth --json" in capsys.readouterr().err
