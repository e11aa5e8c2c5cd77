"""Whole datasets of depth maps to token shards: ``tokenize_depth`` (COCO boxes: ``boxes.py``).

Files are decoded in DataLoader worker processes and tokenized in batches on the chosen device;
rows go to Parquet shards through ``ShardStore`` (atomic, resumable, split across ranks). A bad
input never stops the run: it is skipped, with its reason, into ``OUT/errors.jsonl``.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from perceptok.depth.grid import GridDepthTokenizer
from perceptok.depth.outputs import DepthEncoding, PreparedDepth
from perceptok.distributed import local_device
from perceptok.io.depth_files import DepthCodes, DepthMap, same_table
from perceptok.io.square import pad_square as square
from perceptok.shards.sources import DepthInputs, DepthItem, items_digest
from perceptok.shards.store import ShardStore, TokenizeSummary, plan_shards, require_pyarrow, tokenizer_identity


def _depth_table(rows: list[dict[str, Any]]) -> Any:
    pa = require_pyarrow()
    schema = pa.schema([("id", pa.string()), ("source", pa.string()), ("ids", pa.list_(pa.int32())),
                        ("text", pa.string()), ("grid", pa.list_(pa.int32())), ("kind", pa.string()),
                        ("low", pa.float64()), ("high", pa.float64()), ("height", pa.int32()), ("width", pa.int32())])
    return pa.Table.from_pylist(rows, schema=schema)


def _row_values(enc: DepthEncoding, texts: list[str]) -> list[dict[str, Any]]:
    """Each map's row but its ``id`` and ``source``, from its encoding and text, in plain Python
    values: what a worker sends back (these pickle by value; the encoding's tensors would each
    cross in shared memory, a file and a handshake per tensor, 1.5 ms of the main process's)."""
    ids, low, high = enc.ids.tolist(), enc.stats.low.tolist(), enc.stats.high.tolist()
    return [{"ids": ids[j], "text": texts[j], "grid": list(enc.stats.grids[j]), "kind": enc.stats.kind,
             "low": low[j], "high": high[j], "height": enc.stats.sizes[j][0], "width": enc.stats.sizes[j][1]}
            for j in range(len(ids))]


def _rows(items: Sequence[DepthItem], indices: Sequence[int], values: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    """The shard rows of ``items[indices]``, whose other columns are ``values`` (``_row_values``)."""
    return [(i, {"id": items[i].id, "source": items[i].source, **v}) for i, v in zip(indices, values)]


def _encode_rows(tok: GridDepthTokenizer, items: Sequence[DepthItem], batch: list[tuple[int, DepthMap | DepthCodes]],
                 device: torch.device) -> tuple[list[tuple[int, dict[str, Any]]], list[tuple[int, str]]]:
    """Rows of a batch of maps (grouped by kind); a batch that fails is retried map by map, so
    only the bad map is skipped."""
    rows, errors = [], []
    by_kind: dict[str, list[tuple[int, DepthMap | DepthCodes]]] = {}
    for i, m in batch:
        by_kind.setdefault(m.kind, []).append((i, m))
    for group in by_kind.values():
        try:
            enc = tok.encode([m.to(device, non_blocking=True) for _, m in group])
        except ValueError as err:
            if len(group) == 1:
                errors.append((group[0][0], f"ValueError: {err}"))
                continue
            for one in group:
                r, e = _encode_rows(tok, items, [one], device)
                rows += r
                errors += e
            continue
        rows += _rows(items, [i for i, _ in group], _row_values(enc, tok.to_text(enc)))
    return rows, errors


_CODE_OFFSET = 32768  # 16-bit codes, shifted into int16


@dataclasses.dataclass
class CodesBatch:
    """Code maps of one size and one code table that a worker read, as one ``(b, H, W)`` int16
    tensor of ``code - 32768`` (a 16-bit code in half the bytes of int32, in a dtype every device
    supports): they cross to the main process, and on to the accelerator, as one tensor instead
    of one per map (each crossing costs a shared-memory handle, each copy a transfer)."""

    indices: list[int]
    codes: torch.Tensor
    table: torch.Tensor
    kind: str
    paths: list[Path | None]

    def pin_memory(self) -> CodesBatch:  # called by DataLoader(pin_memory=True)
        return dataclasses.replace(self, codes=self.codes.pin_memory())

    def to(self, device: torch.device, tables: list[torch.Tensor] | None = None) -> list[tuple[int, DepthCodes]]:
        """The maps on ``device``: views of one copy, sharing one table. ``tables``: the tables
        seen so far; an equal one is used instead of this batch's copy (and this one is added
        otherwise), so that what tokenizers derive from a table is derived once per run, not
        once per batch."""
        table = self.table
        if tables is not None:
            seen = next((t for t in tables if same_table(t, table)), None)
            if seen is None:
                tables.append(table)
            else:
                table = seen
        codes = self.codes.to(device, non_blocking=True).int() + _CODE_OFFSET
        return [(i, DepthCodes(codes[j], table, self.kind, path))
                for j, (i, path) in enumerate(zip(self.indices, self.paths))]


Joined = tuple[list[tuple[list[int], list[dict[str, Any]]]], list[CodesBatch], list[tuple[int, Any]]]

# The most pixels a worker prepares in one call (normalisation's per-code steps then run once for
# all its maps, not map by map: 8 % less worker CPU a map, BENCHMARKS.md). The call's full-size
# temporary (the stacked codes) stays under glibc's 32 MB mmap threshold this way, so it reuses
# freed memory instead of page-faulting fresh pages in on every call.
PREPARE_PIXELS = 4_000_000


def _prepare(tok: GridDepthTokenizer, maps: list[tuple[int, DepthMap | DepthCodes]]) -> tuple[
        list[tuple[list[int], PreparedDepth]], list[tuple[int, str]]]:
    """Maps of one kind, prepared by ``tok`` in runs of up to ``PREPARE_PIXELS`` pixels; a run
    that fails is retried map by map, so that only a bad map is skipped (with its reason)."""
    runs: list[list[tuple[int, DepthMap | DepthCodes]]] = [[]]
    pixels = 0
    for i, m in maps:
        size = (m.codes if isinstance(m, DepthCodes) else m.values).numel()
        if runs[-1] and pixels + size > PREPARE_PIXELS:
            runs.append([])
            pixels = 0
        runs[-1].append((i, m))
        pixels += size
    prepared, errors = [], []
    for run in runs:
        try:
            prepared.append(([i for i, _ in run], tok.prepare([m for _, m in run])))
        except (ValueError, TypeError) as err:
            if len(run) == 1:
                errors.append((run[0][0], f"{type(err).__name__}: {err}"))
                continue
            for one in run:
                more, bad = _prepare(tok, [one])
                prepared += more
                errors += bad
    return prepared, errors


def _collate(batch: list[tuple[int, Any]], tokenizer: GridDepthTokenizer | None = None) -> Joined:
    """Where a worker made the batch. With ``tokenizer`` (the workers do the pixel work and run
    the network): its maps prepared (``_prepare``), joined per kind and encoded into their rows'
    values (``_row_values``, the text included). Without: its code maps stacked per size and
    table (so that a batch crosses to the main process as a few tensors, not one or three per
    map). The rest (value maps for the main process, images, reasons for skipping) as it is;
    maps that fail to prepare become reasons."""
    maps: dict[str, list[tuple[int, DepthMap | DepthCodes]]] = {}
    codes: dict[tuple[Any, ...], list[tuple[int, DepthCodes]]] = {}
    rest = []
    for i, x in batch:
        if tokenizer is not None and isinstance(x, (DepthMap, DepthCodes)):
            maps.setdefault(x.kind, []).append((i, x))
        elif isinstance(x, DepthCodes):
            codes.setdefault((tuple(x.codes.shape), id(x.table), x.kind), []).append((i, x))
        else:
            rest.append((i, x))
    joined = []
    for group in maps.values():
        prepared, errors = _prepare(tokenizer, group)
        rest += errors
        if prepared:
            enc = tokenizer.encode_prepared(PreparedDepth.cat([p for _, p in prepared]))
            joined.append(([i for indices, _ in prepared for i in indices], _row_values(enc, tokenizer.to_text(enc))))
    stacked = [CodesBatch([i for i, _ in g], (torch.stack([c.codes for _, c in g]) - _CODE_OFFSET).to(torch.int16),
                          g[0][1].table, g[0][1].kind, [c.path for _, c in g]) for g in codes.values()]
    return joined, stacked, rest


# glibc's mallopt parameters (malloc.h) and what a worker sets them to: blocks up to 32 MB (the
# largest threshold glibc accepts) come from the heap, and freed memory stays there up to 1 GB.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_WORKER_MALLOC = {_M_MMAP_THRESHOLD: 32 * 2**20, _M_TRIM_THRESHOLD: 2**30}


def _keep_freed_memory(worker_id: int) -> None:
    """A DataLoader worker's allocator keeps the memory it frees for the next map: by default
    glibc hands the megabyte-sized buffers of each map (the file's bytes, the inflated rows, the
    codes, a run's stacked maps) back to the kernel and page-faults them in again for the next:
    620 page faults a map against 210, and 6 % more worker CPU a map on a 2-core VM
    (BENCHMARKS.md). Only in the workers, which are this run's own processes; nothing changes
    where libc has no ``mallopt`` (macOS, Windows, musl)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):  # no such function; Windows loads no NULL library
        return
    for param, value in _WORKER_MALLOC.items():
        mallopt(param, value)


def tokenize_depth(
    items: Sequence[DepthItem],
    out: str | Path,
    tokenizer: GridDepthTokenizer,
    tokenizer_name: str,
    source: str,
    batch_size: int = 32,
    workers: int = 0,
    device: str | torch.device | None = None,
    shard_size: int = 1000,
    dataset: str | None = None,
    column: str | None = None,
    estimator: Callable[[list[Any]], list[DepthMap]] | None = None,
    progress: bool = True,
    workers_prepare: bool | None = None,
    pad_square: bool = False,
) -> TokenizeSummary:
    """Tokenize ``items`` into Parquet shards in ``out`` (resuming what an earlier run left).

    Rows: ``id``, ``source``, ``ids`` (the codes), ``text``, ``grid`` (rows, cols), and what
    ``decode(ids, stats=...)`` needs to restore the map's units (``kind``, ``low``, ``high``,
    ``height``, ``width``; see ``read.decode_row``). ``estimator`` turns RGB inputs into depth.
    ``workers_prepare``: whether the workers do the pixel work (normalisation, hole filling,
    resizing) of each map they read and run the network on each batch, sending back ids, or send
    the codes to be normalised and encoded in batches on ``device``; by default they do on a CPU
    and do not on an accelerator. ``pad_square``: each map centred on a square of no-measurement
    pixels first (``perceptok.io.square``), so that the tokens describe the square image that
    LLaVA-1.5 sees (the LLaVA plugin's curriculum then takes them as its targets as they are).
    """
    require_pyarrow()
    start = time.perf_counter()
    device = local_device(device)  # "cuda" under torchrun: this rank's GPU
    tok = tokenizer.to(device) if hasattr(tokenizer, "to") else tokenizer  # the pooled baseline has no network
    store = ShardStore(out, {"modality": "depth", "tokenizer": tokenizer_identity(tok, tokenizer_name),
                             "options": {"source": source, "shard_size": shard_size, "inputs": len(items),
                                         "inputs_sha256": items_digest(items),
                                         **({"pad": "square"} if pad_square else {})}})
    todo, done_before = plan_shards(len(items), shard_size, store)
    order = [i for k in todo for i in range(k * shard_size, min((k + 1) * shard_size, len(items)))]
    # On the CPU each map's pixel work runs where it is read and the network where the batch is
    # made (in the workers, in parallel: the main process only writes); on an accelerator the maps
    # go there raw, a batch's codes as one tensor, and are normalised and encoded in batches.
    readers_encode = device.type == "cpu" if workers_prepare is None else workers_prepare
    inputs = functools.partial(DepthInputs, items, dataset=dataset, column=column, pad_square=pad_square)
    collate = functools.partial(_collate, tokenizer=tok if readers_encode else None)
    if workers and order:  # the first input once here: the workers, forked after, inherit what that compiles
        collate([inputs(order[:1])[0]])  # and caches (numba's loops, oneDNN's kernels) instead of each redoing it
    loader = DataLoader(inputs(order), batch_size=batch_size, num_workers=workers, collate_fn=collate,
                        pin_memory=device.type == "cuda", worker_init_fn=_keep_freed_memory if workers else None)
    shard_of = {k: (k * shard_size, min((k + 1) * shard_size, len(items))) for k in todo}
    pending: dict[int, tuple[list[tuple[int, dict[str, Any]]], list[dict[str, Any]]]] = {k: ([], []) for k in todo}
    summary = TokenizeSummary(0, 0, 0, done_before, 0.0)
    bar = tqdm(total=len(order), unit="map", disable=not progress, desc="tokenize depth")
    tables: list[torch.Tensor] = []
    for joined, stacked, batch in loader:
        rows = []
        for indices, values in joined:
            rows += _rows(items, indices, values)
        batch = [m for group in stacked for m in group.to(device, tables)] + batch
        if estimator is not None:
            readable = [(i, x) for i, x in batch if not isinstance(x, str)]
            maps = estimator([x for _, x in readable]) if readable else []
            maps = [square(m) for m in maps] if pad_square else maps
            batch = [(i, x) for i, x in batch if isinstance(x, str)] + [(i, m) for (i, _), m in zip(readable, maps)]
        good = [(i, x) for i, x in batch if not isinstance(x, str)]
        bad = [(i, x) for i, x in batch if isinstance(x, str)]
        more, errors = _encode_rows(tok, items, good, device) if good else ([], [])
        rows += more
        for i, row in rows:
            pending[i // shard_size][0].append((i, row))
        for i, reason in bad + errors:
            pending[i // shard_size][1].append({"id": items[i].id, "source": items[i].source, "reason": reason})
        summary.rows += len(rows)
        summary.skipped += len(bad) + len(errors)
        bar.update(len(batch) + sum(len(indices) for indices, _ in joined))
        for k in [k for k, (r, e) in pending.items() if len(r) + len(e) == shard_of[k][1] - shard_of[k][0]]:
            r, e = pending.pop(k)
            store.write(k, _depth_table([row for _, row in sorted(r, key=lambda t: t[0])]), e)
            summary.shards_written += 1
    bar.close()
    store.gather_errors()
    summary.seconds = time.perf_counter() - start
    return summary
