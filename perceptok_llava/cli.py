"""``perceptok-llava``: the LLaVA plugin's command line."""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from perceptok_llava.eval import BENCHMARK_LETTERS, score


# --gradient-checkpointing → LlavaTrainConfig.gradient_checkpointing
CHECKPOINTING = {"auto": "auto", "on": True, "off": False}


def _eval(args: argparse.Namespace) -> None:
    from perceptok.io.jsonl import read_jsonl

    records = [record for _, record in read_jsonl(args.predictions, "predictions file")]
    result = score(args.benchmark, records)
    print(json.dumps(result) if args.json else
          f"{args.benchmark}: accuracy {result['accuracy']:.3f} ({result['correct']}/{result['n']}), "
          f"{len(result['unparseable'])} unparseable")


def _predict(args: argparse.Namespace) -> None:
    import torch

    from perceptok.checkpoint import write_text
    from perceptok_llava.predict import predict, read_benchmark
    from perceptok_llava.train import load_trained

    records = read_benchmark(args.benchmark_file, args.images, args.benchmark, args.limit)
    hub_reachable_or_cached(args.base)
    dtype = torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else None
    model, processor, vocab = load_trained(args.model, args.base, dtype=dtype, merge=True)
    if torch.cuda.is_available():
        model = model.cuda()
    out = predict(model, processor, vocab, records, batch_size=args.batch_size, progress=not args.quiet,
                  start_with=args.start_with, static_cache=args.static_cache, max_new_tokens=args.max_new_tokens,
                  do_sample=False)
    write_text(Path(args.out), "".join(json.dumps(r) + "\n" for r in out))
    print(f"{len(out)} predictions written to {args.out}; score them with "
          f"perceptok-llava eval --benchmark BENCHMARK --predictions {args.out}", file=sys.stderr)


def parse_tokenizers(spec: str) -> dict:
    """"depth,boxes" or "depth=depth:pooled,boxes=boxes:paligemma" → name → perceptok tokenizer."""
    from perceptok import load

    out = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, source = part.partition("=")
        out[name] = load(source or name)
    if not out:
        raise ValueError("--tokenizers needs at least one name, e.g. depth,boxes,points")
    return out


def load_samples(specs: list[str], seed: int) -> Iterator:
    """synthetic:N, a depth manifest (.jsonl), COCO instances (.json), a folder of depth token
    shards (``perceptok tokenize depth --out DIR``) or a folder of RGB images → samples, read one
    at a time as they are consumed (their images stay on disk until a batch needs them); a spec
    that is none of these is an error at once."""
    from perceptok_llava.sources import (
        coco_samples, image_folder_samples, manifest_samples, shard_samples, synthetic_samples,
    )

    sources = []
    for spec in specs:
        if spec.endswith((".jsonl", ".json")) and not Path(spec).is_file():
            raise FileNotFoundError(f"--data {spec}: no such file")
        if spec.startswith("synthetic:"):
            sources.append(synthetic_samples(int(spec.split(":", 1)[1]), seed=seed))
        elif spec.endswith(".jsonl"):
            sources.append(manifest_samples(spec))
        elif spec.endswith(".json"):
            sources.append(coco_samples(spec))
        elif (Path(spec) / "metadata.json").is_file():
            sources.append(shard_samples(spec))
        elif Path(spec).is_dir():
            sources.append(image_folder_samples(spec))
        else:
            raise ValueError(f"--data {spec!r}: expected synthetic:N, a manifest .jsonl, COCO instances .json, a "
                             "folder of depth token shards (perceptok tokenize depth --out DIR) or a folder of images")
    return itertools.chain.from_iterable(sources)


def hub_reachable_or_cached(*models: str | None, timeout: float = 3.0) -> None:
    """Fail fast, before transformers retries for a minute, when the Hub is out of reach: a model
    that is a local folder or already cached is used offline (HF_HUB_OFFLINE=1, with a note),
    any other is an error that says what to do."""
    wanted = [m for m in models if m and not Path(m).exists()]
    if not wanted or os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return
    import socket

    try:
        socket.create_connection(("huggingface.co", 443), timeout=timeout).close()
        return
    except OSError:
        pass
    from huggingface_hub import try_to_load_from_cache

    missing = [m for m in wanted if not isinstance(try_to_load_from_cache(m, "config.json"), str)]
    if missing:
        raise ValueError(f"the Hugging Face Hub is out of reach and {', '.join(missing)} is not in the cache: "
                         "pass a local folder (--model/--base DIR), or download it where there is a network")
    os.environ["HF_HUB_OFFLINE"] = "1"
    print(f"perceptok-llava: the Hub is out of reach; using the cached {', '.join(wanted)} (HF_HUB_OFFLINE=1)",
          file=sys.stderr)


def _train(args: argparse.Namespace) -> None:
    from perceptok_llava.resume import refuse_to_replace

    refuse_to_replace(args.out, args.overwrite)  # before the records are built, which may take long
    samples = load_samples(args.data, args.seed)
    hub_reachable_or_cached(args.model, args.depth_model)
    import torch
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    from perceptok import load
    from perceptok_llava.data import build_records
    from perceptok_llava.train import LlavaTrainConfig, train_llava

    tokenizers = parse_tokenizers(args.tokenizers)
    estimator = None
    if args.depth_model:
        from perceptok.depth.estimate import MonocularDepth

        estimator = MonocularDepth(args.depth_model, cache_dir=Path(args.out) / "depth_cache")
    builders = {k: tokenizers.get(k) or load(k) for k in ("depth", "boxes", "points")}
    # the records first: bad data is said before the model is loaded, and the estimator is gone by then
    records = build_records(samples, builders["depth"], builders["boxes"], builders["points"],
                            seed=args.seed, estimator=estimator, progress=int(os.environ.get("RANK", "0")) == 0)
    del estimator
    if not records:
        raise ValueError(f"--data {' '.join(args.data)} gave no training records: they hold neither depth maps nor "
                         "boxes (images alone need --depth-model ID to estimate their depth)")
    dtype = torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else None
    model = LlavaForConditionalGeneration.from_pretrained(args.model, dtype=dtype)
    processor = AutoProcessor.from_pretrained(args.model)
    cfg = LlavaTrainConfig(out=args.out, lora_r=args.lora_r, lora_alpha=2 * args.lora_r, lora_dropout=args.lora_dropout,
                           lr=args.lr, batch_size=args.batch_size, grad_accum=args.grad_accum, stages=args.stages,
                           samples_per_stage=args.samples_per_stage, schedule=args.schedule,
                           recon_weight=args.recon_weight, gradient_checkpointing=CHECKPOINTING[args.gradient_checkpointing],
                           group_by_length=args.group_by_length, pack=args.pack, workers=args.workers,
                           seed=args.seed, minutes=args.minutes, save_every=args.save_every, resume=not args.no_resume,
                           val_fraction=args.val_fraction, eval_every=args.eval_every, overwrite=args.overwrite)
    result = train_llava(model, processor, tokenizers, records, cfg)
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps({"out": result["out"], "steps": len(result["losses"]), "first_loss": result["losses"][0],
                          "last_loss": result["losses"][-1], "padding": round(result["padding"], 4),
                          "resumed_from": result["resumed_from"], "complete": result["complete"],
                          **({"held_out_loss": result["held_out_loss"]} if "held_out_loss" in result else {})}))


def _experiment(args: argparse.Namespace) -> None:
    from perceptok_llava.experiment import markdown, run_relative_depth

    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    results = run_relative_depth(args.out, size=args.size, seeds=args.seeds, steps=args.steps, arms=arms,
                                 test_manifest=args.test_manifest, progress=not args.quiet)
    print(markdown(results))
    print(f"{Path(args.out) / 'results.json'} and {Path(args.out) / 'accuracy.png'} written "
          f"in {results['seconds'] / 60:.1f} minutes", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="perceptok-llava", description="Perception tokens in LLaVA.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("eval", help="score predictions on a benchmark")
    p.add_argument("--benchmark", required=True, choices=sorted(BENCHMARK_LETTERS))
    p.add_argument("--predictions", required=True, help="JSONL with id, answer, prediction (and prompt)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=_eval)
    q = sub.add_parser("predict", help="answers of a trained model to a benchmark file → predictions.jsonl for eval")
    q.add_argument("--model", required=True, help="the --out folder of perceptok-llava train")
    q.add_argument("--base", default="llava-hf/llava-1.5-7b-hf",
                   help="the base checkpoint it was trained from (default: llava-hf/llava-1.5-7b-hf)")
    q.add_argument("--benchmark-file", required=True,
                   help="JSON lines with id, image, prompt, answer (as shared/data/benchmarks/samples.jsonl)")
    q.add_argument("--benchmark", help="only records whose benchmark starts with this, e.g. BLINK/Relative_Depth")
    q.add_argument("--images", help="folder the records' image paths are relative to (default: the file's folder)")
    q.add_argument("--out", default="predictions.jsonl", help="where to write (default: predictions.jsonl)")
    q.add_argument("--batch-size", type=int, default=8, help="answers generated together (default: 8)")
    q.add_argument("--max-new-tokens", type=int, default=160,
                   help="room for a depth span (102 tokens) and the answer (default: 160)")
    q.add_argument("--start-with", help='force answers to begin with this text, e.g. "<DEPTH_START>"')
    q.add_argument("--static-cache", action="store_true",
                   help="decode with a static KV cache, compiled once with CUDA graphs on a GPU (every batch padded "
                        "to one shape): several times faster per token, after a first batch that pays the compilation")
    q.add_argument("--limit", type=int, help="only the first N records")
    q.add_argument("--quiet", action="store_true", help="no progress bar")
    q.set_defaults(run=_predict)
    t = sub.add_parser("train", help="curriculum LoRA training of LLaVA with perception tokens")
    t.add_argument("--model", default="llava-hf/llava-1.5-7b-hf", help="Hub id or folder of a LLaVA checkpoint")
    t.add_argument("--tokenizers", default="depth,boxes,points",
                   help="comma-separated names, or name=preset_or_path (e.g. boxes=boxes:paligemma)")
    t.add_argument("--data", action="append", required=True,
                   help="synthetic:N, a depth manifest .jsonl, COCO instances .json, a perceptok tokenize depth "
                        "output folder, or a folder of RGB images (with --depth-model); repeat to mix")
    t.add_argument("--out", required=True, help="folder for the adapter, the vocabulary, the processor, the "
                   "per-step log.jsonl and losses.png (and the checkpoint while training)")
    t.add_argument("--depth-model", help="monocular depth model for images without depth, e.g. "
                   "depth-anything/Depth-Anything-V2-Small-hf (default: none; such images get box tasks only)")
    t.add_argument("--lora-r", type=int, default=64, help="LoRA rank; alpha is twice it (default: 64; AURORA used 128)")
    t.add_argument("--lora-dropout", type=float, default=0.05,
                   help="LoRA dropout (default: 0.05, AURORA's); 0 keeps no copy of each adapted layer's input: "
                        "a third less activation memory, room for larger batches without checkpointing")
    t.add_argument("--lr", type=float, default=2e-4, help="peak learning rate, cosine with 3%% warm-up (default: 2e-4)")
    t.add_argument("--batch-size", type=int, default=4, help="records per step and process (default: 4)")
    t.add_argument("--grad-accum", type=int, default=1, help="steps accumulated per optimiser step (default: 1)")
    t.add_argument("--stages", type=int, default=10, help="curriculum stages (pseudo-epochs; default: 10)")
    t.add_argument("--samples-per-stage", type=int, default=2000, help="records drawn per stage (default: 2000)")
    t.add_argument("--schedule", choices=["linear", "temperature", "uniform"], default="linear",
                   help="atomic-task share: linear annealing 1.0 → 0.1 (AURORA's code), the paper's "
                        "temperature sampler, or uniform (no curriculum) (default: linear)")
    t.add_argument("--recon-weight", type=float, default=0.0,
                   help="weight of the depth reconstruction loss through the tokenizer's decoder (default: 0, off)")
    t.add_argument("--gradient-checkpointing", choices=sorted(CHECKPOINTING), default="auto",
                   help="recompute activations to save memory: on (every layer), off (about a third faster), or "
                        "auto: the least of none, every 4th, every 2nd, every layer with which a trial step on the "
                        "longest batch fits in memory (default: auto)")
    t.add_argument("--group-by-length", choices=["step", "stage", "off"], default="step",
                   help="records of like length share a micro-batch, sorted within each optimiser step (its "
                        "records unchanged; helps with several processes or --grad-accum), within each curriculum "
                        "stage (least padding; steps of one kind of record), or off (default: step)")
    t.add_argument("--pack", type=int, default=1,
                   help="records end to end in each row, attention masked record by record (default: 1, one "
                        "record a row padded to the longest; 2 pads far less)")
    t.add_argument("--workers", type=int, help="processes preparing batches while the model trains "
                   "(default: 4 on a GPU, at most the CPUs per process less one; 0 on a CPU)")
    t.add_argument("--val-fraction", type=float, default=0.0,
                   help="hold out this share of the source samples (every record built from each) and report "
                        "their answer loss as training goes (default: 0, none)")
    t.add_argument("--eval-every", type=int,
                   help="optimiser steps between held-out losses (default: the end of every curriculum stage)")
    t.add_argument("--seed", type=int, default=0, help="seed of data building and sampling (default: 0)")
    t.add_argument("--minutes", type=float, help="stop after this much wall time (rank 0 decides for every rank), "
                   "with a checkpoint: the same command again goes on from there (a SIGTERM stops a run the same way)")
    t.add_argument("--save-every", type=int, default=500,
                   help="save a checkpoint to OUT/checkpoint every N optimiser steps; the same command again resumes "
                        "from it (default: 500; 0: only when --minutes or a SIGTERM stops the run)")
    t.add_argument("--no-resume", action="store_true", help="start over, ignoring a checkpoint in OUT")
    t.add_argument("--overwrite", action="store_true", help="replace a completed run in OUT (without it, that is an "
                   "error: a finished run is never lost to a command run again by mistake)")
    t.set_defaults(run=_train)
    x = sub.add_parser("experiment", help="does writing depth tokens first help? arms trained from scratch, compared")
    x.add_argument("name", choices=["relative-depth"], help="the experiment: relative-depth (AURORA's BLINK/HardBLINK)")
    x.add_argument("--out", required=True, help="folder for results.json and accuracy.png")
    x.add_argument("--size", choices=["tiny", "small", "base"], default="small",
                   help="tiny: a test miniature; small: a 2-core CPU within an hour; base: one GPU in about "
                        "10 minutes (default: small)")
    x.add_argument("--seeds", type=int, default=3, help="training seeds per arm, for 95%% intervals (default: 3)")
    x.add_argument("--steps", type=int, help="optimiser steps per arm (default: the size's)")
    x.add_argument("--arms", default="direct,cot,cot-no-curriculum,cot-pooled",
                   help="comma-separated arms among direct, direct+depth, cot, cot-no-curriculum, cot-pooled "
                        "(default: direct,cot,cot-no-curriculum,cot-pooled)")
    x.add_argument("--test-manifest", help="an RGB-D depth manifest (.jsonl) asked the same questions as a real-image "
                   "test set, e.g. ../shared/data/depth/manifest.jsonl")
    x.add_argument("--quiet", action="store_true", help="no progress bar")
    x.set_defaults(run=_experiment)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except (ValueError, OSError, ImportError) as err:
        from perceptok.cli.messages import one_line  # here: the perceptok CLI's imports take 50 ms

        print(f"perceptok-llava: error: {one_line(err)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
