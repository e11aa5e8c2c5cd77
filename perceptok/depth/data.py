"""Training data for the depth tokenizer: sources of inverse-depth maps and the augmentation
that makes a tokenizer robust to what users bring (any aspect ratio, sparse LiDAR-like
measurements, Kinect holes and shadows, noise, indoor and outdoor scenes).

Axis legend: ``H, W`` pixels of a source map; ``h, w`` token grid.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from perceptok.depth.config import DepthTokenizerConfig
from perceptok.depth.normalize import robust_range, resize, to_inverse, valid_mask
from perceptok.depth.tokenizer import model_input
from perceptok.io.manifest import read_manifest
from perceptok.synthetic import render_scene

# Render sizes of synthetic scenes (H, W) and how often each is drawn: 4:3 frames and wide ones.
RENDER_SIZES = (((240, 320), 0.6), ((192, 384), 0.2), ((128, 448), 0.2))


@dataclasses.dataclass
class InverseMap:
    """One source map: inverse depth (larger = closer) and validity, ``(H, W)`` each."""

    inverse: torch.Tensor
    valid: torch.Tensor


def synthetic_maps(n: int, seed: int = 0, progress: bool = True) -> list[InverseMap]:
    """``n`` procedural scenes as inverse depth; the sky is valid with inverse depth 0 (infinitely far)."""
    rng = np.random.default_rng(seed)
    sizes = [s for s, _ in RENDER_SIZES]
    weights = np.array([w for _, w in RENDER_SIZES])
    maps = []
    for i in tqdm(range(n), desc="rendering scenes", disable=not progress, unit="scene"):
        size = sizes[rng.choice(len(sizes), p=weights)]
        scene = render_scene(seed * 1_000_003 + i, size=size, kind="outdoor" if size[1] / size[0] > 2.5 else None)
        depth = torch.from_numpy(scene.depth)
        inverse = torch.where(torch.isinf(depth), torch.zeros_like(depth), 1.0 / depth)
        maps.append(InverseMap(inverse, torch.ones_like(depth, dtype=torch.bool)))
    return maps


def manifest_maps(path: str | Path) -> list[InverseMap]:
    maps = []
    for entry in read_manifest(path):
        d = entry.load()
        ok = valid_mask(d.values, d.kind, d.valid)
        maps.append(InverseMap(to_inverse(torch.where(ok, d.values, torch.ones_like(d.values)), d.kind) * ok, ok))
    return maps


def load_sources(specs: list[str], seed: int = 0) -> list[InverseMap]:
    """``synthetic:N`` and manifest paths → maps."""
    maps: list[InverseMap] = []
    for spec in specs:
        if spec.startswith("synthetic:"):
            count = spec.split(":", 1)[1]
            if not count.isdigit() or int(count) < 1:
                raise ValueError(f"--data synthetic:N needs a positive scene count, got {spec!r}")
            maps += synthetic_maps(int(count), seed=seed)
        else:
            maps += manifest_maps(spec)
    if not maps:
        raise ValueError("no training data: pass --data synthetic:N and/or --data PATH/manifest.jsonl")
    return maps


def _degrade_validity(valid: torch.Tensor, inverse: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Remove measurements the way real sensors do (at the source resolution)."""
    h, w = valid.shape
    r = float(torch.rand((), generator=g))
    if r < 0.45:
        return valid
    if r < 0.65:  # LiDAR-like: a few scan lines, columns dropped
        step = int(torch.randint(2, 7, (), generator=g))
        rows = (torch.arange(h) + int(torch.randint(0, step, (), generator=g))) % step == 0
        cols = torch.rand(w, generator=g) < float(torch.empty(()).uniform_(0.3, 1.0, generator=g))
        return valid & rows[:, None] & cols[None, :]
    if r < 0.8:  # scattered samples
        return valid & (torch.rand(h, w, generator=g) < float(torch.empty(()).uniform_(0.05, 0.5, generator=g)))
    # Kinect-like: shadows along depth edges, blobs, a border band
    gy, gx = torch.gradient(inverse)
    edges = (gx.abs() + gy.abs()) > 0.02 * float(inverse.max().clamp_min(1e-6))
    edges = F.max_pool2d(edges[None, None].float(), 7, stride=1, padding=3)[0, 0] > 0
    out = valid & ~(edges & (torch.rand(h, w, generator=g) < 0.7))
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    for _ in range(int(torch.randint(0, 4, (), generator=g))):
        cy, cx = float(torch.rand((), generator=g)) * h, float(torch.rand((), generator=g)) * w
        ry, rx = (0.03 + 0.12 * float(torch.rand((), generator=g))) * h, (0.03 + 0.12 * float(torch.rand((), generator=g))) * w
        out &= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 > 1
    band = int(float(torch.rand((), generator=g)) * 0.08 * w)
    if band:
        out[:, :band] = False
    return out


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


def make_batch(maps: list[InverseMap], cfg: DepthTokenizerConfig, batch_size: int, g: torch.Generator,
               augment: bool = True) -> Batch:
    """Sample one batch; all its maps share a grid drawn from the config's grids (the square
    one most often). Targets are at the decoder's resolution, 1/decoder_stride of the input's."""
    grids = list(cfg.grids)
    probs = torch.tensor([0.6 if i == 0 else 0.4 / max(len(grids) - 1, 1) for i in range(len(grids))])
    grid = grids[int(torch.multinomial(probs, 1, generator=g))] if augment else grids[0]
    size = (grid[0] * cfg.cell_size, grid[1] * cfg.cell_size)
    out_size = (size[0] // cfg.decoder_stride, size[1] // cfg.decoder_stride)
    xs, targets, masks = [], [], []
    for _ in range(batch_size):
        m = maps[int(torch.randint(len(maps), (), generator=g))]
        inv, ok = m.inverse, m.valid
        if augment:
            inv, ok = _random_crop(inv, ok, grid, g)
        measured = _degrade_validity(ok, inv, g) if augment else ok
        if int(measured.sum()) < 16:
            measured = ok
        low, high = robust_range(inv, measured)
        rel = ((inv - low) / (high - low)).clamp(0, 1)
        noisy = rel
        if augment and float(torch.rand((), generator=g)) < 0.3:
            noisy = (rel + torch.randn(rel.shape, generator=g) * 0.01).clamp(0, 1)
        xs.append(model_input((noisy * measured)[None, None], measured[None, None], size)[0])
        okf = ok[None, None].float()
        weight = resize(okf, out_size)
        targets.append((resize(rel[None, None] * okf, out_size) / weight.clamp_min(1e-6))[0])
        masks.append((weight > 0.5)[0])
    return Batch(torch.stack(xs), torch.stack(targets), torch.stack(masks), grid)


def _random_crop(inv: torch.Tensor, ok: torch.Tensor, grid: tuple[int, int], g: torch.Generator):
    """A random crop whose aspect ratio suits ``grid`` (cells within ±40 % of square), flipped half the time."""
    h, w = inv.shape
    aspect = grid[1] / grid[0] * math.exp(float(torch.empty(()).uniform_(-0.35, 0.35, generator=g)))
    ch = min(h, w / aspect)
    scale = math.sqrt(float(torch.empty(()).uniform_(0.35, 1.0, generator=g)))
    ch = max(int(ch * scale), 8)
    cw = max(min(int(ch * aspect), w), 8)
    y0 = int(torch.randint(0, h - ch + 1, (), generator=g))
    x0 = int(torch.randint(0, w - cw + 1, (), generator=g))
    inv, ok = inv[y0 : y0 + ch, x0 : x0 + cw], ok[y0 : y0 + ch, x0 : x0 + cw]
    if float(torch.rand((), generator=g)) < 0.5:
        inv, ok = inv.flip(-1), ok.flip(-1)
    return inv, ok
