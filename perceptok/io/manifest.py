"""Manifests of depth maps: JSON lines with ``id``, ``rgb``, ``depth``, ``encoding``, ``scale``,
``kind``, ``invalid``, ``source`` and ``license`` (the format of ``shared/data/depth``)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from perceptok.io.depth_files import DepthMap, read_depth

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
    if not path.is_file():
        raise FileNotFoundError(f"manifest {path} does not exist")
    entries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record: dict[str, Any] = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{number} is not a JSON object: {err}") from err
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
