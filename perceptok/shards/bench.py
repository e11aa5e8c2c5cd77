"""``perceptok bench tokenize``: maps per second from 16-bit PNG files to token shards, with 0,
1 and ``workers`` DataLoader workers, beside the obvious loop
``for f in files: tok.encode(read_depth(f))`` on the same files in the same run (interleaved
rounds, medians), the CPU time and page faults a map of the main process and of the workers in
each configuration, and where the time of one pass goes (reading the files' codes, the pixel
work, the network and text, writing shards).
"""

from __future__ import annotations

import os
import platform
import shutil
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from perceptok.depth.outputs import PreparedDepth
from perceptok.io import read_depth, read_depth_codes
from perceptok.loading import load
from perceptok.shards.run import _collate, _depth_table, _prepare, _row_values, tokenize_depth
from perceptok.shards.sources import folder_items


def write_pngs(folder: Path, n: int, size: tuple[int, int] = (480, 640)) -> list[Path]:
    """``n`` 16-bit PNG depth maps (millimetres): planes, bumps and Kinect-like holes, written by
    as many threads as there are cores (zlib lets go of the GIL)."""
    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0 : size[0], 0 : size[1]].astype(np.float32)

    def write(i: int) -> Path:
        rng = np.random.default_rng(i)
        mm = 1000 + 3 * yy + 400 * np.sin(xx / rng.uniform(20, 80)) + rng.normal(0, 5, size)
        mm[rng.random(size) < 0.05] = 0  # no measurement
        path = folder / f"{i:05d}.png"
        Image.fromarray(mm.clip(0, 65535).astype(np.uint16)).save(path)
        return path

    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        return list(pool.map(write, range(n)))


def bench_tokenize(files: int = 1024, workers: int = 2, batch_size: int = 32, tokenizer: str = "depth",
                   device: str = "cpu", folder: str | None = None, repeats: int = 3,
                   loop_files: int | None = None) -> dict[str, Any]:
    """The loop and ``tokenize_depth`` with 0, 1 and ``workers`` workers, ``repeats`` rounds
    interleaved (so that a busy moment of the machine hits every configuration alike); rates are
    the medians of the rounds, and the ratios are ratios of medians. ``loop_files``: time the
    loop, and the stages of one pass, on the first so many files only (the loop's rate is per
    map; the loop is the slow part where the rest runs on a GPU)."""
    tok, loop_tok = load(tokenizer), load(tokenizer)  # tokenize_depth moves its tokenizer to the device; the loop's stays
    tmp = Path(tempfile.mkdtemp(prefix="perceptok-bench-"))
    try:
        source = Path(folder) if folder else tmp / "maps"
        if not folder:
            write_pngs(source, files)
        items = folder_items(source, None, "metric", 0.001)
        paths = [Path(item.source) for item in items]
        loop_paths = paths[: loop_files or len(paths)]
        counts = sorted({0, 1, workers})
        seconds: dict[str, list[float]] = {"loop": [], **{str(n): [] for n in counts}}
        usage: dict[str, list[dict[str, float]]] = {k: [] for k in seconds}
        for r in range(repeats):
            before = _usage()
            start = time.perf_counter()
            for path in loop_paths:  # the obvious loop
                loop_tok.encode(read_depth(path, scale=0.001))
            seconds["loop"].append((time.perf_counter() - start) * len(paths) / len(loop_paths))
            usage["loop"].append(_per_map(before, _usage(), len(loop_paths)))
            for n in counts:
                before = _usage()
                summary = tokenize_depth(items, tmp / f"out{n}-{r}", tok, tokenizer, "bench", batch_size=batch_size,
                                         workers=n, device=device, shard_size=batch_size * 4, progress=False)
                seconds[str(n)].append(summary.seconds)
                usage[str(n)].append(_per_map(before, _usage(), len(paths)))
        rate = {k: len(paths) / statistics.median(v) for k, v in seconds.items()}
        return {
            "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads",
            "files": len(paths), "loop_files": len(loop_paths), "batch_size": batch_size, "device": device,
            "tokenizer": tokenizer, "repeats": repeats,
            "loop_maps_s": rate["loop"],
            "workers_maps_s": {str(n): rate[str(n)] for n in counts},
            "workers_vs_one_worker": rate[str(workers)] / rate["1"],
            "best_vs_loop": max(rate[str(n)] for n in counts) / rate["loop"],
            "rounds_maps_s": {k: [len(paths) / t for t in v] for k, v in seconds.items()},
            "per_map": {k: {what: statistics.median(u[what] for u in v) for what in v[0]} for k, v in usage.items()
                        if v and v[0]},
            "seconds_of_one_pass": _stages(tok, loop_paths, batch_size, tmp),
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _usage() -> dict[str, float]:
    """CPU seconds and minor page faults so far, of this process and of its finished children
    (the DataLoader workers, once a run has joined them); empty where ``resource`` is missing
    (Windows)."""
    try:
        import resource
    except ImportError:
        return {}
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"main_cpu_ms": (me.ru_utime + me.ru_stime) * 1e3, "workers_cpu_ms": (children.ru_utime + children.ru_stime) * 1e3,
            "main_page_faults": me.ru_minflt, "workers_page_faults": children.ru_minflt}


def _per_map(before: dict[str, float], after: dict[str, float], maps: int) -> dict[str, float]:
    """What one configuration used a map, between two ``_usage`` readings."""
    return {k: (after[k] - before[k]) / maps for k in before}


def _stages(tok: Any, paths: list[Path], batch_size: int, tmp: Path) -> dict[str, float]:
    """Where one in-process pass of ``tokenize_depth`` spends its time: reading the files' codes,
    the pixel work (``prepare``: normalisation, hole filling, resizing), the network and the text
    (``encode_prepared``, ``to_text``), writing Parquet."""
    import pyarrow.parquet as pq

    clock = time.perf_counter
    device = getattr(tok, "device", torch.device("cpu"))
    decode = prepare = network = 0.0
    rows = []
    for first in range(0, len(paths), batch_size):  # batch by batch, as a run holds them
        start = clock()
        maps = list(enumerate(read_depth_codes(p, scale=0.001) for p in paths[first : first + batch_size]))
        decode += clock() - start
        start = clock()
        if device.type == "cpu":  # as the workers do it: in runs of maps, joined per batch
            prepared = PreparedDepth.cat([p for _, p in _prepare(tok, maps)[0]])
        else:  # as the main process does it: a batch's codes copied as one tensor, normalised together
            prepared = tok.prepare([m for g in _collate(maps)[1] for _, m in g.to(device)])
            if device.type == "cuda":
                torch.cuda.synchronize(device)
        prepare += clock() - start
        start = clock()
        enc = tok.encode_prepared(prepared)
        rows += [{"id": str(first + k), "source": "", **values} for k, values in enumerate(_row_values(enc, tok.to_text(enc)))]
        network += clock() - start
    start = clock()
    pq.write_table(_depth_table(rows), tmp / "write.parquet")
    return {"decode_files": decode, "prepare_pixels": prepare, "network_and_text": network,
            "write_parquet": clock() - start}
