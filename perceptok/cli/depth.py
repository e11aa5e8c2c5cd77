"""``perceptok train depth``, ``perceptok eval depth``, ``perceptok encode depth``,
``perceptok decode depth``, ``perceptok bench depth`` and ``perceptok export depth``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from perceptok.cli import messages
from perceptok.depth.config import PRESETS
from perceptok.io.formats import DEPTH_ENCODINGS, DEPTH_KINDS


def _train(args: argparse.Namespace) -> None:
    import torch

    from perceptok.depth.train import TrainConfig, train_depth

    torch.set_num_threads(args.threads) if args.threads else None
    if args.init and (args.preset or args.set):
        raise ValueError("--init fine-tunes a saved tokenizer with its own config: drop --preset and --set")
    preset = args.preset or "default"
    tok_cfg = None if args.init else dataclasses.replace(PRESETS[preset], **_overrides(args.set or []))
    recipe = args.recipe or ("aurora" if preset == "aurora" else "perceptok")
    cfg = TrainConfig(out=args.out, data=args.data, recipe=recipe, steps=args.steps, minutes=args.minutes,
                      batch_size=args.batch_size or (8 if recipe == "aurora" else 32),
                      lr=args.lr or (3e-4 if recipe == "aurora" else 1e-3), eval_every=args.eval_every,
                      seed=args.seed, val_scenes=args.val_scenes, resume=not args.no_resume,
                      eval_manifest=args.eval_manifest, workers=args.workers, init=args.init)
    metrics = train_depth(tok_cfg, cfg).metrics
    if metrics:  # rank 0 only
        print(json.dumps(metrics))


def _overrides(pairs: list[str]) -> dict:
    """``FIELD=VALUE`` pairs (VALUE in JSON; lists become tuples) → config fields."""
    fields = {f.name for f in dataclasses.fields(PRESETS["default"])}
    out = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or name not in fields:
            raise ValueError(f"--set takes FIELD=VALUE with FIELD one of {sorted(fields)}, got {pair!r}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw  # a bare string such as quantizer=vq
        out[name] = _tuples(value)
    return out


def _tuples(value):
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def add_train(train: argparse._SubParsersAction) -> None:
    p = train.add_parser("depth", help="train a VQ-VAE depth tokenizer")
    p.add_argument("--data", action="append", required=True,
                   help="synthetic:N (procedural scenes) or a manifest.jsonl; repeat to mix")
    p.add_argument("--out", required=True, help="output folder (tokenizer/, checkpoint.pt, log.jsonl)")
    p.add_argument("--preset", choices=sorted(PRESETS), help="architecture preset (default: default)")
    p.add_argument("--init", metavar="NAME_OR_PATH",
                   help="fine-tune a saved depth tokenizer (the preset 'depth', a folder or a Hub id) "
                        "instead of training one from scratch; it brings its own config")
    p.add_argument("--recipe", choices=["perceptok", "aurora"], help="default: aurora for the aurora preset")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--minutes", type=float, help="stop after this much wall time")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--set", action="append", metavar="FIELD=VALUE",
                   help="override a config field of the preset, e.g. --set cell_size=8 --set fsq_levels=[16,8]")
    p.add_argument("--eval-every", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--val-scenes", type=int, default=64, help="held-out synthetic scenes for validation")
    p.add_argument("--eval-manifest", metavar="MANIFEST", help="real maps to score at every validation")
    p.add_argument("--threads", type=int, help="CPU threads for torch")
    p.add_argument("--workers", type=int, help="processes rendering synthetic scenes while training runs "
                                               "(default: the cores but one; 0: a thread of this process)")
    p.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint.pt")
    p.set_defaults(run=_train)


def _load_maps(args: argparse.Namespace) -> list:
    from perceptok.io import read_manifest

    maps = [entry.load() for entry in read_manifest(args.manifest)]
    if args.degrade == "lidar":
        from perceptok.depth.evaluate import lidar_like

        maps = [lidar_like(m, seed=i) for i, m in enumerate(maps)]
    return maps


def _eval(args: argparse.Namespace) -> None:
    import torch

    from perceptok.depth.evaluate import evaluate_depth
    from perceptok.depth.grid import GridDepthTokenizer
    from perceptok.loading import load

    torch.set_num_threads(args.threads) if args.threads else None
    tok = load(args.tokenizer)
    if not isinstance(tok, GridDepthTokenizer):
        raise ValueError(f"{args.tokenizer!r} is a {tok.tokenizer_type!r} tokenizer, not a depth tokenizer")
    maps = _load_maps(args)
    result = evaluate_depth(tok, maps, seed=args.seed)
    result["tokenizer"] = args.tokenizer
    if args.baseline:
        result["baselines"] = {name: evaluate_depth(load(f"depth:{name}"), maps, seed=args.seed) for name in args.baseline}
    if args.card:
        from perceptok.model_card import append_card_section

        body = (f"`perceptok eval depth --manifest {args.manifest}"
                + "".join(f" --baseline {b}" for b in args.baseline or []) + (f" --degrade {args.degrade}" if args.degrade else "")
                + f"` ({len(maps)} maps):\n\n```json\n{json.dumps(result, indent=2)}\n```")
        append_card_section(Path(args.card), "Evaluation" + (f" ({args.degrade})" if args.degrade else ""), body)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:18s} {value}")


def add_eval(evaluate: argparse._SubParsersAction) -> None:
    p = evaluate.add_parser("depth", help="reconstruction quality and speed of a depth tokenizer")
    p.add_argument("--tokenizer", default="depth", help="preset name, folder or Hub id (default: the shipped one)")
    p.add_argument("--manifest", required=True, help="manifest.jsonl of depth maps")
    p.add_argument("--baseline", action="append", choices=["pooled"], help="also score a baseline in the same run")
    p.add_argument("--degrade", choices=["lidar"], help="score sparse, LiDAR-like versions of the maps")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--card", metavar="FOLDER", help="append the results to the model card of this saved tokenizer")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="CPU threads for torch")
    p.set_defaults(run=_eval)


def _read_input(args: argparse.Namespace):
    from perceptok.io import read_depth, read_manifest

    if args.manifest:
        entries = [e for e in read_manifest(args.manifest) if e.id == args.input]
        if not entries:
            raise ValueError(f"no entry with id {args.input!r} in {args.manifest}")
        return entries[0].load()
    return read_depth(args.input, encoding=args.encoding, scale=args.scale, kind=args.kind,
                      invalid=tuple(args.invalid))


def _encode(args: argparse.Namespace) -> None:
    import torch

    from perceptok.depth.normalize import normalize_depth
    from perceptok.depth.grid import GridDepthTokenizer
    from perceptok.loading import load

    tok = load(args.tokenizer)
    if not isinstance(tok, GridDepthTokenizer):
        raise ValueError(f"{args.tokenizer!r} is not a depth tokenizer")
    depth = _read_input(args)
    enc = tok.encode(depth)
    text = tok.to_text(enc)  # with the grid marker of a map on a non-square grid
    if args.json:  # what `decode depth --stats` needs to give the map back in its units
        stats = {"kind": enc.stats.kind, "low": float(enc.stats.low[0]), "high": float(enc.stats.high[0]),
                 "size": list(enc.stats.sizes[0])}
        print(json.dumps({"text": text, "stats": stats}))
    else:
        print(text)
    if args.preview:
        from perceptok.viz_depth import depth_preview

        from perceptok.depth.metrics import map_errors, ordinal_accuracy
        from perceptok.depth.normalize import to_inverse

        truth = normalize_depth(depth.values[None], depth.kind, depth.valid[None])
        true_rel, ok = truth.rel[0], truth.valid[0]
        pred_rel = tok.decode(enc.ids, size=enc.stats.sizes[0])  # relative inverse depth at the input's size
        restored = tok.decode(enc.ids[None], stats=enc.stats)[0]  # in the input's units
        correct, total = ordinal_accuracy(to_inverse(restored.clamp_min(1e-9), depth.kind), truth.unclamped()[0], ok,
                                          torch.Generator().manual_seed(0))
        scores = {"abs_rel": map_errors(restored, truth, depth.values, depth.kind)["abs_rel"],
                  "ordinal accuracy": correct / max(total, 1)}
        out = depth_preview(true_rel, pred_rel, ok, enc.stats.grids[0], args.preview, scores)
        print(f"preview written to {out}", file=sys.stderr)


def add_encode(encode: argparse._SubParsersAction) -> None:
    p = encode.add_parser("depth", help="depth map → token text (and --preview)")
    p.add_argument("input", metavar="IN", help="a depth file, or an entry id with --manifest")
    p.add_argument("--manifest", help="read IN as an entry of this manifest.jsonl")
    p.add_argument("--tokenizer", default="depth", help="preset name, folder or Hub id (default: the shipped one)")
    p.add_argument("--encoding", choices=DEPTH_ENCODINGS,
                   help="how to read IN (default: from the file)")
    p.add_argument("--scale", type=float, help="raw value × scale = metres (metric) or pixels (disparity)")
    p.add_argument("--kind", default="metric", choices=DEPTH_KINDS,
                   help="what IN's values mean: metric (metres, smaller = closer; default), disparity (larger = "
                        "closer) or relative_inverse (Depth Anything-like)")
    p.add_argument("--invalid", type=float, nargs="*", default=[0], help="raw values meaning no measurement")
    p.add_argument("--preview", metavar="OUT.png",
                   help="write input | reconstruction + token grid | error, with colour bars and the map's scores")
    p.add_argument("--json", action="store_true",
                   help='print {"text": ..., "stats": ...}; `decode depth --stats` turns the text back into metres')
    p.set_defaults(run=_encode)


def _decode(args: argparse.Namespace) -> None:
    import numpy as np
    from PIL import Image

    from perceptok.checkpoint import atomic_write
    from perceptok.loading import load

    tok = load(args.tokenizer)
    parsed = messages.parse(tok, args.text, args.lenient)  # ids and the span's grid
    if args.stats:
        depth = tok.decode(parsed.ids[None], stats=_stats(args.stats, parsed.grids[0]))[0]
        if not args.out.endswith(".npy"):
            raise ValueError("with --stats the map is in its units (metres for metric depth): write it as .npy")
        atomic_write(Path(args.out), lambda tmp: np.save(open(tmp, "wb"), depth.numpy()))
        print(f"{json.loads(args.stats)['kind']} depth {tuple(depth.shape)} written to {args.out}")
        return
    rel = tok.decode(parsed, size=tuple(args.size) if args.size else None)
    if args.out.endswith(".npy"):
        atomic_write(Path(args.out), lambda tmp: np.save(open(tmp, "wb"), rel.numpy()))
    else:
        image = Image.fromarray((rel.numpy() * 65535).round().astype(np.uint16))
        atomic_write(Path(args.out), lambda tmp: image.save(tmp, format="PNG"))
    print(f"relative inverse depth {tuple(rel.shape)} written to {args.out}")


def _stats(text: str, grid: tuple[int, int]):
    """``DepthStats`` of one map from the JSON that ``encode depth --json`` prints."""
    import torch

    from perceptok.depth.normalize import DepthStats

    try:
        s = json.loads(text)
        return DepthStats(torch.tensor([float(s["low"])], dtype=torch.float64),
                          torch.tensor([float(s["high"])], dtype=torch.float64), s["kind"],
                          [tuple(int(v) for v in s["size"])], [grid])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise ValueError(f'--stats must be the "stats" object that `encode depth --json` prints, like '
                         f'{{"kind": "metric", "low": 0.2, "high": 1.1, "size": [480, 640]}} ({err})') from None


def add_decode(decode: argparse._SubParsersAction) -> None:
    p = decode.add_parser("depth", help="token text → relative inverse depth (.npy or 16-bit .png)")
    p.add_argument("text", metavar="TEXT", help="one span: <DEPTH_START>, an optional grid marker, the codes, <DEPTH_END>")
    p.add_argument("--out", required=True, metavar="OUT", help=".npy (float) or .png (16-bit, 65535 = nearest)")
    p.add_argument("--size", type=int, nargs=2, metavar=("H", "W"),
                   help="output size (default: the network's input size for the span's grid)")
    p.add_argument("--stats", metavar="JSON",
                   help='the "stats" that `encode depth --json` printed: write the map in its units (metres) to .npy')
    p.add_argument("--tokenizer", default="depth", help="tokenizer name, folder or Hub id (default: depth, the shipped one)")
    p.add_argument("--lenient", action="store_true",
                   help="read malformed spans (missing codes repeat the last, extra ones are dropped) with a warning")
    p.set_defaults(run=_decode)


def _bench(args: argparse.Namespace) -> None:
    import torch

    from perceptok.depth.bench import BenchConfig, bench_depth

    torch.set_num_threads(args.threads) if args.threads else None
    cfg = BenchConfig(device=args.device, dtype=args.dtype, batch_sizes=tuple(args.batch_sizes),
                      train_batch=args.train_batch, scenes=args.scenes, seconds=args.seconds, repeats=args.repeats)
    result = bench_depth(cfg, progress=lambda what: print(f"bench: {what}", file=sys.stderr))
    if args.json:
        print(json.dumps(result))
        return
    for name in ("default", "aurora"):
        for key, value in result[name].items():
            print(f"{name:8s} {key:26s} {value}")


def add_bench(bench: argparse._SubParsersAction) -> None:
    p = bench.add_parser("depth", help="maps/s of the depth tokenizer: networks, 640×480 round trip, training "
                                       "data and steps, the default beside the original architecture")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or mps (default: cpu)")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"], help="network precision (default: fp32)")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 64, 1024], metavar="N",
                   help="batch sizes of the network figures (default: 1 64 1024)")
    p.add_argument("--train-batch", type=int, default=256, help="maps per training batch (default: 256)")
    p.add_argument("--scenes", type=int, default=32, help="synthetic scenes for the training figures (default: 32)")
    p.add_argument("--seconds", type=float, default=1.0, help="minimum length of each timed run (default: 1)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per figure, the best is kept (default: 3)")
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=_bench)


def _export(args: argparse.Namespace) -> None:
    from perceptok.depth.onnx import export_onnx
    from perceptok.depth.tokenizer import DepthTokenizer
    from perceptok.loading import load

    tok = load(args.tokenizer)
    if not isinstance(tok, DepthTokenizer):
        raise ValueError(f"{args.tokenizer!r} is a {tok.tokenizer_type!r} tokenizer; ONNX export takes a VQ-VAE "
                         "depth tokenizer (the pooled baseline has no network to export)")
    try:
        out = export_onnx(tok, args.onnx)
    except ImportError as err:
        raise ValueError(f"ONNX export needs the onnx package: pip install 'perceptok[onnx]' ({err})") from err
    print(f"encoder.onnx, decoder.onnx and export.json written to {out}", file=sys.stderr)
    if args.check:
        from perceptok.depth.onnx_check import check_onnx
        from perceptok.io import read_manifest

        try:
            result = check_onnx(tok, out, [e.load() for e in read_manifest(args.check)])
        except ImportError as err:
            raise ValueError(str(err)) from err
        print(json.dumps(result))


def add_export(export: argparse._SubParsersAction) -> None:
    p = export.add_parser("depth", help="the encoder (network input → ids) and decoder (ids → map) as ONNX graphs")
    p.add_argument("--onnx", required=True, metavar="OUT_DIR", help="folder for encoder.onnx, decoder.onnx, export.json")
    p.add_argument("--tokenizer", default="depth", help="preset name, folder or Hub id (default: the shipped one)")
    p.add_argument("--check", metavar="MANIFEST", help="compare with the torch tokenizer on these maps through "
                                                       "onnxruntime and print JSON (ids_equal_fraction, max_abs_decode_diff)")
    p.set_defaults(run=_export)
