"""Benchmark predictions from a trained model: ``perceptok-llava predict`` makes the
``predictions.jsonl`` that ``perceptok-llava eval`` scores.

A benchmark file is JSON lines with ``id``, ``image`` (a path, relative to the file or to
``images_dir``), ``prompt`` and ``answer`` (the format of ``shared/data/benchmarks/samples.jsonl``).
Answers are generated in batches with the constrained decoding of ``generate_with_perception``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from PIL import Image
from tqdm.auto import tqdm

from perceptok.io.jsonl import read_jsonl
from perceptok_llava.generate import generate_with_perception
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


def predict(model: Any, processor: Any, vocab: PerceptionVocab, records: Sequence[dict[str, Any]],
            batch_size: int = 8, progress: bool = True, start_with: str | None = None,
            **generate_kwargs: Any) -> list[dict[str, Any]]:
    """``records`` with ``prediction`` (the generated text, perception spans included) added."""
    out = []
    bar = tqdm(total=len(records), unit="answer", disable=not progress, desc="predict")
    for batch in _batches(records, batch_size):
        images = []
        for r in batch:
            with Image.open(r["image_path"]) as im:
                images.append(im.convert("RGB"))
        prompts = [r["prompt"] if "<image>" in r["prompt"] else f"<image>\n{r['prompt']}" for r in batch]
        answers = generate_with_perception(model, processor, vocab, images, prompts, start_with=start_with,
                                           **generate_kwargs)
        for r, answer in zip(batch, answers):
            keep = {k: v for k, v in r.items() if k != "image_path"}
            out.append({**keep, "prediction": answer.text})
        bar.update(len(batch))
    bar.close()
    return out
