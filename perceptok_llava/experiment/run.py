"""``run_relative_depth``: train every arm for every seed, answer the test questions with
constrained generation, score them, and write ``results.json`` and ``accuracy.png``.

Per arm and seed: a LLaVA of the chosen size from the seed's initialisation, the perception
vocabularies (depth and points, the same for every arm, so the architecture is identical),
``train_llava`` with every weight trained (``finetune="full"``) for the same number of steps on
the arm's tasks, then greedy constrained generation (``generate_with_perception``) on the test
questions, scored by ``perceptok_llava.eval.score``. Chain-of-thought answers are also read off
the depth map they generated (the analogue of AURORA's Table 3).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from perceptok import BoxTokenizer, PointTokenizer, load
from perceptok.checkpoint import write_text
from perceptok_llava.eval import score
from perceptok_llava.experiment.build import (corpus, language_tokenizer, llava_model, llava_processor,
                                              nearest_by_depth, question_sets)
from perceptok_llava.experiment.config import ARMS, DEFAULT_ARMS, SIZES, Arm, ExperimentSize
from perceptok_llava.experiment.report import overall, plot, summarise
from perceptok_llava.generate import generate_with_perception
from perceptok_llava.train import LlavaTrainConfig, train_llava


def _benchmark(k: int) -> str:
    return "blink-depth" if k == 2 else "hardblink"


def evaluate(model: Any, processor: Any, vocab: Any, records: Sequence[dict], task: str, max_new_tokens: int,
             batch_size: int = 32) -> dict[str, Any]:
    """Accuracy per point count of ``model``'s answers to the ``task`` records, and of the answers
    read off the depth maps it generated (chain of thought only)."""
    asked = [r for r in records if r["task"] == task]
    by_k: dict[int, dict[str, list]] = {}
    for start in range(0, len(asked), batch_size):
        batch = asked[start : start + batch_size]
        outs = generate_with_perception(model, processor, vocab, [r["image"] for r in batch],
                                        [r["prompt"] for r in batch], max_new_tokens=max_new_tokens, do_sample=False)
        for r, out in zip(batch, outs):
            k = len(r["letters"])
            slot = by_k.setdefault(k, {"scored": [], "read": []})
            slot["scored"].append({"id": r["id"], "answer": r["answer"], "prompt": r["prompt"], "prediction": out.text})
            if out.depth:
                read = nearest_by_depth(out.depth[0], r["points"], r["letters"])
                slot["read"].append(f"({read})" == r["answer"])
            else:
                slot["read"].append(False)
    result = {}
    for k, slot in sorted(by_k.items()):
        s = score(_benchmark(k), slot["scored"])
        entry = {"accuracy": s["accuracy"], "n": s["n"], "unparseable": len(s["unparseable"]),
                 "examples": [x["prediction"] for x in slot["scored"][:2]]}
        if task == "relative_depth_cot":
            entry["depth_read_accuracy"] = sum(slot["read"]) / len(slot["read"])
        result[str(k)] = entry
    return result


def oracle(tokenizer: Any, records: Sequence[dict], depth_of: dict[str, Any]) -> dict[str, float]:
    """Accuracy per point count of answers read off the tokenizer's own tokens of the true maps
    (encode → decode): the ceiling of reading answers off depth tokens. ``depth_of``: sample id →
    its ``DepthMap`` in the frame of the records' images."""
    hits: dict[int, list[bool]] = {}
    decoded_of: dict[str, torch.Tensor] = {}  # a real map is asked with every point count: decode it once
    for r in records:
        if r["task"] != "relative_depth_direct":
            continue
        sample = r["id"].rsplit("/", 1)[0]
        if sample not in decoded_of:
            depth = depth_of[sample]
            decoded_of[sample] = tokenizer.decode(tokenizer.encode(depth), size=tuple(depth.values.shape))
        decoded = decoded_of[sample]
        hits.setdefault(len(r["letters"]), []).append(f"({nearest_by_depth(decoded, r['points'], r['letters'])})"
                                                       == r["answer"])
    return _accuracies(hits)


def _accuracies(hits: dict[int, list[bool]]) -> dict[str, float]:
    """Per point count and over all questions ("all")."""
    every = [h for v in hits.values() for h in v]
    return {str(k): sum(v) / len(v) for k, v in sorted(hits.items())} | {"all": sum(every) / max(len(every), 1)}


def lowest_point(records: Sequence[dict]) -> dict[str, float]:
    """Accuracy per point count of a rule with no model: the point lowest in the image is the
    nearest (floors recede upwards in most scenes). What a model can score without depth."""
    hits: dict[int, list[bool]] = {}
    for r in records:
        if r["task"] == "relative_depth_direct":
            lowest = r["letters"][max(range(len(r["points"])), key=lambda i: r["points"][i][1])]
            hits.setdefault(len(r["letters"]), []).append(f"({lowest})" == r["answer"])
    return _accuracies(hits)


def _max_new_tokens(processor: Any, records: Sequence[dict]) -> int:
    """Room for the longest training target of the task asked (perception tokens count one each;
    targets grow with the number of points) and a margin."""
    targets = sorted({r["target"] for r in records}, key=len)[-32:]  # the longest by characters, tokenised
    return max(len(processor.tokenizer(" " + t)["input_ids"]) for t in targets) + 8


def train_arm(arm: Arm, size: ExperimentSize, seed: int, lm_tok: Any, tokenizers: dict, train: list[dict],
              out: Path, steps: int, progress: bool) -> dict[str, Any]:
    """One arm, one seed: build, train, return the trained model, processor, vocabulary and log."""
    lm_tok = copy.deepcopy(lm_tok)  # training adds the perception tokens to it: every arm starts alike
    model = llava_model(size, lm_tok, seed)
    processor = llava_processor(size, lm_tok)
    records = [r for r in train if r["task"] in arm.tasks]
    batch = size.batch_size
    per_stage = max(batch, round(steps * batch / size.stages))
    # batches as drawn, as when BENCHMARKS.md's figures were made (with one process and no
    # accumulation, grouping by step would only reorder the rows of each batch)
    cfg = LlavaTrainConfig(out=str(out), finetune="full", lr=size.lr, projector_lr=size.lr, batch_size=batch,
                           stages=size.stages, samples_per_stage=per_stage, schedule=arm.schedule, seed=seed,
                           gradient_checkpointing=False, group_by_length="off")
    started = time.time()
    result = train_llava(model, processor, {"depth": tokenizers[arm.depth], "points": tokenizers["points"]}, records,
                         cfg, progress=progress)
    return {"model": result["model"].eval(), "processor": processor, "vocab": result["vocab"],
            "losses": result["losses"], "seconds": time.time() - started}


def run_relative_depth(out: str | Path, size: str | ExperimentSize = "small", seeds: int = 3,
                       steps: int | None = None, arms: Sequence[str] = DEFAULT_ARMS,
                       test_manifest: str | Path | None = None, progress: bool = True) -> dict[str, Any]:
    """The whole experiment; returns what it writes to ``out/results.json``."""
    size = SIZES[size] if isinstance(size, str) else size
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        raise ValueError(f"unknown arms {unknown}; choose from {sorted(ARMS)}")
    if seeds < 1 or (steps is not None and steps < 1):
        raise ValueError(f"seeds and steps must be positive, got seeds={seeds}, steps={steps}")
    steps = steps or size.steps
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    chosen = [ARMS[a] for a in arms]
    tokenizers = {name: load(name) for name in sorted({a.depth for a in chosen} | {"depth"})}
    tokenizers["points"] = PointTokenizer.from_preset("aurora")
    boxes = BoxTokenizer.from_preset("aurora")  # build_records wants one; no box tasks are asked
    sets = {name: question_sets(size, {"depth": tokenizers[name], "boxes": boxes, "points": tokenizers["points"]},
                                test_manifest) for name in sorted({a.depth for a in chosen})}
    any_set = next(iter(sets.values()))
    lm_tok = language_tokenizer(corpus(r for s in sets.values() for r in s.train))
    runs: list[dict[str, Any]] = []
    bar = tqdm(total=seeds * len(chosen), unit="run", desc="relative-depth experiment", disable=not progress)
    for seed in range(seeds):
        for arm in chosen:
            qs = sets[arm.depth]
            with tempfile.TemporaryDirectory(dir=out) as scratch:  # the trained weights are not kept
                trained = train_arm(arm, size, seed, lm_tok, tokenizers, qs.train, Path(scratch), steps, progress)
            task = arm.question_task
            room = _max_new_tokens(trained["processor"], [r for r in qs.train if r["task"] == task])
            tests = {name: evaluate(trained["model"], trained["processor"], trained["vocab"], records, task, room)
                     for name, records in qs.tests.items()}
            for tok in tokenizers.values():  # training moved them to its device; the next arm starts alike
                if hasattr(tok, "to"):
                    tok.to("cpu")
            losses = trained["losses"]
            runs.append({"arm": arm.name, "seed": seed, "tests": tests, "train_seconds": round(trained["seconds"], 1),
                         "first_loss": statistics.fmean(losses[: max(1, len(losses) // 10)]),
                         "last_loss": statistics.fmean(losses[-max(1, len(losses) // 10) :]), "losses": losses})
            bar.update(1)
            bar.set_postfix(arm=arm.name, seed=seed, acc=f"{overall(tests['synthetic'], 'accuracy'):.2f}")
    bar.close()
    oracles = {name: {test: oracle(tokenizers[name], records, qs.depth) for test, records in qs.tests.items()}
               for name, qs in sets.items()}
    results = {
        "experiment": "relative-depth",
        "size": dataclasses.asdict(size) | {"steps": steps},
        "seeds": seeds,
        "arms": {a.name: dataclasses.asdict(a) for a in chosen},
        "test_sets": {name: {str(k): n for k, n in _counts(records).items()} for name, records in any_set.tests.items()},
        "runs": runs,
        "oracle": oracles,
        "lowest_point": {test: lowest_point(records) for test, records in any_set.tests.items()},
        "seconds": round(time.time() - started, 1),
        "machine": _machine(),
    }
    results["summary"] = summarise(results)
    write_text(out / "results.json", json.dumps(results, indent=1))
    plot(results, out / "accuracy.png")
    return results


def _counts(records: Sequence[dict]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for r in records:
        if r["task"] == "relative_depth_direct":
            counts[len(r["letters"])] = counts.get(len(r["letters"]), 0) + 1
    return dict(sorted(counts.items()))


def _machine() -> str:
    import os
    import platform

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU, {os.cpu_count()} cores"
    return f"{device}; torch {torch.__version__}; {platform.platform()}"
