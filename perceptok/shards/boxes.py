"""COCO detection files to token shards: ``tokenize_boxes``, one row per image (its boxes' ids,
text and labels), in the resumable Parquet shards of ``ShardStore``. An image with a bad box is
skipped, with its reason, into ``OUT/errors.jsonl``; the rest of its shard is kept."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from perceptok.coordinates import CoordinateTokenizer
from perceptok.shards.sources import items_digest
from perceptok.shards.store import ShardStore, TokenizeSummary, plan_shards, require_pyarrow, tokenizer_identity


def _box_table(rows: list[dict[str, Any]]) -> Any:
    pa = require_pyarrow()
    schema = pa.schema([("id", pa.string()), ("file_name", pa.string()), ("ids", pa.list_(pa.list_(pa.int32()))),
                        ("text", pa.string()), ("labels", pa.list_(pa.string())), ("count", pa.int32()),
                        ("height", pa.int32()), ("width", pa.int32())])
    return pa.Table.from_pylist(rows, schema=schema)


@dataclasses.dataclass(frozen=True)
class _Image:
    id: str
    source: str


def _box_rows(tokenizer: CoordinateTokenizer, images: list[dict[str, Any]], anns: dict[Any, list[dict[str, Any]]],
              names: dict[Any, str]) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """The rows of COCO ``images`` (their boxes in ``anns``, category names in ``names``), encoded
    and written as text in one batch; where the batch fails, image by image, so that only a bad
    image is skipped (with its reason)."""
    try:
        boxes = [[a["bbox"] for a in anns.get(im["id"], [])] for im in images]
        labels = [[names.get(a["category_id"], str(a["category_id"])) for a in anns.get(im["id"], [])] for im in images]
        canvas = [(im["height"], im["width"]) for im in images]
        if len(images) == 1:  # alone, so that an error names the image's own box, not "image 0" of a batch
            enc = tokenizer.encode(boxes[0], canvas_size=canvas[0], labels=labels[0], format="xywh", return_tensors="np")
            ids, counts, texts = enc.ids[None], [len(enc.ids)], [tokenizer.to_text(enc)]
        else:
            enc = tokenizer.encode(boxes, canvas_size=canvas, labels=labels, format="xywh", return_tensors="np")
            ids, counts, texts = enc.ids, enc.counts, tokenizer.to_text(enc)
    except (ValueError, TypeError, KeyError) as err:
        if len(images) > 1:
            done = [_box_rows(tokenizer, [im], anns, names) for im in images]
            return [r for rows, _ in done for r in rows], [e for _, errors in done for e in errors]
        im = images[0]
        return [], [{"id": str(im.get("id")), "source": im.get("file_name", ""), "reason": f"{type(err).__name__}: {err}"}]
    return [{"id": str(im["id"]), "file_name": im.get("file_name", ""), "ids": ids[j, :n].tolist(), "text": texts[j],
             "labels": labels[j], "count": int(n), "height": im["height"], "width": im["width"]}
            for j, (im, n) in enumerate(zip(images, counts))], []


def tokenize_boxes(coco: str | Path, out: str | Path, tokenizer: CoordinateTokenizer, tokenizer_name: str,
                   shard_size: int = 1000, progress: bool = True) -> TokenizeSummary:
    """Tokenize the boxes of every image of a COCO detection file into Parquet shards: per image
    ``id``, ``file_name``, ``ids`` (one row of coordinate ids per box), ``text``, ``labels``,
    ``count``, ``height``, ``width``. An image with a bad box is skipped into errors.jsonl."""
    require_pyarrow()
    start = time.perf_counter()
    data = json.loads(Path(coco).read_text(encoding="utf-8"))
    for key in ("images", "annotations", "categories"):
        if key not in data:
            raise ValueError(f"{coco} is not a COCO detection file: it has no {key!r} list")
    names = {c["id"]: c["name"] for c in data["categories"]}
    anns: dict[Any, list[dict[str, Any]]] = {}
    for a in data["annotations"]:
        anns.setdefault(a["image_id"], []).append(a)
    images = data["images"]
    items = [_Image(str(im["id"]), im.get("file_name", "")) for im in images]
    store = ShardStore(out, {"modality": "boxes", "tokenizer": tokenizer_identity(tokenizer, tokenizer_name),
                             "options": {"source": str(Path(coco).resolve()), "shard_size": shard_size,
                                         "inputs": len(items), "inputs_sha256": items_digest(items)}})
    todo, done_before = plan_shards(len(items), shard_size, store)
    summary = TokenizeSummary(0, 0, 0, done_before, 0.0)
    bar = tqdm(total=sum(min(shard_size, len(items) - k * shard_size) for k in todo), unit="image",
               disable=not progress, desc="tokenize boxes")
    for k in todo:
        rows, errors = _box_rows(tokenizer, images[k * shard_size : (k + 1) * shard_size], anns, names)
        store.write(k, _box_table(rows), errors)
        summary.rows += len(rows)
        summary.skipped += len(errors)
        summary.shards_written += 1
        bar.update(len(rows) + len(errors))
    bar.close()
    store.gather_errors()
    summary.seconds = time.perf_counter() - start
    return summary
