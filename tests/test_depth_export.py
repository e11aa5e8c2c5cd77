"""``perceptok export depth --onnx`` (parity with torch through onnxruntime) and
``perceptok bench depth --json``."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch

import perceptok
from perceptok import DepthTokenizer
from perceptok.cli import main
from perceptok.depth.normalize import normalize_depth
from perceptok.depth.onnx import export_onnx
from perceptok.depth.onnx_check import check_onnx
from perceptok.depth.resample import model_input
from perceptok.io import DepthMap
from perceptok.synthetic import render_scene
from test_depth import ramp_map


def test_shipped_tokenizer_exports_with_identical_ids_on_real_maps(capsys, shared_data, tmp_path):
    manifest = shared_data / "depth" / "manifest.jsonl"
    assert main(["export", "depth", "--onnx", str(tmp_path / "onnx"), "--check", str(manifest)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["maps"] == 21 and result["ids_equal_fraction"] == 1.0 and result["max_abs_decode_diff"] <= 1e-4
    assert {p.name for p in (tmp_path / "onnx").iterdir()} == {"encoder.onnx", "decoder.onnx", "export.json"}


@pytest.mark.parametrize("preset", ["default", "aurora"])
def test_graphs_take_any_batch_and_grid(preset, tmp_path):
    torch.manual_seed(0)
    tok = perceptok.load("depth") if preset == "default" else DepthTokenizer.from_preset("aurora")
    export_onnx(tok, tmp_path)
    encoder = ort.InferenceSession(str(tmp_path / "encoder.onnx"), providers=["CPUExecutionProvider"])
    decoder = ort.InferenceSession(str(tmp_path / "decoder.onnx"), providers=["CPUExecutionProvider"])
    for grid, batch in [(tok.config.grids[0], 3), (tok.config.grids[-1], 1)]:
        size = (grid[0] * 12, grid[1] * 12)
        maps = torch.stack([torch.from_numpy(render_scene(i, size, kind="indoor").depth) for i in range(batch)])
        norm = normalize_depth(maps, "metric")
        x = model_input(norm.rel[:, None], norm.valid[:, None], tok.default_size(grid))[:, : tok.model.in_channels]
        ids = encoder.run(None, {"x": x.numpy()})[0]
        assert ids.shape == (batch, *grid)
        assert np.array_equal(ids.reshape(batch, -1), tok.encode(maps).ids.numpy())
        depth = decoder.run(None, {"ids": ids})[0]
        expected = tok.decode(torch.from_numpy(ids).flatten(1), size=tok.default_size(grid))[:, None].numpy()
        assert depth.shape == expected.shape and np.abs(depth - expected).max() <= 1e-4


def test_check_reports_a_tokenizer_that_differs(tmp_path):
    """The check compares, it does not assume: another tokenizer's graphs disagree."""
    torch.manual_seed(0)
    export_onnx(DepthTokenizer.from_preset("default"), tmp_path)  # random weights
    maps = [DepthMap(ramp_map(), torch.ones(48, 64, dtype=torch.bool), "metric")]
    result = check_onnx(perceptok.load("depth"), tmp_path, maps)
    assert result["ids_equal_fraction"] < 0.9 and result["max_abs_decode_diff"] > 1e-3


def test_export_replaces_a_folder_whole_and_refuses_the_pooled_baseline(capsys, tmp_path):
    out = tmp_path / "onnx"
    out.mkdir()
    (out / "stale.txt").write_text("from an older export")
    export_onnx(perceptok.load("depth"), out)
    assert not (out / "stale.txt").exists() and (out / "encoder.onnx").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["onnx"]  # no temporary folder left behind
    assert main(["export", "depth", "--tokenizer", "depth:pooled", "--onnx", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "no network to export" in err and len(err.strip().splitlines()) == 1


def test_bench_prints_every_figure_for_both_architectures(capsys):
    assert main(["bench", "depth", "--json", "--batch-sizes", "1", "2", "--train-batch", "4", "--scenes", "2",
                 "--seconds", "0.01", "--repeats", "1"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["device"] == "cpu" and result["dtype"] == "fp32" and result["torch"] == torch.__version__
    for name in ("default", "aurora"):
        figures = result[name]
        assert set(figures["encode_maps_s"]) == set(figures["decode_maps_s"]) == {"1", "2"}
        values = [*figures["encode_maps_s"].values(), *figures["decode_maps_s"].values(),
                  figures["round_trip_640x480_maps_s"], figures["train_data_maps_s"], figures["train_step_maps_s"]]
        assert all(v > 0 for v in values)


def test_bench_says_when_a_device_is_missing(capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU; the message is for machines without one")
    assert main(["bench", "depth", "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert "not available here" in err and len(err.strip().splitlines()) == 1


def test_gpu_check_script_runs_on_a_cpu():
    """benchmarks/gpu_check.py is prepared for a lent GPU; --device cpu --quick runs the same code."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"
    out = subprocess.run([sys.executable, str(script), "--device", "cpu", "--quick"], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    phases = [json.loads(line) for line in out.stdout.splitlines()]
    assert [p["phase"] for p in phases][-4:] == ["tokenize", "bench", "bench", "train"]  # the open goal first
    assert phases[-1]["steps"] > 0 and phases[-2]["dtype"] == "bf16"
    assert phases[-4]["files"] == 16 and phases[-4]["loop_maps_s"] > 0 and set(phases[-4]["workers_maps_s"]) == {"0", "1", "2"}
