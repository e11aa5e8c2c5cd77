"""The depth pipeline's CPU routes beside the torch ops they stand for, in the same run: each
pair computes the same result (tests/test_depth_codes.py and tests/test_depth.py check that);
only the time differs. One thread, the shapes of a training batch (256 crops of 80×80) and of
the tokenizer (640×480 maps).

Run: ``.venv/bin/python -m pytest benchmarks/test_cpu_routes.py --benchmark-columns=mean,rounds``
Each test stores ``ms`` in ``extra_info``; compare the two rows of a group.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from perceptok.depth import normalize, resample
from perceptok.depth.augment import _chance

torch.set_num_threads(1)


def _maps(b: int, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.rand(b, h, w, generator=g), torch.rand(b, h, w, generator=g) < 0.7


@pytest.mark.parametrize("shape", [(256, 80, 80), (8, 480, 640)])
@pytest.mark.parametrize("reader", ["numpy_sort", "torch_topk"])
def test_percentiles(benchmark, monkeypatch, shape, reader):
    benchmark.group = f"percentiles {shape}"
    if reader == "torch_topk":  # what accelerators run, and what the CPU ran before
        monkeypatch.setattr(normalize, "_ranks_by_sorting", normalize._ranks_by_topk)
    values, valid = _maps(*shape)
    low, high = benchmark.pedantic(lambda: normalize.robust_range(values, valid), rounds=5, warmup_rounds=1)
    assert bool((low < high).all())
    benchmark.extra_info["ms"] = benchmark.stats["mean"] * 1e3


@pytest.mark.parametrize("case", [((256, 80, 80), (40, 40), True), ((64, 480, 640), (40, 40), True),
                                  ((16, 40, 40), (480, 640), False)])
@pytest.mark.parametrize("route", ["matmul", "F.interpolate"])
def test_resize(benchmark, case, route):
    (b, h, w), size, antialias = case
    benchmark.group = f"resize {(h, w)} → {size}"
    x = _maps(b, h, w)[0][:, None]
    if route == "matmul":
        fn = lambda: resample._bilinear(x, size, antialias)  # noqa: E731
    else:
        fn = lambda: F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=antialias)  # noqa: E731
    out = benchmark.pedantic(fn, rounds=5, warmup_rounds=1)
    assert out.shape == (b, 1, *size)
    benchmark.extra_info["ms"] = benchmark.stats["mean"] * 1e3


@pytest.mark.parametrize("route", ["16-bit slices", "torch.rand"])
def test_random_mask(benchmark, route):
    benchmark.group = "Bernoulli mask 256 × 80 × 80"
    g, like, shape = torch.Generator().manual_seed(0), torch.zeros(()), (256, 80, 80)
    if route == "16-bit slices":
        fn = lambda: _chance(g, like, shape, 0.7)  # noqa: E731
    else:
        fn = lambda: torch.rand(shape, generator=g) < 0.7  # noqa: E731
    mask = benchmark.pedantic(fn, rounds=10, warmup_rounds=1)
    assert abs(float(mask.float().mean()) - 0.7) < 0.01
    benchmark.extra_info["ms"] = benchmark.stats["mean"] * 1e3


@pytest.mark.parametrize("case", [((1, 480, 640), (80, 80), 0.05), ((256, 80, 80), (40, 40), 0.3)])
@pytest.mark.parametrize("route", ["compiled loop", "tensor ops"])
def test_model_input(benchmark, case, route):
    """Hole filling and both resizes of the network input: one map as a tokenize worker prepares
    it, and a training batch of crops (tests/test_fill_kernel.py checks they agree)."""
    from perceptok.depth.resample import model_input, model_input_tensors

    (b, h, w), size, holes = case
    benchmark.group = f"model_input {b} × {(h, w)} → {size}, {holes:.0%} holes"
    rel, valid = _maps(b, h, w)
    valid = (torch.rand(b, h, w, generator=torch.Generator().manual_seed(1)) >= holes)[:, None]
    rel = rel[:, None] * valid
    fn = model_input if route == "compiled loop" else model_input_tensors
    out = benchmark.pedantic(lambda: fn(rel, valid, size), rounds=5, warmup_rounds=1)
    assert out.shape == (b, 2, *size)
    benchmark.extra_info["ms"] = benchmark.stats["mean"] * 1e3


@pytest.mark.parametrize("route", ["libdeflate + compiled unfilter", "PIL"])
def test_read_png(benchmark, tmp_path, route):
    """One 640×480 16-bit PNG depth map (the tokenize benchmark's), read to its codes
    (tests/test_png.py checks they agree)."""
    import numpy as np
    from PIL import Image

    from perceptok.io.png import read_gray_png
    from perceptok.shards.bench import write_pngs

    benchmark.group = "read a 640×480 16-bit PNG"
    path = write_pngs(tmp_path, 1)[0]
    if route == "PIL":
        def fn():
            with Image.open(path) as im:
                return np.asarray(im).astype(np.int32)
    else:
        fn = lambda: read_gray_png(path.read_bytes())[0]  # noqa: E731
    out = benchmark.pedantic(fn, rounds=20, warmup_rounds=2)
    assert out.shape == (480, 640)
    benchmark.extra_info["ms"] = benchmark.stats["mean"] * 1e3
