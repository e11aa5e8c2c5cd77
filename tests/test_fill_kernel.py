"""``model_input`` on a CPU (the compiled loop of ``perceptok.depth.fill_kernel``) against its
definition in tensor operations: every shape, hole pattern and dtype, alone or in a batch."""

from __future__ import annotations

import pytest
import torch

from perceptok.depth.fill_kernel import _band, model_input_cpu
from perceptok.depth.resample import _axis_weights
from perceptok.depth.resample import model_input, model_input_tensors

CASES = [  # (H, W), output size, fraction of holes
    ((480, 640), (80, 80), 0.05),  # a Kinect map to the network's input
    ((480, 640), (40, 40), 0.0),  # no holes: no fill at all
    ((37, 53), (40, 40), 0.3),  # odd sizes, slightly grown
    ((80, 80), (40, 40), 0.9),  # sparse: the pyramid goes several levels up
    ((33, 65), (80, 80), 0.999),  # almost nothing measured, grown
    ((64, 64), (64, 64), 0.2),  # no resize, only the fill
    ((5, 1), (8, 8), 0.5),  # one column
    ((1, 7), (4, 4), 0.4),  # one row
    ((1, 1), (4, 4), 0.0),  # one pixel
    ((100, 3), (20, 20), 0.6),
]


def _maps(shape: tuple[int, int], holes: float, dtype: torch.dtype, seed: int, b: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    valid = torch.rand(b, 1, *shape, generator=g) >= holes
    valid[:, 0, 0, 0] = True
    if holes > 0.5:  # whole empty regions too, not only scattered holes
        valid[0, 0, : shape[0] // 2] = False
        valid[0, 0, 0, 0] = True
    return torch.rand(b, 1, *shape, generator=g, dtype=dtype) * valid, valid


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape, size, holes", CASES)
def test_the_compiled_loop_is_the_tensor_ops(shape, size, holes, dtype):
    rel, valid = _maps(shape, holes, dtype, seed=shape[0] * 1000 + shape[1])
    got = model_input(rel, valid, size)  # a CPU map without gradient: the compiled loop
    want = model_input_tensors(rel, valid, size)
    assert got.dtype == want.dtype == dtype and got.shape == want.shape == (3, 2, *size)
    tolerance = 2e-6 if dtype == torch.float32 else 1e-14  # sums in another order; values in [-1, 1]
    assert (got - want).abs().max().item() <= tolerance
    assert torch.equal(model_input_cpu(rel[1:2], valid[1:2], size), got[1:2])  # a map alone = in a batch


def test_maps_with_gradients_keep_the_tensor_ops():
    rel, valid = _maps((20, 30), 0.2, torch.float32, seed=1)
    graded = rel.clone().requires_grad_()
    out = model_input(graded, valid, (10, 10))
    out.sum().backward()  # the tensor ops carry the gradient
    assert graded.grad is not None and graded.grad.abs().sum() > 0


def test_bands_hold_every_weight_of_f_interpolate():
    for n_in, n_out, antialias in [(640, 80, True), (480, 40, True), (37, 40, True), (1, 4, False), (15, 30, False), (8, 15, False)]:
        start, weights = _band(n_in, n_out, antialias, torch.float64, None if antialias else 2)
        dense = torch.zeros(n_out, n_in, dtype=torch.float64)
        for i in range(n_out):
            for t in range(weights.shape[1]):
                if start[i] + t < n_in:
                    dense[i, start[i] + t] += weights[i, t]
        assert torch.equal(dense, _axis_weights(n_in, n_out, antialias, torch.float64))


@pytest.mark.parametrize("table_kind", ["millimetres", "shuffled"])
def test_codes_go_straight_from_their_lookup(table_kind):
    """Integer-coded maps on a CPU: the features from the codes' ``CodeLookup`` equal, bit for bit,
    those of the looked-up maps, and never make the per-pixel maps."""
    from perceptok.depth.fill_kernel import model_input_codes_cpu
    from perceptok.depth.code_tables import normalize_codes

    g = torch.Generator().manual_seed(3)
    codes = torch.randint(0, 5000, (3, 61, 83), generator=g, dtype=torch.int32)
    codes[0, :20] = 0  # a hole wider than a few pixels
    table = torch.where(torch.arange(2**16) > 0, torch.arange(2**16) * 1e-3, torch.nan).float()
    if table_kind == "shuffled":  # not monotonic: the lookup's order is a sort
        table = table[torch.randperm(2**16, generator=g)]
    norm = normalize_codes(codes, table, "metric")
    got = model_input_codes_cpu(norm.codes, (40, 40))
    assert callable(norm._rel) and callable(norm._valid)  # nothing per pixel was made
    assert torch.equal(got, model_input_cpu(norm.rel[:, None], norm.valid[:, None], (40, 40)))
    assert torch.equal(norm.counts(), norm.valid.flatten(1).sum(1))


def test_counts_are_of_every_pixel_where_the_histogram_samples():
    """Maps over ``MAX_QUANTILE_VALUES`` pixels take their percentiles from a strided sample; the
    valid-pixel count that ``prepare`` checks is still of every pixel."""
    from perceptok.depth.code_tables import normalize_codes
    from perceptok.depth.normalize import MAX_QUANTILE_VALUES

    codes = torch.zeros(1, 1100, 1000, dtype=torch.int32)
    assert codes[0].numel() > MAX_QUANTILE_VALUES
    codes[0, 0, 1], codes[0, 5, 7], codes[0, 9, 9] = 1500, 1600, 1700  # off the sample's stride (2)
    table = torch.where(torch.arange(2**16) > 0, torch.arange(2**16) * 1e-3, torch.nan).float()
    norm = normalize_codes(codes, table, "metric")
    assert norm.counts().tolist() == [3] and norm.codes.n is None
