"""Integer depth images as stored (``DepthCodes``): reading, normalising and tokenizing them
gives exactly what their expanded maps give, through the histogram route; the percentiles of
value maps are exactly torch.nanquantile's; ``prepare`` + ``encode_prepared`` is ``encode``; the
push-pull fill keeps measurements and fills holes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import perceptok
from perceptok import PooledDepthTokenizer
from perceptok.depth import normalize as norm_module
from perceptok.depth import resample
from perceptok.depth.code_tables import normalize_codes
from perceptok.depth.normalize import normalize_depth, robust_range
from perceptok.depth.resample import fill_holes, resize
from perceptok.depth.outputs import PreparedDepth
from perceptok.io import DepthCodes, read_depth, read_depth_codes, read_manifest

FIELDS = ("rel", "valid", "low", "high", "inverse")


def assert_same(a, b) -> None:
    for field in FIELDS:
        x, y = getattr(a, field), getattr(b, field)
        assert torch.equal(x, y) or (x.isnan() == y.isnan()).all() and torch.equal(x.nan_to_num(), y.nan_to_num()), field


def real_entries(shared_data):
    return read_manifest(shared_data / "depth" / "manifest.jsonl")


def read_codes(entry) -> DepthCodes:
    return read_depth_codes(entry.depth, encoding=entry.encoding, scale=entry.scale, kind=entry.kind,
                            invalid=entry.invalid)


def test_codes_expand_to_exactly_what_read_depth_reads(shared_data):
    entries = real_entries(shared_data)
    assert {e.encoding for e in entries} >= {"uint16", "sun3d_bitshift", "kinect_raw_disparity"}
    for entry in entries:
        codes, depth = read_codes(entry), entry.load()
        assert codes.codes.dtype == torch.int32 and codes.table.shape == (65536,)
        expanded = codes.to_map()
        assert torch.equal(expanded.valid, depth.valid), entry.id
        assert torch.equal(expanded.values.nan_to_num(-1), depth.values.nan_to_num(-1)), entry.id


def test_eight_bit_images_and_float_files(tmp_path):
    Image.fromarray(np.array([[0, 10], [200, 255]], dtype=np.uint8)).save(tmp_path / "d.png")
    codes = read_depth_codes(tmp_path / "d.png", scale=0.1)
    assert codes.table.shape == (256,)
    assert torch.equal(codes.to_map().values.nan_to_num(-1), read_depth(tmp_path / "d.png", scale=0.1).values.nan_to_num(-1))
    np.save(tmp_path / "f.npy", np.ones((4, 4), np.float32))
    with pytest.raises(ValueError, match="read_depth"):
        read_depth_codes(tmp_path / "f.npy")


def test_histogram_normalisation_equals_the_per_pixel_one_on_real_maps(shared_data):
    for entry in real_entries(shared_data):
        codes = read_codes(entry)
        depth = codes.to_map()
        assert_same(normalize_codes(codes.codes[None], codes.table, entry.kind),
                    normalize_depth(depth.values[None], entry.kind, depth.valid[None]))


@pytest.mark.parametrize("order", ["increasing", "decreasing", "shuffled"])
@pytest.mark.parametrize("kind", ["metric", "disparity", "relative_inverse"])
def test_histogram_normalisation_for_any_table_and_batch(order, kind):
    g = torch.Generator().manual_seed(0)
    table = torch.linspace(0.0, 9.0, 1024)
    if order == "decreasing":
        table = table.flip(0)
    elif order == "shuffled":
        table = table[torch.randperm(1024, generator=g)]
    table[torch.randint(0, 1024, (40,), generator=g)] = float("nan")  # codes that mean "no measurement"
    codes = torch.randint(0, 1024, (3, 23, 31), generator=g, dtype=torch.int32)
    codes[1, :, :5] = 7  # a plateau of one code
    assert_same(normalize_codes(codes, table, kind), normalize_depth(table[codes.long()], kind))


def test_histogram_of_a_sampled_huge_map_and_of_an_empty_one(monkeypatch):
    monkeypatch.setattr(norm_module, "MAX_QUANTILE_VALUES", 100)  # a 30×40 map counts as huge
    table = torch.arange(300, dtype=torch.float32) / 10
    codes = torch.randint(0, 300, (2, 30, 40), generator=torch.Generator().manual_seed(1), dtype=torch.int32)
    codes[1] = 0  # every pixel invalid (0 m)
    a, b = normalize_codes(codes, table, "metric"), normalize_depth(table[codes.long()], "metric")
    assert_same(a, b)
    assert bool(a.low[1].isnan()) and not bool(a.low[0].isnan())


@pytest.mark.parametrize("dtype", [torch.int32, torch.int64, torch.uint8])
def test_cpu_code_histograms_are_bincounts(dtype):
    """The compiled histograms (each map into its own row, every ``stride``-th pixel, as wide as
    the largest code of any pixel) are ``torch.bincount``'s; codes outside the table are a clear
    error from ``normalize_codes``, not a wrong histogram."""
    from perceptok.depth.histogram_kernel import code_histograms

    g = torch.Generator().manual_seed(2)
    codes = torch.randint(0, 200, (3, 997), generator=g).to(dtype)
    codes[2, 1] = 250  # the largest code, off every stride but 1
    for stride in (1, 3):
        got = code_histograms(codes, stride, 256)
        assert got.dtype == torch.int64 and got.shape == (3, 251)
        for row, counts in zip(codes, got):
            assert torch.equal(counts, torch.bincount(row[::stride].long(), minlength=251))
    table = torch.linspace(0.5, 9.0, 200)
    with pytest.raises(ValueError, match=r"lie in 0\.\.199 .* got 0\.\.250"):
        normalize_codes(codes.int(), table, "metric")


@pytest.mark.parametrize("reader", ["sorting", "topk"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_percentiles_are_exactly_nanquantiles(dtype, reader, monkeypatch):
    """``robust_range`` reads the 2nd and 98th percentiles off each row sorted by numpy (on a CPU)
    or off two partial ``topk``s (elsewhere; here made to run on the CPU); both must be
    torch.nanquantile's (linear interpolation in float64) for any share of valid pixels, ties and
    sizes, including maps with one or no valid value."""
    if reader == "topk":
        monkeypatch.setattr(norm_module, "_ranks_by_sorting", norm_module._ranks_by_topk)
    g = torch.Generator().manual_seed(0)
    q = torch.tensor([0.02, 0.98], dtype=torch.float64)
    for shape in [(4, 48, 64), (3, 1, 7), (2, 1, 1), (5, 13, 17), (2, 120, 160)]:
        for missing in (0.0, 0.3, 0.97, 1.0):
            x = torch.rand(shape, generator=g).to(dtype)
            x[0] = torch.randint(0, 5, shape[1:], generator=g).to(dtype)  # ties
            valid = torch.rand(shape, generator=g) >= missing
            expected = torch.nanquantile(x.double().flatten(1).masked_fill(~valid.flatten(1), float("nan")), q, dim=1)
            low, high = robust_range(x, valid)
            flat = (expected[1] - expected[0]) < 1e-6 * expected[1].abs().clamp_min(1e-6)  # widened on purpose
            for got, want in ((low, expected[0]), (high, expected[1])):
                assert torch.equal(got[~flat].nan_to_num(-7), want[~flat].nan_to_num(-7)), (shape, missing)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cpu_resizes_are_f_interpolate(dtype):
    """On a CPU, ``resize`` and the hole filling's upsampling multiply by ``F.interpolate``'s own
    weights (read off an identity) instead of calling it: the same maps within two ulps for
    shrinking (anti-aliased) and growing, odd and equal sizes, one axis at a time; and a map
    resized alone is bit for bit the map resized in a batch (ids must not depend on batching)."""
    g = torch.Generator().manual_seed(0)
    for (h, w), size in [((80, 80), (40, 40)), ((480, 640), (40, 40)), ((7, 13), (40, 40)), ((40, 160), (20, 80)),
                         ((33, 17), (33, 5)), ((9, 12), (20, 12)), ((1, 1), (3, 2)), ((300, 200), (20, 80)),
                         ((150, 170), (300, 340))]:  # the last one large enough for F.interpolate itself
        x = torch.rand(5, 2, h, w, generator=g, dtype=dtype)
        for antialias in (True, False):
            want = torch.nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=antialias)
            got = resample._bilinear(x, size, antialias)
            assert got.shape == want.shape and got.dtype == dtype
            torch.testing.assert_close(got, want, rtol=0, atol=2 * torch.finfo(dtype).eps, msg=lambda m: f"{(h, w, size)}: {m}")
            assert all(torch.equal(resample._bilinear(x[i : i + 1], size, antialias), got[i : i + 1]) for i in (0, 3))
    assert resize(x, tuple(x.shape[-2:])) is x  # nothing to do
    assert resize(x[:0], (4, 4)).shape == (0, 2, 4, 4)


@pytest.mark.parametrize("name", ["depth", "depth:pooled"])
def test_tokenizers_encode_codes_as_the_maps_they_stand_for(shared_data, name):
    tok = perceptok.load(name)
    entries = real_entries(shared_data)[:6]
    codes = [read_codes(e) for e in entries]
    codes[1] = DepthCodes(codes[1].codes, codes[1].table * 2, codes[1].kind)  # another table in the batch
    maps = [c.to_map() for c in codes]
    a, b = tok.encode(codes), tok.encode(maps)
    assert torch.equal(a.ids, b.ids) and torch.equal(a.stats.low, b.stats.low) and a.stats.grids == b.stats.grids
    assert torch.equal(tok.encode(codes[2]).ids, b.ids[2])  # one DepthCodes gives (N,) ids


def test_prepare_then_encode_prepared_is_encode():
    tok = perceptok.load("depth")
    from test_depth import ramp_map

    maps = [ramp_map(), ramp_map(20, 90), ramp_map(90, 20), ramp_map(33, 41)]
    expected = tok.encode(maps)
    parts = [tok.prepare(m) for m in maps]
    joined = PreparedDepth.cat(parts)
    assert joined.features[0].data_ptr() != parts[0].features[0].data_ptr()  # stacked into one tensor
    enc = tok.encode_prepared(joined)
    assert torch.equal(enc.ids, expected.ids) and enc.stats.grids == expected.stats.grids
    assert torch.equal(tok.encode_prepared(parts[1]).ids, expected.ids[1])
    with pytest.raises(ValueError, match="one depth kind"):
        PreparedDepth.cat([parts[0], tok.prepare(ramp_map(), kind="disparity")])


def test_codes_make_nothing_on_the_default_device(shared_data):
    """As in test_depth_devices: every tensor of the histogram route is made on the input's device."""
    codes = read_codes(real_entries(shared_data)[0])
    for tok in (perceptok.load("depth"), PooledDepthTokenizer()):
        expected = tok.encode(codes.to_map())
        fresh = DepthCodes(codes.codes, codes.table.clone(), codes.kind)  # nothing cached for this table yet
        with torch.device("meta"):
            enc = tok.encode(fresh)
        assert enc.ids.device.type == "cpu" and torch.equal(enc.ids, expected.ids)


def test_fill_keeps_measurements_and_fills_holes_from_their_surroundings():
    g = torch.Generator().manual_seed(0)
    for shape in [(2, 1, 48, 64), (1, 1, 37, 53), (1, 1, 5, 3), (1, 1, 1, 1)]:
        valid = torch.rand(shape, generator=g) > 0.6
        valid.view(-1)[0] = True
        x = torch.rand(shape, generator=g) * valid
        filled = fill_holes(x, valid)
        assert torch.equal(filled[valid], x[valid])
        assert torch.allclose(filled, fill_holes(x, valid, sync=True), atol=1e-6)  # stopping early changes nothing
        constant = fill_holes(valid * 0.3, valid)
        assert torch.allclose(constant, torch.full(shape, 0.3), atol=1e-6)  # holes in a flat map stay flat
        assert float(filled.min()) >= 0 and float(filled.max()) <= 1  # averages of measurements
    one = torch.zeros(1, 1, 9, 11, dtype=torch.bool)
    one[0, 0, 4, 5] = True
    assert torch.allclose(fill_holes(one * 0.7, one), torch.full((1, 1, 9, 11), 0.7))  # one measurement fills all
    assert torch.equal(fill_holes(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4, dtype=torch.bool)),
                       torch.zeros(1, 1, 4, 4))  # nothing measured: 0


def test_equal_tables_with_nan_are_one_table():
    """Invalid codes are NaN in a table, and NaN differs from itself under ``torch.equal``: a copy
    of a table (a DataLoader batch's, after crossing processes) is still the same table, so the
    maps that use either are normalised in one batch."""
    from perceptok.depth.batching import table_keys
    from perceptok.io.depth_files import same_table

    table = torch.arange(8, dtype=torch.float32)
    table[0] = float("nan")
    other = table.clone()
    other[3] = 9.0
    assert same_table(table, table.clone()) and not same_table(table, other)
    codes = torch.randint(0, 8, (4, 5), dtype=torch.int32)
    maps = [DepthCodes(codes, t, "metric") for t in (table, table.clone(), other, table)]
    assert table_keys(maps) == [0, 0, 1, 0]
