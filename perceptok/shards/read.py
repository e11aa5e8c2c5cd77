"""Reading token shards back: the rows (through ``datasets``) and a row's depth map."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from perceptok.depth.normalize import DepthStats
from perceptok.depth.grid import GridDepthTokenizer


def metadata(out: str | Path) -> dict[str, Any]:
    """The run's ``metadata.json``: which tokenizer (and weights) made the tokens."""
    path = Path(out) / "metadata.json"
    if not path.exists():
        raise FileNotFoundError(f"{out} is not a folder of token shards (no metadata.json); make one with perceptok tokenize")
    return json.loads(path.read_text(encoding="utf-8"))


def load_rows(out: str | Path) -> Any:
    """Every row of a shard folder as a ``datasets.Dataset``, in input order."""
    import datasets

    metadata(out)
    files = sorted(str(p) for p in Path(out).glob("train-*.parquet"))
    if not files:
        raise ValueError(f"{out} holds no finished shards yet")
    return datasets.load_dataset("parquet", data_files=files, split="train")


def decode_row(tok: GridDepthTokenizer, row: dict[str, Any], units: bool = True) -> torch.Tensor:
    """The ``(height, width)`` depth map of a depth row, in the input's units (``units=False``:
    relative inverse depth in [0, 1])."""
    return decode_rows(tok, [row], units)[0]


def decode_rows(tok: GridDepthTokenizer, rows: Sequence[dict[str, Any]], units: bool = True) -> list[torch.Tensor]:
    """``decode_row`` of many rows at once: rows of one kind (with ``units``) or one size (without)
    are decoded in one call, in which maps of one grid and size share the decoder's batches."""
    maps: list[torch.Tensor] = [torch.empty(0)] * len(rows)
    groups: dict[Any, list[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault(row["kind"] if units else (row["height"], row["width"]), []).append(i)
    for key, index in groups.items():
        ids = torch.tensor([rows[i]["ids"] for i in index], dtype=torch.long, device="cpu")  # (b, N)
        grids = [tuple(rows[i]["grid"]) for i in index]
        if units:
            stats = DepthStats(torch.tensor([rows[i]["low"] for i in index], dtype=torch.float64, device="cpu"),
                               torch.tensor([rows[i]["high"] for i in index], dtype=torch.float64, device="cpu"),
                               key, [(rows[i]["height"], rows[i]["width"]) for i in index], grids)
            out = tok.decode(ids, stats=stats)
        else:
            out = tok.decode(ids, size=key, grids=grids)
        for i, m in zip(index, out):
            maps[i] = m
    return maps
