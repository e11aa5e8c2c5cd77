"""``perceptok encode boxes|points`` and ``perceptok decode boxes|points``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from typing import TYPE_CHECKING

from perceptok.cli import messages
from perceptok.coordinates.config import presets_for

if TYPE_CHECKING:
    from perceptok.coordinates.tokenizer import CoordinateTokenizer


def _tokenizer(args: argparse.Namespace) -> CoordinateTokenizer:
    from perceptok.coordinates.tokenizer import CoordinateTokenizer
    from perceptok.loading import load

    name = args.tokenizer or f"{args.modality}:{args.preset}"
    tok = load(name)
    if not isinstance(tok, CoordinateTokenizer) or tok.tokenizer_type != args.modality:
        raise ValueError(f"{name!r} is a {tok.tokenizer_type!r} tokenizer, not a {args.modality!r} one")
    return tok


def _coco_boxes(path: Path, image: str) -> tuple[list[list[float]], list[str], tuple[int, int]]:
    """The boxes (xywh pixels), category names and (H, W) of one image of a COCO file."""
    data = json.loads(path.read_text(encoding="utf-8"))
    matches = [im for im in data["images"] if im["file_name"] == image or str(im["id"]) == image]
    if not matches:
        raise ValueError(f"no image {image!r} in {path} (give a file_name or an id)")
    im = matches[0]
    names = {c["id"]: c["name"] for c in data["categories"]}
    anns = [a for a in data["annotations"] if a["image_id"] == im["id"]]
    return [a["bbox"] for a in anns], [names[a["category_id"]] for a in anns], (im["height"], im["width"])


def _encode(args: argparse.Namespace) -> None:
    tok = _tokenizer(args)
    labels: Any = args.labels
    canvas = tuple(args.canvas_size) if args.canvas_size else None
    fmt = getattr(args, "format", "xyxy")
    if args.coco:
        items, coco_labels, canvas = _coco_boxes(Path(args.coco), args.image)
        labels = labels or coco_labels
        fmt = "xywh"
    elif args.items is not None:
        try:
            items = json.loads(args.items)
        except json.JSONDecodeError as err:
            raise ValueError(f"ITEMS must be a JSON list like [[x1, y1, x2, y2], ...]: {err}") from err
    else:
        raise ValueError("give ITEMS as JSON, or --coco FILE --image NAME")
    kwargs = {"format": fmt} if args.modality == "boxes" else {}
    enc = tok.encode(items, canvas_size=canvas, labels=labels, clip=args.clip, return_tensors="np", **kwargs)
    text = tok.to_text(enc)
    print(text)
    if args.preview:
        _preview(args, tok, items, fmt, canvas, text)


def _preview(args: argparse.Namespace, tok: CoordinateTokenizer, items: Any, fmt: str,
             canvas: tuple[int, int] | None, text: str) -> None:
    """Draw the input boxes and the boxes decoded back from ``text`` on the COCO image."""
    import numpy as np
    import torch

    from perceptok.boxes.tokenizer import box_convert

    if not args.coco:
        raise ValueError("--preview needs --coco and --image, to know which picture to draw on")
    from perceptok.viz import draw_box_preview

    image_path = Path(args.images or Path(args.coco).parent / "images") / args.image
    parsed = tok.parse(text)
    truth = torch.from_numpy(box_convert(np.asarray(items, dtype=np.float64).reshape(-1, 4), fmt, "xyxy"))
    out = draw_box_preview(image_path, truth, tok.decode(parsed.ids, canvas_size=canvas), parsed.labels, args.preview)
    print(f"preview written to {out}", file=sys.stderr)


def _decode(args: argparse.Namespace) -> None:
    tok = _tokenizer(args)
    parsed = messages.parse(tok, args.text, args.lenient, return_tensors="np")
    canvas = tuple(args.canvas_size) if args.canvas_size else None
    kwargs = {"format": args.format} if args.modality == "boxes" else {}
    items = tok.decode(parsed.ids, canvas_size=canvas, return_tensors="np", **kwargs)
    out = {args.modality: [[round(v, 4) for v in row] for row in items.tolist()],
           "labels": parsed.labels, "count": int(parsed.counts)}
    print(json.dumps(out))


def _common(p: argparse.ArgumentParser, modality: str) -> None:
    kind = "box" if modality == "boxes" else "point"
    p.add_argument("--preset", default="aurora", choices=presets_for(kind),
                   help="convention to write or read (default: aurora)")
    p.add_argument("--tokenizer", help="a saved tokenizer folder or Hub id instead of --preset")
    p.add_argument("--canvas-size", nargs=2, type=int, metavar=("H", "W"),
                   help="image size for pixel coordinates; omit for coordinates in [0, 1] "
                        "(qwen25vl always needs it: it writes pixels of the resized model input)")
    if modality == "boxes":
        p.add_argument("--format", default="xyxy", choices=["xyxy", "xywh", "cxcywh"], help="box format")
    p.set_defaults(modality=modality)


def add_commands(encode: argparse._SubParsersAction, decode: argparse._SubParsersAction) -> None:
    for modality, example in (("boxes", "[[x1, y1, x2, y2], ...]"), ("points", "[[x, y], ...]")):
        e = encode.add_parser(modality, help=f"{modality} → token text")
        e.add_argument("items", nargs="?", metavar="ITEMS", help=f"JSON list {example}")
        e.add_argument("--labels", nargs="+", help="one label per item")
        e.add_argument("--clip", action="store_true", help="clip items that leave the image")
        if modality == "boxes":
            e.add_argument("--coco", help="read the boxes of one image from a COCO instances file")
            e.add_argument("--image", help="with --coco: the image's file_name or id")
            e.add_argument("--images", help="with --preview: folder of the COCO images (default: images/ beside the file)")
            e.add_argument("--preview", metavar="OUT.png", help="with --coco: draw input (green) and decoded (red) boxes")
        else:
            e.set_defaults(coco=None, preview=None)
        _common(e, modality)
        e.set_defaults(run=_encode)
        d = decode.add_parser(modality, help=f"token text → {modality} as JSON")
        d.add_argument("text", metavar="TEXT", help="token text")
        d.add_argument("--lenient", action="store_true",
                       help="keep the well-formed items of malformed text (with a warning) instead of failing")
        _common(d, modality)
        d.set_defaults(run=_decode)


def _bench(args: argparse.Namespace) -> None:
    from perceptok.coordinates.bench import bench_text

    kind = "box" if args.modality == "boxes" else "point"
    presets = args.presets.split(",") if args.presets else None
    result = bench_text(kind, args.images, args.per_image, args.rounds, presets,
                        progress=None if args.json else lambda p: print(f"bench: {p}", file=sys.stderr))
    if args.json:
        print(json.dumps(result))
        return
    print(f"{args.images * args.per_image:,} {args.modality} ({args.images:,} images × {args.per_image}), best of "
          f"{args.rounds}; {result['machine']}, torch {result['torch']}, numba {result['numba']}")
    for preset, t in result["presets"].items():
        print(f"{preset:10s} loop {t['loop_s']:.3f} s · to_text {t['to_text_s']:.3f} s ({t['to_text_vs_loop']:.1f}×) "
              f"· from_text {t['from_text_s']:.3f} s ({t['from_text_vs_loop']:.1f}×)")


def add_bench(bench: argparse._SubParsersAction) -> None:
    for modality in ("boxes", "points"):
        p = bench.add_parser(modality, help=f"{modality} text in every convention: to_text and strict from_text "
                                            "beside a plain per-item f-string loop writing the same text")
        p.add_argument("--images", type=int, default=100_000, help="images per convention (default: 100000)")
        p.add_argument("--per-image", type=int, default=10, help=f"{modality} per image (default: 10)")
        p.add_argument("--rounds", type=int, default=3, help="timed calls; the best counts (default: 3)")
        p.add_argument("--presets", help="comma-separated conventions (default: all)")
        p.add_argument("--json", action="store_true", help="print one JSON object")
        p.set_defaults(run=_bench, modality=modality)
