"""Depth tokenizers: conformance (tiny VQ-VAE, FSQ and the pooled baseline), conventions,
restoration in the input's units, aspect-adaptive grids, soft decoding, bad input, training."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from conformance import TokenizerConformance
import perceptok
from perceptok import AutoPerceptionTokenizer, DepthTokenizer, PooledDepthTokenizer, TokenParseError
from perceptok.depth import PRESETS, DepthTokenizerConfig
from perceptok.depth.augment import Generators, make_batch, validation_batches
from perceptok.depth.data import load_pool
from perceptok.depth.train import TrainConfig, reconstruction_loss, train_depth
from perceptok.io import DepthMap


def ramp_map(h: int = 48, w: int = 64, near: float = 0.8, far: float = 6.0) -> torch.Tensor:
    """Metric depth growing from ``near`` at the bottom to ``far`` at the top, with a box in front."""
    rows = torch.linspace(far, near, h)[:, None].expand(h, w).clone()
    rows[h // 4 : h // 2, w // 3 : w // 2] = near * 1.2
    return rows


class DepthConformance(TokenizerConformance):
    preset = "tiny"
    garbage_text = "<DEPTH_START><DEPTH_1>oops"

    def make_tokenizer(self):
        torch.manual_seed(0)
        tok = DepthTokenizer.from_preset(self.preset)
        # one training-mode pass initialises the k-means codebook, as training would
        batch = make_batch(load_pool(["synthetic:4"], workers=0), tok.config, 8, Generators.seeded(0))
        tok.model.train()
        tok.model(batch.x)
        tok.model.eval()
        return tok

    def samples(self):
        wide = ramp_map(20, 90)
        holes = ramp_map(40, 40)
        holes[::3] = 0.0  # sparse rows, like a scanner
        return [ramp_map(), wide, holes, ramp_map(64, 48, near=2.0, far=3.0)]


class TestDepthConformanceVQ(DepthConformance):
    pass


class TestDepthConformanceFSQ(DepthConformance):
    def make_tokenizer(self):
        torch.manual_seed(0)
        return DepthTokenizer(dataclasses.replace(PRESETS["tiny"], quantizer="fsq"))


class TestPooledConformance(DepthConformance):
    def make_tokenizer(self):
        return PooledDepthTokenizer()


def test_default_is_token_compatible_with_the_original():
    tok = DepthTokenizer.from_preset("default")
    assert tok.vocab_size == 128 and tok.tokens_per_map == 100
    assert tok.vocab[0] == "<DEPTH_0>" and tok.vocab[-1] == "<DEPTH_127>"
    assert (tok.start_token, tok.end_token) == ("<DEPTH_START>", "<DEPTH_END>")
    text = tok.to_text(torch.arange(100) % 128)
    assert text.startswith("<DEPTH_START><DEPTH_0><DEPTH_1>") and text.endswith("<DEPTH_99><DEPTH_END>")
    aurora = DepthTokenizer.from_preset("aurora")
    assert sum(p.numel() for p in aurora.model.parameters()) == pytest.approx(7.7e6, rel=0.01)


@pytest.mark.parametrize("fields, match", [
    ({"decoder_stride": 3}, "decoder_stride must be a power of two"),
    ({"decoder_stride": 32}, "decoder_stride must be a power of two ≤ cell_size=16"),
    ({"prior_axes": 3}, "prior_axes must be 1 or 2"),
    ({"fsq_levels": (128,), "prior_axes": 2}, "prior_axes must be 1 or 2"),
    ({"fsq_levels": (8, 4, 2)}, "give 64 codes"),
    ({"fsq_levels": (64, 2)}, "must be ≥ 3"),
])
def test_bad_configs_say_what_to_change(fields, match):
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(PRESETS["default"], cell_size=16, **fields)


@pytest.mark.parametrize("cell_size, stride", [(4, 1), (8, 2), (16, 4)])
def test_decoder_stops_at_its_stride(cell_size, stride):
    cfg = dataclasses.replace(PRESETS["default"], cell_size=cell_size, decoder_stride=stride, width=32)
    tok = DepthTokenizer(cfg)
    x = torch.zeros(1, 2, 5 * cell_size, 20 * cell_size)
    assert tok.model(x)[0].shape == (1, 1, 5 * cell_size // stride, 20 * cell_size // stride)
    batch = make_batch(load_pool(["synthetic:2"], workers=0), cfg, 2, Generators.seeded(0))
    assert batch.target.shape[-2:] == (batch.x.shape[-2] // stride, batch.x.shape[-1] // stride)


def test_sensor_masks_draw_each_pixel_with_its_probability():
    """``augment._chance`` cuts 16-bit uniforms out of 64-bit draws (a quarter of ``torch.rand``'s
    work): each value must be true with its probability (a scalar, or one per map), exactly never at
    0 and always at 1, odd sizes included, and the same seed must give the same mask."""
    from perceptok.depth.augment import _chance

    like = torch.zeros(())
    p = torch.tensor([0.0, 0.05, 0.3, 0.7, 1.0])[:, None, None]  # (5, 1, 1): one probability per map
    mask = _chance(torch.Generator().manual_seed(0), like, (5, 101, 99), p)
    assert mask.shape == (5, 101, 99) and mask.dtype == torch.bool
    rate = mask.flatten(1).float().mean(1)
    assert rate[0] == 0 and rate[-1] == 1
    assert torch.allclose(rate[1:4], p.flatten()[1:4], atol=0.01), rate  # 10k draws a map: σ ≤ 0.005
    scalar = _chance(torch.Generator().manual_seed(1), like, (3, 7), 0.7)
    assert scalar.shape == (3, 7) and torch.equal(scalar, _chance(torch.Generator().manual_seed(1), like, (3, 7), 0.7))
    assert abs(_chance(torch.Generator().manual_seed(2), like, (100_001,), 0.7).float().mean() - 0.7) < 0.005


def test_pooled_restores_metric_depth_and_relative_maps():
    tok = PooledDepthTokenizer()
    depth = ramp_map(200, 200)
    enc = tok.encode(depth)
    assert enc.ids.shape == (100,) and enc.stats.kind == "metric" and enc.stats.sizes == [(200, 200)]
    metres = tok.decode(enc.ids, stats=enc.stats)
    assert metres.shape == (200, 200)
    assert ((metres - depth).abs() / depth).median() < 0.05
    rel = tok.decode(enc.ids, size=(50, 60))
    assert rel.shape == (50, 60) and 0 <= float(rel.min()) and float(rel.max()) <= 1
    assert float(rel[-1].mean()) > float(rel[0].mean())  # 1 = nearest: the bottom rows are near


@pytest.mark.parametrize("kind, convert", [("disparity", lambda d: 50.0 / d), ("relative_inverse", lambda d: 1.0 / d)])
def test_other_kinds_come_back_in_their_units(kind, convert):
    tok = PooledDepthTokenizer()
    values = convert(ramp_map(100, 100))
    enc = tok.encode(values, kind=kind)
    back = tok.decode(enc.ids, stats=enc.stats)
    assert ((back - values).abs() / values).median() < 0.05
    metric_ids = tok.encode(ramp_map(100, 100)).ids
    assert (enc.ids - metric_ids).abs().max() <= 1  # the same scene gives the same tokens


def test_invalid_pixels_do_not_move_the_normalisation():
    tok = PooledDepthTokenizer()
    depth = ramp_map(100, 100)
    spoiled = depth.clone()
    spoiled[:10, :10] = 0.0
    spoiled[50, 50] = float("nan")
    mask = torch.ones_like(depth, dtype=torch.bool)
    mask[-5:] = False
    a = tok.encode(depth, valid=mask)
    b = tok.encode(spoiled, valid=mask)
    assert abs(float(a.stats.low[0]) - float(b.stats.low[0])) < 0.02 * float(a.stats.low[0])


def test_wide_maps_get_a_wide_grid_and_come_back_at_their_size():
    tok = DepthTokenizer.from_preset("default")
    assert tok.config.choose_grid(480, 640) == (10, 10)
    assert tok.config.choose_grid(375, 1242) == (5, 20)
    assert tok.config.choose_grid(1242, 375) == (20, 5)
    enc = tok.encode([ramp_map(48, 64), ramp_map(30, 120)])
    assert enc.stats.grids == [(10, 10), (5, 20)]
    out = tok.decode(enc.ids, stats=enc.stats)
    assert [o.shape for o in out] == [(48, 64), (30, 120)]


def test_batch_of_depth_maps_from_io():
    tok = PooledDepthTokenizer()
    maps = [DepthMap(ramp_map(), torch.ones(48, 64, dtype=torch.bool), "metric"),
            DepthMap(ramp_map(), torch.ones(48, 64, dtype=torch.bool), "metric")]
    assert torch.equal(tok.encode(maps).ids[0], tok.encode(maps[0]).ids)
    with pytest.raises(ValueError, match="one depth kind"):
        tok.encode([maps[0], DepthMap(ramp_map(), maps[0].valid, "disparity")])


def test_decode_soft_is_differentiable_and_matches_hard_decoding():
    tok = DepthConformance().make_tokenizer()
    ids = tok.encode(ramp_map()).ids
    one_hot = torch.nn.functional.one_hot(ids, tok.vocab_size).float()[None].requires_grad_(True)
    soft = tok.decode_soft(one_hot)
    hard = tok.model.decode_codes(tok.model.codes(ids[None]), tok.config.grids[0])[:, 0]
    assert torch.allclose(soft, hard, atol=1e-5)
    soft.mean().backward()
    assert one_hot.grad is not None and one_hot.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="probs must be"):
        tok.decode_soft(torch.rand(1, 3, 3))


@pytest.mark.parametrize("bad, match", [
    (torch.zeros(10, 10), "0 valid pixels"),
    (torch.full((10, 10), float("nan")), "0 valid pixels"),
    (torch.zeros(0, 10), "non-empty|shape"),
    (torch.ones(1, 1, 10, 10), r"\(H, W\)"),
    ("depth.png", "tensor, an array"),
    (torch.ones(4, 4, dtype=torch.bool), "real numbers"),
])
def test_bad_depth_input(bad, match):
    with pytest.raises((ValueError, TypeError), match=match):
        PooledDepthTokenizer().encode(bad)


def test_bad_ids_and_text():
    tok = PooledDepthTokenizer()
    with pytest.raises(ValueError, match="ids must lie"):
        tok.decode(torch.full((100,), 128))
    with pytest.raises(ValueError, match=r"shape \(100,\)"):
        tok.decode(torch.zeros(99, dtype=torch.long))
    short = "<DEPTH_START>" + "<DEPTH_3>" * 99 + "<DEPTH_END>"
    with pytest.raises(TokenParseError) as err:
        tok.from_text(short)
    assert "code 100 of 100" in err.value.expected and "came early" in err.value.expected
    assert tok.from_text(short, strict=False).tolist() == [3] * 100
    with pytest.raises(TokenParseError, match="<DEPTH_127>"):
        tok.from_text("<DEPTH_START>" + "<DEPTH_200>" * 100 + "<DEPTH_END>")


def test_training_lowers_the_loss_and_resumes(tmp_path):
    torch.manual_seed(0)
    cfg = PRESETS["tiny"]
    val = validation_batches(load_pool(["synthetic:16"], seed=99, workers=0), cfg)

    def val_loss(tok):
        with torch.no_grad():
            return sum(float(reconstruction_loss(tok.model(b.x)[0], b, torch.zeros(()), "perceptok").recon) for b in val)

    before = val_loss(DepthTokenizer(cfg))
    train_cfg = TrainConfig(out=str(tmp_path), data=["synthetic:24"], steps=60, batch_size=16, lr=3e-3, eval_every=30,
                            val_scenes=4, workers=0)
    train_depth(cfg, train_cfg, progress=False)
    trained = AutoPerceptionTokenizer.from_pretrained(tmp_path / "tokenizer")
    assert val_loss(trained) < 0.7 * before
    def steps():
        return [json.loads(line)["step"] for line in (tmp_path / "log.jsonl").read_text().splitlines()]

    assert steps() == [30, 60, 60]  # two validations and the final save
    train_depth(cfg, dataclasses.replace(train_cfg, steps=70), progress=False)
    assert steps() == [30, 60, 60, 70]  # resumed at 60: a fresh start would have logged 30 and 60 again


def test_fine_tuning_starts_from_the_saved_weights(tmp_path):
    """``TrainConfig.init`` (``perceptok train depth --init``) starts from a saved tokenizer's
    weights and config: with a learning rate of 0 the result is that tokenizer exactly, and with
    one it moves off them."""
    torch.manual_seed(0)
    cfg = DepthTokenizerConfig(preset="custom", width=8)  # FSQ: no buffers that training updates
    start = DepthTokenizer(cfg)
    start.save_pretrained(tmp_path / "start")
    frozen = TrainConfig(out=str(tmp_path / "frozen"), data=["synthetic:8"], steps=3, batch_size=4, lr=0.0,
                         eval_every=100, val_scenes=2, workers=0, init=str(tmp_path / "start"))
    same = train_depth(None, frozen, progress=False).tokenizer
    assert same.config == cfg
    for name, tensor in start.state_tensors().items():
        assert torch.equal(tensor, same.state_tensors()[name]), name
    moved = train_depth(None, dataclasses.replace(frozen, out=str(tmp_path / "moved"), lr=3e-3), progress=False)
    assert any(not torch.equal(t, moved.tokenizer.state_tensors()[k]) for k, t in start.state_tensors().items())
    assert "Fine-tuned from" in (tmp_path / "moved" / "tokenizer" / "README.md").read_text()
    with pytest.raises(ValueError, match="brings its own config"):
        train_depth(PRESETS["default"], dataclasses.replace(frozen, out=str(tmp_path / "x")), progress=False)
    with pytest.raises(ValueError, match="needs a VQ-VAE depth tokenizer"):
        train_depth(None, dataclasses.replace(frozen, out=str(tmp_path / "y"), init="boxes"), progress=False)


def test_training_scores_real_maps_at_each_validation(tmp_path, shared_data):
    cfg = TrainConfig(out=str(tmp_path), data=["synthetic:8"], steps=4, batch_size=4, eval_every=2, val_scenes=2,
                      workers=0, eval_manifest=str(shared_data / "depth" / "manifest.jsonl"))
    train_depth(PRESETS["tiny"], cfg, progress=False)
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in log] == [2, 4, 4]
    for entry in log:
        assert entry["real_abs_rel"] > 0 and 0 <= entry["real_ordinal_acc"] <= 1 and entry["real_codebook_usage"] > 0


@pytest.mark.parametrize("h, w", [(48, 64), (30, 120), (120, 30), (24, 150)])
def test_text_carries_the_grid(h, w):
    """Issue 13 (3): a 5×20 map written as text and read back decoded as 10×10 stripes. A map on
    any grid but the first now says so after the start token; 10×10 text is AURORA's, unchanged."""
    tok = perceptok.load("depth")
    depth = ramp_map(h, w)
    enc = tok.encode(depth)
    grid = enc.stats.grids[0]
    text = tok.to_text(enc)
    marker = f"<DEPTH_GRID_{grid[0]}x{grid[1]}>"
    assert (marker in text) == (grid != (10, 10)) and text.startswith("<DEPTH_START>")
    if grid == (10, 10):
        assert text == tok.to_text(enc.ids)  # no marker: the original's text
    parsed = tok.parse(text)
    assert parsed.grids == [grid] and torch.equal(parsed.ids, enc.ids)
    assert torch.equal(tok.decode(parsed), tok.decode(enc.ids, grids=grid))
    assert tok.decode(parsed).shape == tok.default_size(grid)
    assert torch.equal(tok.decode(parsed, size=(h, w)), tok.decode(enc.ids, stats=dataclasses.replace(
        enc.stats, kind="relative_inverse", low=torch.zeros(1, dtype=torch.float64), high=torch.ones(1, dtype=torch.float64))))
    lenient = tok.parse("model says: " + text.replace("<DEPTH_END>", ""), strict=False)
    assert lenient.grids == [grid] and torch.equal(lenient.ids, enc.ids)
    soft = tok.decode_soft(torch.nn.functional.one_hot(parsed.ids, tok.vocab_size).float()[None], parsed.grids[0])
    assert soft.shape[-2:] == tuple(s // tok.config.decoder_stride for s in tok.default_size(grid))


def test_grid_markers_are_tokens_and_strict_parsing_checks_them():
    tok = perceptok.load("depth")
    assert tok.grid_markers == ["<DEPTH_GRID_5x20>", "<DEPTH_GRID_20x5>", "<DEPTH_GRID_4x25>", "<DEPTH_GRID_25x4>"]
    assert set(tok.grid_markers) <= set(tok.special_tokens)
    codes = "".join(f"<DEPTH_{i}>" for i in range(100))
    with pytest.raises(TokenParseError, match="grid marker"):
        tok.parse(f"<DEPTH_START><DEPTH_GRID_7x7>{codes}<DEPTH_END>")
    with pytest.raises(TokenParseError):  # a marker must come first
        tok.parse(f"<DEPTH_START><DEPTH_1><DEPTH_GRID_5x20>{codes[11:]}<DEPTH_END>")
    batch = tok.parse([f"<DEPTH_START>{codes}<DEPTH_END>", f"<DEPTH_START><DEPTH_GRID_4x25>{codes}<DEPTH_END>"])
    assert batch.grids == [(10, 10), (4, 25)] and batch.ids.shape == (2, 100)
    maps = tok.decode(batch)
    assert [m.shape for m in maps] == [(40, 40), (16, 100)]
    with pytest.raises(ValueError, match="grids must be"):
        tok.decode(batch.ids, grids=(7, 7))


def test_denormal_depths_and_bad_decode_arguments():
    """Issue 10's fuzz findings on depth: 1e-45 m gave ids of -2**31 and NaN stats; decode(None)
    and size=(0, 0) raised raw errors."""
    tok = perceptok.load("depth")
    depth = ramp_map()
    depth[:5] = 1e-45  # no finite inverse: not a measurement
    enc = tok.encode(depth)
    assert 0 <= int(enc.ids.min()) and int(enc.ids.max()) < 128 and bool(torch.isfinite(enc.stats.high).all())
    with pytest.raises(TypeError, match="got None"):
        tok.decode(None)
    with pytest.raises(ValueError, match="at least 1"):
        tok.decode(enc.ids, size=(0, 0))


def test_mask_helpers_are_the_plain_ops():
    """``both`` (bool ``&`` through bytes), ``weights`` (bool → 0/1 floats through bytes) and
    ``every`` (``all`` as the smallest byte) are speed tricks: they must give exactly ``a & b`` for
    shapes that broadcast, views included, ``mask.to(dtype)`` and ``mask.all()``, empty masks too."""
    from perceptok.depth.masks import both, every, weights

    g = torch.Generator().manual_seed(0)
    a = torch.rand(4, 6, 5, generator=g) < 0.5
    for b in (torch.rand(4, 1, 5, generator=g) < 0.5, torch.rand(4, 1, 1, generator=g) < 0.5, a.flip(2), a[:, :1]):
        assert both(a, b).dtype == torch.bool and torch.equal(both(a, b), a & b)
        assert torch.equal(both(b, a), b & a)
    for dtype in (torch.float32, torch.float64, torch.bfloat16):
        assert torch.equal(weights(a[:, ::2], dtype), a[:, ::2].to(dtype))
    full = torch.ones(3, 5, dtype=torch.bool)
    for mask in (a, full, full[:, ::2], a[:0], torch.zeros(2, dtype=torch.bool)):
        assert every(mask) is bool(mask.all())


@pytest.mark.parametrize("shape, dim", [((4, 307200), 1), ((1032, 1016), 1), ((2, 3, 262144), 2), ((4, 300001), 1),
                                        ((1 << 20, 2), 0), ((3, 307200), 1), ((0, 2048), 1), ((2, 3, 4064), 2)])
def test_count_is_exact(shape, dim):
    """``masks.count`` sums a large mask's bytes eight at a time in int64 words (chunks of
    127 words, so that no byte lane carries into the next), and small ones as bytes: whole chunks
    with a tail, exact multiples, sizes that are not multiples of 8, other dims, small and empty
    masks, from all false to all true (every lane at its largest) must all give ``mask.sum``."""
    from perceptok.depth.masks import count

    torch.manual_seed(0)
    for p in (0.0, 0.03, 0.5, 0.97, 1.0):
        mask = torch.rand(shape) < p
        for keepdim in (False, True):
            got = count(mask, dim, keepdim)
            assert got.dtype == torch.int64 and torch.equal(got, mask.sum(dim, keepdim=keepdim)), (p, keepdim)
    mask = (torch.rand(shape[::-1]) < 0.5).transpose(0, -1)  # not contiguous
    assert torch.equal(count(mask, dim), mask.sum(dim))
