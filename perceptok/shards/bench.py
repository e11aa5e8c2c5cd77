"""``perceptok bench tokenize``: maps per second from 16-bit PNG files to token shards, with 0,
1 and ``workers`` DataLoader workers, beside the obvious loop
``for f in files: tok.encode(read_depth(f))`` on the same files in the same run, and where the
time of one pass goes (decoding files, normalisation, the network, writing shards).
"""

from __future__ import annotations

import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from perceptok.depth.normalize import normalize_depth
from perceptok.io import read_depth
from perceptok.loading import load
from perceptok.shards.run import _depth_table, tokenize_depth
from perceptok.shards.sources import folder_items


def write_pngs(folder: Path, n: int, size: tuple[int, int] = (480, 640)) -> list[Path]:
    """``n`` 16-bit PNG depth maps (millimetres): planes, bumps and Kinect-like holes."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0 : size[0], 0 : size[1]].astype(np.float32)
    paths = []
    for i in range(n):
        mm = 1000 + 3 * yy + 400 * np.sin(xx / rng.uniform(20, 80)) + rng.normal(0, 5, size)
        mm[rng.random(size) < 0.05] = 0  # no measurement
        path = folder / f"{i:05d}.png"
        Image.fromarray(mm.clip(0, 65535).astype(np.uint16)).save(path)
        paths.append(path)
    return paths


def bench_tokenize(files: int = 256, workers: int = 2, batch_size: int = 32, tokenizer: str = "depth",
                   device: str = "cpu", folder: str | None = None) -> dict[str, Any]:
    tok = load(tokenizer)
    tmp = Path(tempfile.mkdtemp(prefix="perceptok-bench-"))
    try:
        source = Path(folder) if folder else tmp / "maps"
        if not folder:
            write_pngs(source, files)
        items = folder_items(source, None, "metric", 0.001)
        paths = [Path(item.source) for item in items]
        start = time.perf_counter()
        for path in paths:  # the obvious loop
            tok.encode(read_depth(path, scale=0.001))
        loop = time.perf_counter() - start
        runs = {}
        for n in sorted({0, 1, workers}):
            summary = tokenize_depth(items, tmp / f"out{n}", tok, tokenizer, "bench", batch_size=batch_size,
                                     workers=n, device=device, shard_size=batch_size * 4, progress=False)
            runs[n] = summary.seconds
        # Where one in-process pass spends its time.
        start = time.perf_counter()
        maps = [read_depth(p, scale=0.001) for p in paths]
        decode = time.perf_counter() - start
        start = time.perf_counter()
        for i in range(0, len(maps), batch_size):
            normalize_depth(torch.stack([m.values for m in maps[i : i + batch_size]]), "metric")
        normalise = time.perf_counter() - start
        start = time.perf_counter()
        encodings = [tok.encode(maps[i : i + batch_size]) for i in range(0, len(maps), batch_size)]
        encode = time.perf_counter() - start
        rows = [{"id": str(k), "source": "", "ids": ids, "text": text, "grid": [10, 10], "kind": "metric",
                 "low": 0.0, "high": 1.0, "height": 480, "width": 640}
                for enc in encodings for k, (ids, text) in enumerate(zip(enc.ids.tolist(), tok.to_text(enc)))]
        start = time.perf_counter()
        import pyarrow.parquet as pq

        pq.write_table(_depth_table(rows), tmp / "write.parquet")
        write = time.perf_counter() - start
        n = len(paths)
        return {
            "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads",
            "files": n, "batch_size": batch_size, "device": device, "tokenizer": tokenizer,
            "loop_maps_s": n / loop,
            "workers_maps_s": {str(k): n / v for k, v in runs.items()},
            "workers_vs_one_worker": runs[1] / runs[workers] if workers != 1 else 1.0,
            "best_vs_loop": loop / min(runs.values()),
            "seconds_of_one_pass": {"decode_files": decode, "normalise": normalise,
                                    "network_and_rest_of_encode": encode - normalise, "write_parquet": write},
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
