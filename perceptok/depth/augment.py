"""Training batches for the depth tokenizer, cut from a ``MapPool`` by batched tensor code on
the pool's device (no per-map Python, no host sync): crops at any aspect ratio with flips,
sensor-like loss of measurements (LiDAR scan lines, scattered samples, Kinect shadows, blobs and
border bands), percentile normalisation of what is left, noise, and push-pull hole filling.

A batch shares one token grid and one source size (both drawn on the host, so nothing waits on
the device); every per-map choice is drawn on the device.

Axis legend: ``B`` maps, ``H, W`` source pixels, ``h, w`` augmentation pixels (``AUG_CELL``
per token cell), ``H', W'`` decoder output pixels.
"""

from __future__ import annotations

import dataclasses
import math

import torch

from perceptok.depth.config import DepthTokenizerConfig
from perceptok.depth.data import MapPool
from perceptok.depth.masks import both, count, finite, weights
from perceptok.depth.normalize import normalize_depth
from perceptok.depth.resample import model_input, resize

# Pixels per token cell at which crops are cut and measurements removed (at least the network's
# cell_size): fine enough for scan lines and shadows, coarse enough to be cheap.
AUG_CELL = 8
# Below this many measured pixels a map keeps all of its valid ones.
MIN_MEASURED = 16


@dataclasses.dataclass
class Batch:
    """Network inputs and targets for one grid shape.

    Attributes:
        x: ``(B, 2, H, W)`` network input.
        target: ``(B, 1, H', W')`` relative inverse depth at the decoder's resolution.
        mask: ``(B, 1, H', W')`` bool, pixels with a real measurement.
        grid: the token grid ``(h, w)``.
    """

    x: torch.Tensor
    target: torch.Tensor
    mask: torch.Tensor
    grid: tuple[int, int]

    def to(self, device: torch.device) -> Batch:
        return Batch(self.x.to(device), self.target.to(device), self.mask.to(device), self.grid)


@dataclasses.dataclass
class Generators:
    """Random streams: ``host`` for per-batch choices, ``device`` for per-map ones."""

    host: torch.Generator
    device: torch.Generator

    @classmethod
    def seeded(cls, seed: int, device: torch.device | str = "cpu") -> Generators:
        device = torch.device(device)
        host = torch.Generator().manual_seed(seed)
        return cls(host, host if device.type == "cpu" else torch.Generator(device=device).manual_seed(seed))


# Share of each batch whose measurements are thinned like a sensor's (the rest keep all).
SENSORS = (("full", 0.45), ("lidar", 0.2), ("scattered", 0.15), ("kinect", 0.2))
# Share of each batch that gets Gaussian noise (σ = 0.01 in relative inverse depth).
NOISY = 0.3


def make_batch(pool: MapPool, cfg: DepthTokenizerConfig, batch_size: int, gens: Generators,
               augment: bool = True) -> Batch:
    """Sample one batch on the pool's device. Targets are at the decoder's resolution,
    1/decoder_stride of the input's. ``augment=False``: whole frames of the first grid."""
    grids = list(cfg.grids)
    probs = torch.tensor([0.6 if i == 0 else 0.4 / max(len(grids) - 1, 1) for i in range(len(grids))], device="cpu")
    grid = grids[int(torch.multinomial(probs, 1, generator=gens.host))] if augment else grids[0]
    counts = pool.counts()
    if not counts:
        raise ValueError("the map pool is empty: add maps (or wait for the render workers) before sampling")
    keys = list(counts)
    key = keys[int(torch.multinomial(torch.tensor([float(counts[k]) for k in keys], device="cpu"), 1, generator=gens.host))]
    source = pool.bucket(key)  # (n, H, W)
    index = torch.randint(len(source), (batch_size,), generator=gens.device, device=pool.device)
    if not augment:
        return batch_from_maps(source, index, cfg, grid, None, complete=pool.complete(key))
    sensors = torch.multinomial(torch.tensor([p for _, p in SENSORS], device="cpu"), batch_size, True, generator=gens.host)
    noisy = round(NOISY * batch_size)
    plan = Plan(torch.bincount(sensors, minlength=len(SENSORS)).tolist(),
                int(torch.randint(batch_size - noisy + 1, (), generator=gens.host, device="cpu")), noisy)
    return batch_from_maps(source, index, cfg, grid, gens.device, plan, pool.complete(key))


@dataclasses.dataclass
class Plan:
    """Per-batch choices made on the host: maps per sensor in ``SENSORS`` order, and the block
    of maps ``[noise_start, noise_start + noise_count)`` that gets pixel noise."""

    split: list[int]
    noise_start: int
    noise_count: int


def batch_from_maps(source: torch.Tensor, index: torch.Tensor, cfg: DepthTokenizerConfig, grid: tuple[int, int],
                    g: torch.Generator | None, plan: Plan | None = None, complete: bool = False) -> Batch:
    """Maps ``source[index]`` of ``(n, H, W)`` inverse depth (NaN where invalid) → a batch for
    ``grid``. With a generator ``g`` and a ``plan``, crops are random and the batch's maps, in
    order, are thinned by the ``SENSORS`` and noised as planned; ``g=None`` takes whole frames as
    they are. ``complete``: the sources have no holes, so unthinned maps need no filling."""
    size = (grid[0] * cfg.cell_size, grid[1] * cfg.cell_size)
    out_size = (size[0] // cfg.decoder_stride, size[1] // cfg.decoder_stride)
    aug = max(AUG_CELL, cfg.cell_size)
    inv = _crop(source, index, (grid[0] * aug, grid[1] * aug), grid, g)  # (B, h, w)
    ok = finite(inv)
    full = plan.split[0] if plan else len(inv)
    measured = ok
    if g is not None and plan:
        parts, start = [ok[:full]], full
        for sensor, n in zip((_lidar, _scattered, _kinect), plan.split[1:]):
            parts.append(ok[start : start + n] & sensor(inv[start : start + n], g))
            start += n
        measured = torch.cat(parts)
        few = count(measured.flatten(1), 1) < MIN_MEASURED
        measured |= both(few[:, None, None], ok)  # measured ⊆ ok: `where(few, ok, measured)` in bool ops
    rel = normalize_depth(inv, "relative_inverse", measured=measured).rel  # (B, h, w)
    noisy = rel
    if g is not None and plan:
        start, n = plan.noise_start, plan.noise_count
        noise = torch.randn((n, *rel.shape[1:]), generator=g, device=rel.device, dtype=rel.dtype) * 0.01
        noisy = torch.cat([rel[:start], (rel[start : start + n] + noise).clamp(0, 1), rel[start + n :]])
    k = full if complete else 0  # maps measured everywhere: nothing to fill
    dense = resize(noisy[:k, None], size) * 2 - 1
    x = torch.cat([torch.cat([dense, torch.ones_like(dense)], dim=1),
                   model_input(noisy[k:, None] * weights(measured[k:, None], noisy.dtype), measured[k:, None], size,
                               holes=True)])
    if complete:  # every crop pixel is valid
        target, weight = resize(rel[:, None], out_size), torch.ones_like(rel[:, None, :1, :1])
    else:
        weight = resize(weights(ok[:, None], rel.dtype), out_size)
        target = resize(rel[:, None] * ok[:, None], out_size) / weight.clamp_min(1e-6)
    return Batch(x, target, (weight > 0.5).expand_as(target), grid)


def _crop(source: torch.Tensor, index: torch.Tensor, out: tuple[int, int], grid: tuple[int, int],
          g: torch.Generator | None) -> torch.Tensor:
    """Crops of ``source[index]`` whose aspect ratio suits ``grid`` (cells within ±40 % of
    square), covering 35–100 % of the largest such window, flipped half the time, sampled at
    ``out`` pixels by nearest neighbour (holes stay holes; only the sampled pixels are read).
    ``g=None``: whole frames."""
    _, h, w = source.shape
    b, dev = len(index), source.device
    opts = dict(device=dev, dtype=torch.float32)
    if g is None:
        ones, zeros = torch.ones(b, **opts), torch.zeros(b, **opts)
        y0, x0, ch, cw, flip = zeros, zeros, ones * h, ones * w, torch.zeros(b, dtype=torch.bool, device=dev)
    else:
        def uniform(lo: float, hi: float) -> torch.Tensor:
            return torch.rand(b, generator=g, **opts) * (hi - lo) + lo

        aspect = grid[1] / grid[0] * torch.exp(uniform(-0.35, 0.35))
        ch = (torch.minimum(torch.full_like(aspect, h), w / aspect) * uniform(0.35, 1.0).sqrt()).clamp(min(8, h), h)
        cw = (ch * aspect).clamp(min(8, w), w)
        y0, x0 = uniform(0, 1) * (h - ch), uniform(0, 1) * (w - cw)
        flip = uniform(0, 1) < 0.5
    fy = (torch.arange(out[0], **opts) + 0.5) / out[0]  # pixel centres in [0, 1]
    fx = (torch.arange(out[1], **opts) + 0.5) / out[1]
    fx = torch.where(flip[:, None], 1 - fx[None], fx[None])  # (B, w)
    # int32 positions where they fit: half the memory traffic of int64 in the (B, h, w) add
    dtype = torch.int32 if source.numel() < 2**31 else torch.int64
    ys = (y0[:, None] + fy[None] * ch[:, None]).to(dtype).clamp(0, h - 1)  # (B, h)
    xs = (x0[:, None] + fx * cw[:, None]).to(dtype).clamp(0, w - 1)  # (B, w)
    flat = ((index.to(dtype)[:, None] * h + ys) * w)[:, :, None] + xs[:, None, :]  # (B, h, w)
    return source.reshape(-1).index_select(0, flat.view(-1)).view(flat.shape)  # 2–3× faster than [flat] on a CPU


def _chance(g: torch.Generator, like: torch.Tensor, shape: tuple[int, ...], p: torch.Tensor | float) -> torch.Tensor:
    """``shape`` bools, each true with probability ``p`` (a float, or floats that broadcast to
    ``shape``, in [0, 1]) to within 2⁻¹⁶: 16 random bits a value, cut from 64-bit draws, a quarter
    of the generator's work for ``torch.rand`` (which dominates such masks on a CPU)."""
    n = math.prod(shape)
    bits = torch.empty((n + 3) // 4, dtype=torch.int64, device=like.device).random_(-(2**63), None, generator=g)
    uniform = bits.view(torch.int16)[:n].view(shape)  # on [-2¹⁵, 2¹⁵)
    threshold = (torch.as_tensor(p, device=like.device) * 65536).round().to(torch.int32) - 32768
    return uniform < threshold


def _rand(g: torch.Generator, like: torch.Tensor, *shape: int) -> torch.Tensor:
    return torch.rand(shape, generator=g, device=like.device, dtype=like.dtype)


def _lidar(inv: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """LiDAR-like scan lines ``(B, h, w)``: every step-th row (step 2..6), 30–100 % of the columns."""
    b, h, w = inv.shape
    step = torch.randint(2, 7, (b, 1), generator=g, device=inv.device)
    offset = (_rand(g, inv, b, 1) * step).long()
    rows = (torch.arange(h, device=inv.device)[None] + offset) % step == 0  # (B, h)
    cols = _chance(g, inv, (b, w), _rand(g, inv, b, 1) * 0.7 + 0.3)  # (B, w)
    return both(rows[:, :, None], cols[:, None, :])


def _scattered(inv: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Scattered samples ``(B, h, w)``: 5–50 % of the pixels."""
    b, h, w = inv.shape
    return _chance(g, inv, (b, h, w), _rand(g, inv, b, 1, 1) * 0.45 + 0.05)


def _kinect(inv: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Kinect-like validity ``(B, h, w)``: shadows (70 % of pixels) within 3 px of depth edges,
    up to three elliptic blobs, a band along the left border."""
    b, h, w = inv.shape
    x = inv.nan_to_num(0.0)
    gy, gx = torch.gradient(x, dim=(1, 2))
    edges = (gx.abs() + gy.abs()) > 0.02 * x.flatten(1).amax(1).clamp_min(1e-6)[:, None, None]
    out = ~(_dilate(edges, 3) & _chance(g, x, (b, h, w), 0.7))
    cy, cx = _rand(g, x, b, 3, 1, 1) * h, _rand(g, x, b, 3, 1, 1) * w
    ry, rx = (0.03 + 0.12 * _rand(g, x, b, 3, 1, 1)) * h, (0.03 + 0.12 * _rand(g, x, b, 3, 1, 1)) * w
    yy = torch.arange(h, device=x.device, dtype=x.dtype)[None, None, :, None]
    xx = torch.arange(w, device=x.device, dtype=x.dtype)[None, None, None, :]
    active = torch.arange(3, device=x.device)[None] < torch.randint(0, 4, (b, 1), generator=g, device=x.device)
    ey = (((yy - cy) / ry) ** 2).masked_fill(~active[:, :, None, None], torch.inf)  # (B, 3, h, 1): idle blobs reach nothing
    out &= (ey + ((xx - cx) / rx) ** 2).amin(1) > 1  # outside every blob
    band = (_rand(g, x, b, 1, 1) * (0.08 * w)).floor()
    return both(out, xx[:, 0] >= band)


def _dilate(mask: torch.Tensor, r: int) -> torch.Tensor:
    """``(B, h, w)`` bool mask grown by ``r`` pixels (a square), separably by shifted ORs
    (several times faster than max pooling on a CPU)."""
    for dim in (-1, -2):
        out, n = mask.clone(), mask.shape[dim]
        for d in range(1, min(r, n - 1) + 1):
            out.narrow(dim, d, n - d).logical_or_(mask.narrow(dim, 0, n - d))
            out.narrow(dim, 0, n - d).logical_or_(mask.narrow(dim, d, n - d))
        mask = out
    return mask


def validation_batches(pool: MapPool, cfg: DepthTokenizerConfig) -> list[Batch]:
    """Every map of ``pool`` as a whole frame in the first grid, one batch per source size."""
    return [batch_from_maps(pool.bucket(key), torch.arange(n, device=pool.device), cfg, cfg.grids[0], None,
                            complete=pool.complete(key)) for key, n in pool.counts().items()]

