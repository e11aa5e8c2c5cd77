"""An output folder of token shards that a killed run resumes exactly once.

``OUT/metadata.json`` names the tokenizer (type, version, a hash of its weights) and the run's
options; ``OUT/train-00007.parquet`` holds the rows of inputs ``7·S .. 8·S-1`` (``S`` =
``shard_size``; the ``train-`` prefix makes ``datasets.load_dataset("parquet", data_dir=OUT)``
read the shards and nothing else), and ``OUT/errors/shard-00007.jsonl`` the inputs of that shard
that were skipped, with the reason. Both are written to a temporary name and renamed (errors first), so a shard
exists whole or not at all and a resumed run redoes exactly the shards whose parquet is missing:
every input ends up in exactly one row or one error line. Ranks (``torchrun``, ``accelerate
launch``) take the shards ``k`` with ``k % world == rank``: disjoint, and together all of them.
``plan_shards`` says which of them a run (or a resumed run) still has to write, and
``TokenizeSummary`` what it did.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from perceptok._version import __version__
from perceptok.base import PerceptionTokenizer
from perceptok.checkpoint import atomic_write, tensors_sha256
from perceptok.distributed import rank_and_world

FORMAT = "perceptok-token-shards/1"


def tokenizer_identity(tok: PerceptionTokenizer, name: str) -> dict[str, Any]:
    """What makes tokens comparable: type, library version, config and a hash of the weights."""
    digest = hashlib.sha256(json.dumps(tok.config.to_dict(), sort_keys=True).encode())
    digest.update(tensors_sha256(tok.state_tensors()).encode())
    return {"type": tok.tokenizer_type, "name": name, "perceptok_version": __version__,
            "sha256": digest.hexdigest()}


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


class ShardStore:
    """The shards of one output folder (see the module docstring)."""

    def __init__(self, out: str | Path, metadata: dict[str, Any]):
        self.out = Path(out)
        self.metadata = {"format": FORMAT, **metadata}
        path = self.out / "metadata.json"
        if path.exists():
            try:
                found = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as err:
                raise ValueError(f"{path} is not valid JSON ({err}); remove it or choose another --out") from err
            if found != self.metadata:
                was, now = _flat(found), _flat(self.metadata)
                changed = [f"{k}: {was.get(k)!r} then, {now.get(k)!r} now" for k in sorted(set(was) | set(now))
                           if was.get(k) != now.get(k)]
                raise ValueError(f"{self.out} holds tokens of another run ({'; '.join(changed)}); resume with the "
                                 "same tokenizer and options, or choose another --out")
        else:
            atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(self.metadata, indent=2) + "\n"))

    def shard_path(self, k: int) -> Path:
        return self.out / f"train-{k:05d}.parquet"

    def _empty_mark(self, k: int) -> Path:
        """Marks a finished shard without rows (hidden: ``datasets`` cannot read an empty parquet)."""
        return self.out / f".train-{k:05d}.empty"

    def done(self, k: int) -> bool:
        return self.shard_path(k).exists() or self._empty_mark(k).exists()

    def discard_partial(self, k: int) -> None:
        """Remove the temporary files that a run killed while writing shard ``k`` left (only this
        shard's, so ranks never touch each other's work in progress)."""
        for pattern in (f".train-{k:05d}.*.tmp", f"errors/.shard-{k:05d}.jsonl.*.tmp"):
            for path in self.out.glob(pattern):
                path.unlink(missing_ok=True)

    def write(self, k: int, table: Any, errors: list[dict[str, Any]]) -> None:
        """Shard ``k``: its error lines, then its rows (the rename that marks it done)."""
        import pyarrow.parquet as pq

        lines = "".join(json.dumps(e) + "\n" for e in errors)
        atomic_write(self.out / "errors" / f"shard-{k:05d}.jsonl", lambda tmp: Path(tmp).write_text(lines))
        if table.num_rows:
            atomic_write(self.shard_path(k), lambda tmp: pq.write_table(table, tmp))
        else:
            atomic_write(self._empty_mark(k), lambda tmp: None)

    def gather_errors(self) -> int:
        """``OUT/errors.jsonl`` from every finished shard's errors (the last rank to finish
        writes the complete file); returns the number of lines."""
        lines = [line for k in sorted((self.out / "errors").glob("shard-*.jsonl"))
                 if self.done(int(k.stem[6:])) for line in k.read_text().splitlines()]
        atomic_write(self.out / "errors.jsonl", lambda tmp: Path(tmp).write_text("".join(f"{x}\n" for x in lines)))
        return len(lines)


@dataclasses.dataclass
class TokenizeSummary:
    """What a run did (this rank's share): inputs tokenized and skipped, shards written and
    found done from an earlier run, seconds, and inputs per second."""

    rows: int
    skipped: int
    shards_written: int
    shards_done_before: int
    seconds: float

    @property
    def per_second(self) -> float:
        return (self.rows + self.skipped) / max(self.seconds, 1e-9)

    def line(self, unit: str) -> str:
        return (f"{self.rows} {unit} tokenized, {self.skipped} skipped (see errors.jsonl), "
                f"{self.shards_written} shards written ({self.shards_done_before} already done), "
                f"{self.seconds:.1f} s, {self.per_second:.1f} {unit}/s")


def require_pyarrow() -> Any:
    """pyarrow, or an error that says which extra installs it."""
    try:
        import pyarrow
    except ImportError as err:
        raise ImportError("writing Parquet shards needs pyarrow: pip install 'perceptok[tokenize]'") from err
    return pyarrow


def plan_shards(n: int, shard_size: int, store: ShardStore) -> tuple[list[int], int]:
    """This rank's shards that are not done yet, and how many of its shards were done before."""
    if shard_size < 1:
        raise ValueError(f"shard_size must be a positive number of inputs, got {shard_size}")
    rank, world = rank_and_world()
    mine = [k for k in range((n + shard_size - 1) // shard_size) if k % world == rank]
    todo = [k for k in mine if not store.done(k)]
    for k in todo:
        store.discard_partial(k)
    return todo, len(mine) - len(todo)
