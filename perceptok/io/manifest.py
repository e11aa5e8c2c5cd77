"""Manifests of depth maps: JSON lines with ``id``, ``rgb``, ``depth``, ``encoding``, ``scale``,
``kind``, ``invalid``, ``source`` and ``license`` (the format of ``shared/data/depth``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from perceptok.io.depth_files import DepthMap, read_depth
from perceptok.io.jsonl import read_jsonl

REQUIRED = ("id", "depth", "encoding", "kind")


@dataclasses.dataclass(frozen=True)
class ManifestEntry:
    id: str
    depth: Path  # resolved against the manifest's folder
    encoding: str
    kind: str
    scale: float | None = None
    invalid: tuple[float, ...] = ()
    rgb: Path | None = None
    source: str = ""
    license: str = ""

    def load(self) -> DepthMap:
        return read_depth(self.depth, encoding=self.encoding, scale=self.scale, kind=self.kind, invalid=self.invalid)


def read_manifest(path: str | Path) -> list[ManifestEntry]:
    """Entries of a JSON-lines manifest; paths are relative to the manifest's folder."""
    path = Path(path)
    entries = []
    for number, record in read_jsonl(path, "manifest"):
        missing = [k for k in REQUIRED if k not in record]
        if missing:
            raise ValueError(f"{path}:{number} lacks {missing}; each line needs {list(REQUIRED)}")
        entries.append(ManifestEntry(
            id=str(record["id"]),
            depth=path.parent / record["depth"],
            encoding=record["encoding"],
            kind=record["kind"],
            scale=record.get("scale"),
            invalid=tuple(record.get("invalid") or ()),
            rgb=path.parent / record["rgb"] if record.get("rgb") else None,
            source=record.get("source", ""),
            license=record.get("license", ""),
        ))
    if not entries:
        raise ValueError(f"manifest {path} has no entries")
    return entries
