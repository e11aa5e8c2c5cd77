"""Benchmark predictions from a trained model: ``perceptok-llava predict`` makes the
``predictions.jsonl`` that ``perceptok-llava eval`` scores.

A benchmark file is JSON lines with ``id``, ``image`` (a path, relative to the file or to
``images_dir``), ``prompt`` and ``answer`` (the format of ``shared/data/benchmarks/samples.jsonl``).
Answers are generated in batches with the constrained decoding of ``generate_with_perception``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from perceptok.io.jsonl import read_jsonl
from perceptok_llava.generate import generate_with_perception, prompt_tokens
from perceptok_llava.vocab import PerceptionVocab


def read_benchmark(path: str | Path, images_dir: str | Path | None = None, benchmark: str | None = None,
                   limit: int | None = None) -> list[dict[str, Any]]:
    """The records of a benchmark file (only those whose ``benchmark`` starts with ``benchmark``),
    each with its image path resolved; a record without a readable image is an error that names it."""
    path = Path(path)
    records = []
    for number, record in read_jsonl(path, "benchmark file"):
        if benchmark and not str(record.get("benchmark", "")).startswith(benchmark):
            continue
        missing = [k for k in ("id", "image", "prompt") if k not in record]
        if missing:
            raise ValueError(f"{path}:{number} lacks {missing}; a benchmark record has id, image, prompt and answer")
        if not isinstance(record["image"], str) or not record["image"]:
            raise ValueError(f"{path}:{number}: record {record['id']!r} has no image path (image is "
                             f"{json.dumps(record['image'])}); predict answers about an image, so keep only records with one "
                             "(--benchmark selects them by name)")
        image = Path(images_dir or path.parent) / record["image"]
        if not image.is_file():
            raise FileNotFoundError(f"{path}:{number}: image {image} not found; pass --images DIR where the images are")
        records.append({**record, "image_path": str(image)})
        if limit is not None and len(records) >= limit:
            break
    if not records:
        raise ValueError(f"{path} holds no records" + (f" of benchmark {benchmark!r}" if benchmark else ""))
    return records


def _batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _prompt(record: dict[str, Any]) -> str:
    return record["prompt"] if "<image>" in record["prompt"] else f"<image>\n{record['prompt']}"


def predict(model: Any, processor: Any, vocab: PerceptionVocab, records: Sequence[dict[str, Any]],
            batch_size: int = 8, progress: bool = True, start_with: str | None = None, static_cache: bool = False,
            **generate_kwargs: Any) -> list[dict[str, Any]]:
    """``records`` with ``prediction`` (the generated text, perception spans included) added.

    With ``static_cache`` every batch has one shape, so that the compiled decoding step is built
    once: prompts padded to the longest of all the records, and the last batch filled up with
    copies of its last record (their answers dropped)."""
    pad_to = max(prompt_tokens(processor, records[0]["image_path"], [_prompt(r) for r in records], start_with)) \
        if static_cache else None
    out = []
    bar = tqdm(total=len(records), unit="answer", disable=not progress, desc="predict")
    for batch in _batches(records, batch_size):
        filled = list(batch) + [batch[-1]] * (batch_size - len(batch) if static_cache else 0)
        answers = generate_with_perception(model, processor, vocab, [r["image_path"] for r in filled],
                                           [_prompt(r) for r in filled], start_with=start_with,
                                           static_cache=static_cache, pad_to=pad_to, **generate_kwargs)
        for r, answer in zip(batch, answers):
            keep = {k: v for k, v in r.items() if k != "image_path"}
            out.append({**keep, "prediction": answer.text})
        bar.update(len(batch))
    bar.close()
    return out
