"""Depth tokenizers follow the input's device and dtype.

CI has no GPU, so wrong-device bugs are caught with the ``meta`` device: inside
``with torch.device("meta"):`` every tensor made without an explicit ``device=`` lands on
``meta``, and the first op that mixes it with the CPU input raises "Tensor on device meta is not
on the expected device cpu!". A path that passes here creates every tensor on its input's
device (``torch.zeros(..., device=x.device)``, ``zeros_like``), which is what makes it run on
CUDA or MPS; a bare ``torch.tensor(...)`` in it, which on a GPU would land on the CPU and crash
(the ``quantile`` bug of issue 8), fails this test on a CPU.
"""

from __future__ import annotations

import pytest
import torch

import perceptok
from perceptok import DepthTokenizer, PooledDepthTokenizer
from perceptok.depth.augment import Generators, make_batch
from perceptok.depth.data import MapPool, SyntheticScenes
from perceptok.depth.normalize import normalize_depth
from test_depth import ramp_map


def _maps() -> list[torch.Tensor]:
    holes = ramp_map(40, 40)
    holes[::3] = 0.0
    return [ramp_map(), ramp_map(20, 90), holes]


@pytest.fixture(params=["default", "aurora", "pooled"])
def tokenizer(request):
    torch.manual_seed(0)
    if request.param == "pooled":
        return PooledDepthTokenizer()
    return perceptok.load("depth") if request.param == "default" else DepthTokenizer.from_preset("aurora")


def test_no_tensor_is_made_on_the_default_device(tokenizer):
    maps = _maps()
    expected = tokenizer.encode(maps)
    decoded = tokenizer.decode(expected.ids, stats=expected.stats)
    with torch.device("meta"):  # any tensor made without device= would be on meta and clash with the CPU input
        enc = tokenizer.encode(maps)
        back = tokenizer.decode(enc.ids, stats=enc.stats)
        relative = tokenizer.decode(enc.ids[0], size=(30, 40))
        if isinstance(tokenizer, DepthTokenizer):
            soft = tokenizer.decode_soft(torch.nn.functional.one_hot(enc.ids, tokenizer.vocab_size).float())
    assert enc.ids.device.type == "cpu" and torch.equal(enc.ids, expected.ids)
    assert all(torch.equal(a, b) for a, b in zip(back, decoded))
    assert relative.shape == (30, 40) and relative.device.type == "cpu"
    if isinstance(tokenizer, DepthTokenizer):
        assert soft.device.type == "cpu" and soft.shape[0] == 3


def test_training_batches_make_nothing_on_the_default_device():
    pool = MapPool("cpu")
    pool.add(SyntheticScenes([0])[0])
    holes = SyntheticScenes([1])[0]
    holes[::4] = float("nan")
    pool.add(holes)
    cfg = DepthTokenizer.from_preset("default").config
    with torch.device("meta"):
        for seed in range(4):  # both buckets, every sensor
            batch = make_batch(pool, cfg, 16, Generators.seeded(seed))
            assert batch.x.device.type == "cpu" and bool(torch.isfinite(batch.x).all())


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("name", ["default", "aurora"])
def test_low_precision_networks(name, dtype):
    torch.manual_seed(0)
    tokenizer = perceptok.load("depth") if name == "default" else DepthTokenizer.from_preset("aurora")
    maps = _maps()
    reference = tokenizer.encode(maps).ids
    tokenizer.to(dtype=dtype)
    assert tokenizer.dtype == dtype
    enc = tokenizer.encode(maps)
    assert (enc.ids == reference).float().mean() >= 0.9  # 99 %+ on the real maps: test_pretrained_depth
    relative = tokenizer.decode(enc.ids)
    assert relative.dtype == torch.float32 and bool(torch.isfinite(torch.stack(relative) if isinstance(relative, list) else relative).all())
    probs = torch.softmax(torch.randn(2, 100, tokenizer.vocab_size), -1).requires_grad_(True)
    soft = tokenizer.decode_soft(probs)
    assert soft.dtype == dtype
    soft.float().mean().backward()
    assert probs.grad is not None and bool(torch.isfinite(probs.grad).all())
    with pytest.raises(TypeError, match="floating-point"):
        tokenizer.to(dtype=torch.int8)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64, torch.int32])
def test_depth_of_any_dtype(dtype):
    tok = PooledDepthTokenizer()
    depth = ramp_map() * 1000  # millimetres, so integer maps keep their shape
    reference = tok.encode(depth)
    enc = tok.encode(depth.to(dtype))
    assert (enc.ids - reference.ids).abs().max() <= 1
    assert enc.stats.low.dtype == torch.float64  # percentiles in float64 whatever the input
    norm = normalize_depth(depth.to(dtype)[None], "metric")
    assert norm.rel.dtype == torch.promote_types(dtype, torch.float32) if dtype.is_floating_point else torch.float32


def test_batch_in_one_call_equals_map_by_map_on_any_grid():
    tok = perceptok.load("depth")
    maps = _maps() + [ramp_map(90, 20), ramp_map()]
    batch = tok.encode(maps)
    for i, m in enumerate(maps):
        single = tok.encode(m)
        assert torch.equal(batch.ids[i], single.ids) and batch.stats.grids[i] == single.stats.grids[0]
        assert torch.equal(batch.stats.low[i : i + 1], single.stats.low)


class _EmptyResampling(torch.utils._python_dispatch.TorchDispatchMode):
    """Records resampling kernels (interpolation, pooling) called with an empty input. The CPU
    kernels return an empty result; CUDA's anti-aliased bilinear one fails with "invalid
    argument" (found on an H200: validation of complete synthetic maps handed it a batch of 0
    maps with holes), so on a CPU this mode is how a test sees the launch."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if ("upsample" in name or "pool" in name) and isinstance(args[0], torch.Tensor) and args[0].numel() == 0:
            self.calls.append(name)
        return func(*args, **(kwargs or {}))


def test_no_resampling_kernel_is_launched_on_an_empty_batch():
    from perceptok.depth.augment import validation_batches
    from perceptok.depth.resample import fill_holes, resize

    complete, holes = MapPool("cpu"), MapPool("cpu")
    complete.add(SyntheticScenes([0])[0])
    scene = SyntheticScenes([1])[0]
    scene[::4] = float("nan")
    holes.add(scene)
    cfg = DepthTokenizer.from_preset("default").config
    with _EmptyResampling() as mode:
        batches = validation_batches(complete, cfg) + validation_batches(holes, cfg)
        for seed in range(4):
            make_batch(complete, cfg, 8, Generators.seeded(seed))
        empty = torch.zeros(0, 1, 48, 64)
        assert resize(empty, (8, 8)).shape == (0, 1, 8, 8) and fill_holes(empty, empty > 0).shape == empty.shape
    assert mode.calls == [], f"resampled an empty batch: {mode.calls}"
    assert [len(b.x) for b in batches] == [1, 1] and all(bool(torch.isfinite(b.x).all()) for b in batches)
