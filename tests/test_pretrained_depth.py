"""The depth tokenizer that ships in the package: conformance, size, model card, and its quality
on the real maps against the pooled baseline measured in the same run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import perceptok
from perceptok.depth.evaluate import evaluate_depth
from perceptok.io import read_manifest
from test_depth import DepthConformance

PRETRAINED = Path(perceptok.__file__).parent / "pretrained" / "depth"


class TestShippedDepthConformance(DepthConformance):
    def make_tokenizer(self):
        return perceptok.load("depth")


def test_shipped_files_and_card():
    assert (PRETRAINED / "model.safetensors").stat().st_size <= 20 * 2**20
    card = (PRETRAINED / "README.md").read_text()
    for needle in ("## Training", "synthetic:", "## Evaluation", '"ordinal_acc"', "perceptok train depth"):
        assert needle in card, needle
    tok = perceptok.load("depth")
    assert tok.config.preset == "default" and tok.tokens_per_map == 100 and tok.vocab_size == 128


def test_meets_the_quality_goal_on_real_maps(shared_data):
    """The issue's goal on the 21 real maps (never seen in training): ordinal_acc ≥ 0.975,
    abs_rel ≤ 0.045, codebook use ≥ 0.9, and clearly better than the pooled baseline."""
    maps = [e.load() for e in read_manifest(shared_data / "depth" / "manifest.jsonl")]
    ours = evaluate_depth(perceptok.load("depth"), maps)
    pooled = evaluate_depth(perceptok.load("depth:pooled"), maps)
    assert ours["ordinal_acc"] >= 0.975 and ours["abs_rel"] <= 0.045 and ours["codebook_usage"] >= 0.9
    assert ours["ordinal_acc"] > pooled["ordinal_acc"] + 0.02 and ours["abs_rel"] < 0.7 * pooled["abs_rel"]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_keeps_the_codes_of_real_maps(shared_data, dtype):
    """Issue 8's bar: a bf16 (or fp16) tokenizer gives the float32 codes of the 21 real maps for
    at least 99 % of the cells (99.4 % measured for v3, 99.3 % for v2; bf16 activations in the encoder gave 98.0 %)."""
    maps = [e.load() for e in read_manifest(shared_data / "depth" / "manifest.jsonl")]
    tok = perceptok.load("depth")
    reference = tok.encode(maps).ids
    agree = (tok.to(dtype=dtype).encode(maps).ids == reference).float().mean()
    assert agree >= 0.99, float(agree)
