"""Training data for the depth tokenizer: where source maps come from and where they live.

Source maps are inverse depth (larger = closer; NaN where nothing was measured) kept on the
training device in a ``MapPool``, one stacked tensor per map size, so a batch is cut from them
by batched tensor code (``perceptok.depth.augment``). Procedural scenes are rendered by worker
processes (a ``torch.utils.data.DataLoader``) and streamed into the pool while training runs:
the first step waits for a handful of scenes, not for all of them.

Axis legend: ``H, W`` pixels of a source map.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from perceptok.depth.normalize import normalize_depth
from perceptok.io.manifest import read_manifest
from perceptok.synthetic import render_scene

# Render sizes of synthetic scenes (H, W) and how often each is drawn: 4:3 frames and wide ones.
RENDER_SIZES = (((240, 320), 0.6), ((192, 384), 0.2), ((128, 448), 0.2))


def default_workers() -> int:
    """Render processes: the cores but one (at least one), at most 16."""
    return max(1, min(16, (os.cpu_count() or 2) - 1))


class MapPool:
    """Inverse-depth maps on one device, stacked per size; thread-safe ``add``.

    ``bucket(key)`` gives the ``(n, H, W)`` tensor of the maps of one size added so far."""

    def __init__(self, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self._store: dict[tuple[int, int], torch.Tensor] = {}
        self._count: dict[tuple[int, int], int] = {}
        self._holes: set[tuple[int, int]] = set()
        self._lock = threading.Lock()

    def add(self, inverse: torch.Tensor) -> None:
        """Add one ``(H, W)`` map (NaN where invalid)."""
        key = tuple(inverse.shape)
        with self._lock:
            n = self._count.get(key, 0)
            store = self._store.get(key)
            if store is None or n == len(store):  # grow by doubling
                grown = torch.empty((max(2 * n, 16), *key), dtype=torch.float32, device=self.device)
                if store is not None:
                    grown[:n] = store[:n]
                self._store[key] = store = grown
            store[n] = inverse.to(self.device, torch.float32)
            self._count[key] = n + 1
            if not bool(torch.isfinite(store[n]).all()):
                self._holes.add(key)

    def __len__(self) -> int:
        return sum(self._count.values())

    def counts(self) -> dict[tuple[int, int], int]:
        with self._lock:
            return dict(self._count)

    def complete(self, key: tuple[int, int]) -> bool:
        """Whether every map of that size is measured everywhere (crops need no hole filling)."""
        with self._lock:
            return key not in self._holes

    def bucket(self, key: tuple[int, int]) -> torch.Tensor:
        with self._lock:
            return self._store[key][: self._count[key]]


class SyntheticScenes(Dataset):
    """Procedural scene ``i`` (of ``perceptok.synthetic``) as an inverse-depth map ``(H, W)``;
    the sky is valid with inverse depth 0 (infinitely far). The same index always gives the same map."""

    def __init__(self, indices: list[int], seed: int = 0):
        self.indices = indices
        self.seed = seed

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> torch.Tensor:
        index = self.indices[i]
        rng = np.random.default_rng([self.seed, index])
        sizes = [s for s, _ in RENDER_SIZES]
        size = sizes[rng.choice(len(sizes), p=[w for _, w in RENDER_SIZES])]
        scene = render_scene(self.seed * 1_000_003 + index, size=size, kind="outdoor" if size[1] / size[0] > 2.5 else None)
        depth = torch.from_numpy(scene.depth)
        return torch.where(torch.isinf(depth), torch.zeros_like(depth), 1.0 / depth)


def render(scenes: SyntheticScenes, workers: int) -> Iterator[torch.Tensor]:
    """Render ``scenes`` in ``workers`` processes (0: in this one), in order. The processes start
    here, in the calling thread (never fork from a helper thread while torch runs elsewhere)."""
    return iter(DataLoader(scenes, batch_size=None, num_workers=workers, prefetch_factor=4 if workers else None))


def manifest_maps(path: str | Path) -> list[torch.Tensor]:
    """The maps of a manifest as inverse depth, NaN where invalid."""
    maps = []
    for entry in read_manifest(path):
        d = entry.load()
        norm = normalize_depth(d.values[None], d.kind, d.valid[None])
        maps.append(norm.inverse[0].masked_fill(~norm.valid[0], float("nan")))
    return maps


class SourceStream:
    """Fills a ``MapPool`` from ``synthetic:N`` and manifest sources.

    Manifests load at once; synthetic scenes render in worker processes and stream in from a
    background thread. Under DDP each rank renders its own share (scene ``i`` goes to rank
    ``i % world``), so the ranks' pools are disjoint and their union is every scene.
    """

    def __init__(self, specs: list[str], pool: MapPool, seed: int = 0, workers: int | None = None,
                 rank: int = 0, world: int = 1, progress: bool = True):
        self.pool = pool
        scenes: list[int] = []
        for spec in specs:
            if spec.startswith("synthetic:"):
                count = spec.split(":", 1)[1]
                if not count.isdigit() or int(count) < 1:
                    raise ValueError(f"--data synthetic:N needs a positive scene count, got {spec!r}")
                scenes += range(len(scenes), len(scenes) + int(count))
            else:
                for m in manifest_maps(spec):
                    pool.add(m)
        if not scenes and not len(pool):
            raise ValueError("no training data: pass --data synthetic:N and/or --data PATH/manifest.jsonl")
        self.total = len(pool) + len(scenes[rank::world])
        self.error: BaseException | None = None
        self._bar = tqdm(total=len(scenes[rank::world]), desc="rendering scenes", unit="scene",
                         disable=not progress or not scenes)
        mine = SyntheticScenes(scenes[rank::world], seed)
        maps = render(mine, default_workers() if workers is None else workers) if len(mine) else iter(())
        self._thread = threading.Thread(target=self._fill, args=(maps,), daemon=True)
        self._thread.start()

    def _fill(self, maps: Iterator[torch.Tensor]) -> None:
        try:
            for inverse in maps:
                self.pool.add(inverse)
                self._bar.update(1)
        except BaseException as err:  # surfaced in the training thread by wait()
            self.error = err
        finally:
            self._bar.close()

    def wait(self, at_least: int) -> MapPool:
        """Block until the pool holds ``at_least`` maps (or everything), and re-raise a render failure."""
        target = min(at_least, self.total)
        while len(self.pool) < target and self._thread.is_alive():
            self._thread.join(0.05)
        if self.error is not None:
            raise RuntimeError(f"rendering synthetic scenes failed: {self.error}") from self.error
        return self.pool

    def done(self) -> bool:
        return not self._thread.is_alive()


def load_pool(specs: list[str], device: torch.device | str = "cpu", seed: int = 0, workers: int | None = None,
              progress: bool = False) -> MapPool:
    """Every map of ``specs`` in a pool, rendered before returning (validation sets, tests)."""
    stream = SourceStream(specs, MapPool(device), seed=seed, workers=workers, progress=progress)
    return stream.wait(stream.total)
