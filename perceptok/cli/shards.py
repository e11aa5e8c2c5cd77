"""``perceptok tokenize depth|boxes``: whole datasets to resumable Parquet shards."""

from __future__ import annotations

import argparse
import sys


def _depth(args: argparse.Namespace) -> None:
    from perceptok import shards
    from perceptok.loading import load
    from perceptok.depth.grid import GridDepthTokenizer

    sources = [s for s in ("manifest", "folder", "images", "hf_dataset") if getattr(args, s)]
    if len(sources) != 1:
        raise ValueError("give exactly one of --manifest M, --folder DIR, --images DIR --depth-model ID, "
                         "--hf-dataset PATH --column C")
    estimator, dataset, column = None, None, None
    if args.manifest:
        items = shards.manifest_items(args.manifest)
    elif args.folder:
        items = shards.folder_items(args.folder, args.glob, args.kind, args.scale)
    elif args.images:
        if not args.depth_model:
            raise ValueError("--images needs --depth-model ID (a depth-estimation model, e.g. "
                             "depth-anything/Depth-Anything-V2-Small-hf)")
        from perceptok.depth.estimate import MonocularDepth

        items = shards.image_items(args.images, args.glob)
        estimator = MonocularDepth(args.depth_model, batch_size=args.batch_size, device=args.device)
    else:
        if not args.column:
            raise ValueError("--hf-dataset needs --column C, the image or array column holding depth")
        items = shards.dataset_items(args.hf_dataset, args.column, args.kind, args.scale)
        dataset, column = args.hf_dataset, args.column
    tok = load(args.tokenizer)
    if not isinstance(tok, GridDepthTokenizer):
        raise ValueError(f"{args.tokenizer!r} is a {tok.tokenizer_type!r} tokenizer, not a depth one")
    source = {"manifest": args.manifest, "folder": f"{args.folder}:{args.glob or ''}:{args.kind}:{args.scale}",
              "images": f"{args.images}:{args.depth_model}", "hf_dataset": f"{args.hf_dataset}:{args.column}"}
    summary = shards.tokenize_depth(items, args.out, tok, args.tokenizer, f"{sources[0]}={source[sources[0]]}",
                                    batch_size=args.batch_size, workers=args.workers, device=args.device,
                                    shard_size=args.shard_size, dataset=dataset, column=column,
                                    estimator=estimator, progress=not args.quiet, pad_square=args.pad_square)
    print(summary.line("maps"), file=sys.stderr)


def _boxes(args: argparse.Namespace) -> None:
    from perceptok import shards
    from perceptok.loading import load
    from perceptok.coordinates import CoordinateTokenizer

    name = args.tokenizer or f"boxes:{args.preset}"
    tok = load(name)
    if not isinstance(tok, CoordinateTokenizer) or tok.tokenizer_type != "boxes":
        raise ValueError(f"{name!r} is a {tok.tokenizer_type!r} tokenizer, not a boxes one")
    summary = shards.tokenize_boxes(args.coco, args.out, tok, name, shard_size=args.shard_size,
                                    progress=not args.quiet)
    print(summary.line("images"), file=sys.stderr)


def _bench(args: argparse.Namespace) -> None:
    import json

    from perceptok.shards.bench import bench_tokenize

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    result = bench_tokenize(args.files, args.workers, args.batch_size, args.tokenizer, args.device, args.folder,
                            args.repeats, args.loop_files)
    if args.json:
        print(json.dumps(result))
        return
    print(f"{result['files']} files, {result['machine']}, median of {result['repeats']} rounds")
    def cost(key: str) -> str:  # CPU and page faults a map, where the platform counts them
        use = result["per_map"].get(key)
        return (f" (a map: main {use['main_cpu_ms']:.1f} ms CPU, {use['main_page_faults']:.0f} page faults; "
                f"workers {use['workers_cpu_ms']:.1f} ms, {use['workers_page_faults']:.0f})") if use else ""

    print(f"obvious loop: {result['loop_maps_s']:.1f} maps/s" + cost("loop"))
    for n, rate in result["workers_maps_s"].items():
        print(f"tokenize, {n} workers: {rate:.1f} maps/s" + cost(n))
    print(f"{args.workers} workers / 1 worker: {result['workers_vs_one_worker']:.2f}×; best / loop: "
          f"{result['best_vs_loop']:.2f}×")
    print(f"one pass over {result['loop_files']} files: "
          + ", ".join(f"{k} {v:.2f} s" for k, v in result["seconds_of_one_pass"].items()))


def add_bench(bench: argparse._SubParsersAction) -> None:
    p = bench.add_parser("tokenize", help="maps/s from 16-bit PNG files to token shards, by worker count, "
                                          "beside the obvious per-file loop")
    p.add_argument("--files", type=int, default=1024, help="synthetic 640×480 PNG files to write (default: 1024; a "
                                                           "run's start, ~0.1 s, is a sixth of a 256-file run)")
    p.add_argument("--folder", help="use these depth files (millimetre PNGs) instead of synthetic ones")
    p.add_argument("--workers", type=int, default=2, help="the worker count to compare with 0 and 1 (default: 2)")
    p.add_argument("--batch-size", type=int, default=32, help="maps per tokenizer batch (default: 32)")
    p.add_argument("--tokenizer", default="depth", help="tokenizer (default: depth, the shipped one)")
    p.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's)")
    p.add_argument("--repeats", type=int, default=3, help="interleaved rounds; rates are their medians (default: 3)")
    p.add_argument("--loop-files", type=int, help="time the per-file loop and the stages of one pass on the first N "
                                                   "files only; the loop's rate is per map (default: all files)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=_bench)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="output folder of shards (a killed run resumes there)")
    p.add_argument("--shard-size", type=int, default=1000, help="inputs per Parquet shard (default: 1000)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def add_tokenize(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser("depth", help="depth maps → token shards",
                       description="Tokenize every depth map of a dataset into Parquet shards in --out. Runs "
                                   "under torchrun / accelerate launch split the shards across ranks.")
    d.add_argument("--manifest", help="a JSON-lines manifest (perceptok.io format)")
    d.add_argument("--folder", help="a folder of depth files (16-bit PNG, PGM, .npy, .npz, .pfm)")
    d.add_argument("--glob", help="with --folder or --images: which files (default: every depth or image file)")
    d.add_argument("--images", help="a folder of RGB images, given depth by --depth-model")
    d.add_argument("--pad-square", action="store_true",
                   help="centre each map on a square of no-measurement pixels first, as LLaVA-1.5 pads its images: "
                        "the tokens perceptok-llava train --data OUT then trains on as they are")
    d.add_argument("--depth-model", help="with --images: a depth-estimation model (Hub id or folder); needs transformers")
    d.add_argument("--hf-dataset", help="a local Hugging Face dataset (save_to_disk folder or parquet files)")
    d.add_argument("--column", help="with --hf-dataset: the image or array column holding depth")
    d.add_argument("--kind", default="metric", choices=["metric", "disparity", "relative_inverse"],
                   help="with --folder or --hf-dataset: what the values mean (default: metric)")
    d.add_argument("--scale", type=float, help="with --folder or --hf-dataset: raw value → units (e.g. 0.001 for mm)")
    d.add_argument("--tokenizer", default="depth", help="tokenizer name, folder or Hub id (default: depth, the shipped one)")
    d.add_argument("--batch-size", type=int, default=32, help="maps per tokenizer batch (default: 32)")
    d.add_argument("--workers", type=int, default=0, help="DataLoader processes decoding files (default: 0, in this process)")
    d.add_argument("--device", default=None, help="torch device for the tokenizer (default: cpu)")
    _common(d)
    d.set_defaults(run=_depth)
    b = sub.add_parser("boxes", help="COCO boxes → token shards")
    b.add_argument("--coco", required=True, help="a COCO detection file (instances.json)")
    b.add_argument("--preset", default="aurora", help="box convention (default: aurora)")
    b.add_argument("--tokenizer", help="a saved box tokenizer instead of --preset")
    _common(b)
    b.set_defaults(run=_boxes)
