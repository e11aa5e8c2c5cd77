"""Depth tokenizer speed: the default's networks beside the original architecture (REFERENCE.md,
random weights) in the same run, at batch 1 and 64, plus the full tokenizer path on 640×480 maps.

Run: ``.venv/bin/python -m pytest benchmarks/test_depth_throughput.py --benchmark-columns=mean,stddev,rounds``
Each test stores ``maps_per_s`` in ``extra_info``.
"""

from __future__ import annotations

import pytest
import torch

import perceptok
from perceptok.depth import DepthTokenizer

torch.set_num_threads(2)


def _tokenizer(name: str) -> DepthTokenizer:
    if name == "default":
        try:
            return perceptok.load("depth")
        except perceptok.CheckpointError:  # not trained yet: the same architecture, random weights
            return DepthTokenizer.from_preset("default")
    torch.manual_seed(0)
    return DepthTokenizer.from_preset("aurora")


def _inputs(tok: DepthTokenizer, batch: int) -> torch.Tensor:
    h, w = tok.default_size(tok.config.grids[0])
    return torch.rand(batch, tok.model.in_channels, h, w) * 2 - 1


@pytest.mark.parametrize("batch", [1, 64])
@pytest.mark.parametrize("name", ["aurora", "default"])
def test_encode_network(benchmark, name, batch):
    tok = _tokenizer(name)
    x = _inputs(tok, batch)

    @torch.no_grad()
    def run():
        return tok.model.quantize(tok.model.net.encode(x))[1]

    ids = benchmark.pedantic(run, rounds=5 if batch == 64 else 20, warmup_rounds=1)
    assert ids.shape == (batch, 100)
    benchmark.extra_info["maps_per_s"] = batch / benchmark.stats["mean"]


@pytest.mark.parametrize("batch", [1, 64])
@pytest.mark.parametrize("name", ["aurora", "default"])
def test_decode_network(benchmark, name, batch):
    tok = _tokenizer(name)
    ids = torch.randint(0, 128, (batch, 100))

    @torch.no_grad()
    def run():
        return tok.model.decode_codes(tok.model.codes(ids), tok.config.grids[0])

    out = benchmark.pedantic(run, rounds=5 if batch == 64 else 20, warmup_rounds=1)
    assert out.shape[0] == batch
    benchmark.extra_info["maps_per_s"] = batch / benchmark.stats["mean"]


@pytest.mark.parametrize("name", ["aurora", "default"])
def test_tokenizer_round_trip_640x480(benchmark, name):
    """encode (normalisation, hole filling, resizing, network) + decode to metres at 640×480."""
    tok = _tokenizer(name)
    depth = torch.rand(16, 480, 640) * 5 + 0.5

    def run():
        enc = tok.encode(depth)
        return tok.decode(enc.ids, stats=enc.stats)

    out = benchmark.pedantic(run, rounds=3, warmup_rounds=1)
    assert out.shape == (16, 480, 640)
    benchmark.extra_info["maps_per_s"] = 16 / benchmark.stats["mean"]


@pytest.fixture(scope="module")
def pool():
    from perceptok.depth.data import load_pool

    return load_pool(["synthetic:32"])


@pytest.mark.parametrize("batched", [True, False])
def test_training_data_one_core(benchmark, pool, batched):
    """The training data pipeline on one core: 256 maps as one batched call, beside the same
    code called map by map (the per-item loop it replaced had this shape; baseline)."""
    from perceptok.depth.augment import Generators, make_batch

    cfg = perceptok.load("depth").config
    gens = Generators.seeded(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        if batched:
            out = benchmark.pedantic(lambda: make_batch(pool, cfg, 256, gens), rounds=5, warmup_rounds=1)
        else:
            out = benchmark.pedantic(lambda: [make_batch(pool, cfg, 1, gens) for _ in range(256)], rounds=2,
                                     warmup_rounds=1)[0]
    finally:
        torch.set_num_threads(threads)
    assert out.x.shape[1] == 2
    benchmark.extra_info["maps_per_s"] = 256 / benchmark.stats["mean"]
