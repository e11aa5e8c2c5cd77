"""Reading token shards back: the rows (through ``datasets``) and a row's depth map."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from perceptok.depth.normalize import DepthStats
from perceptok.depth.tokenizer import GridDepthTokenizer


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
    ids = torch.tensor(row["ids"], dtype=torch.long)
    grid = tuple(row["grid"])
    if not units:
        return tok.decode(ids, size=(row["height"], row["width"]), grids=grid)
    stats = DepthStats(torch.tensor([row["low"]], dtype=torch.float64), torch.tensor([row["high"]], dtype=torch.float64),
                       row["kind"], [(row["height"], row["width"])], [grid])
    return tok.decode(ids[None], stats=stats)[0]
