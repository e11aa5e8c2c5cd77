"""Box and point text in every convention: ``to_text`` and ``from_text`` on a million items
beside a plain per-item Python f-string loop that writes the same text, all measured in the same run.

The tables for BENCHMARKS.md (best of 3 rounds each, 100,000 images of 10 items):

    .venv/bin/python benchmarks/test_text_speed.py [--images 100000] [--per-image 10] [--kind box|point|both]

pytest-benchmark (a tenth of the size):

    .venv/bin/python -m pytest benchmarks/test_text_speed.py --benchmark-columns=mean,rounds
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable

import pytest
import torch

from perceptok import BoxTokenizer, PointTokenizer
from perceptok.coordinates import presets_for


def _json(key: str) -> Callable[[list[list[int]]], str]:
    return lambda boxes: "[" + ", ".join([f'{{"{key}": [{a}, {b}, {c}, {d}]}}' for a, b, c, d in boxes]) + "]"


# The obvious per-box loop for each convention, written by hand (the same text as to_text).
LOOPS: dict[str, Callable[[list[list[int]]], str]] = {
    "aurora": lambda boxes: ", ".join([f"(<PIXEL_{a}>,<PIXEL_{b}>,<PIXEL_{c}>,<PIXEL_{d}>)" for a, b, c, d in boxes]),
    "paligemma": lambda boxes: " ; ".join([f"<loc{a:04d}><loc{b:04d}><loc{c:04d}><loc{d:04d}>" for a, b, c, d in boxes]),
    "florence2": lambda boxes: "".join([f"<loc_{a}><loc_{b}><loc_{c}><loc_{d}>" for a, b, c, d in boxes]),
    "kosmos2": lambda boxes: "".join([f"<object><patch_index_{a:04d}><patch_index_{b:04d}></object>" for a, b in boxes]),
    "qwen2vl": lambda boxes: "".join([f"<|box_start|>({a},{b}),({c},{d})<|box_end|>" for a, b, c, d in boxes]),
    "qwen25vl": _json("bbox_2d"),
    "qwen3vl": _json("bbox_2d"),
    "gemini": _json("box_2d"),
    "internvl": lambda boxes: ("<box>[" + ", ".join([f"[{a}, {b}, {c}, {d}]" for a, b, c, d in boxes]) + "]</box>")
    if boxes else "",
    "shikra": lambda boxes: ("[" + ";".join([f"{a / 1000:.3f},{b / 1000:.3f},{c / 1000:.3f},{d / 1000:.3f}"
                                             for a, b, c, d in boxes]) + "]") if boxes else "",
}


def _json_points(key: str) -> Callable[[list[list[int]]], str]:
    return lambda points: "[" + ", ".join([f'{{"{key}": [{a}, {b}]}}' for a, b in points]) + "]"


POINT_LOOPS: dict[str, Callable[[list[list[int]]], str]] = {
    "aurora": lambda points: ", ".join([f"(<PIXEL_{a}>,<PIXEL_{b}>)" for a, b in points]),
    "paligemma": lambda points: " ; ".join([f"<loc{a:04d}><loc{b:04d}>" for a, b in points]),
    "florence2": lambda points: "".join([f"<loc_{a}><loc_{b}>" for a, b in points]),
    "kosmos2": lambda points: "".join([f"<object><patch_index_{a:04d}></object>" for (a,) in points]),
    "qwen2vl": lambda points: "".join([f"<|box_start|>({a},{b})<|box_end|>" for a, b in points]),
    "qwen25vl": _json_points("point_2d"),
    "qwen3vl": _json_points("point_2d"),
    "gemini": _json_points("point"),
    "molmo": lambda points: " ".join([f'<point x="{a / 10:.1f}" y="{b / 10:.1f}" alt=""></point>' for a, b in points]),
    "shikra": lambda points: ("[" + ";".join([f"{a / 1000:.3f},{b / 1000:.3f}" for a, b in points]) + "]")
    if points else "",
}
KINDS = {"box": (BoxTokenizer, LOOPS), "point": (PointTokenizer, POINT_LOOPS)}


def random_ids(tok: BoxTokenizer | PointTokenizer, images: int, per_image: int, seed: int = 0) -> torch.Tensor:
    """``(images, per_image, T)`` valid ids (pixel presets: coordinates up to 1000 px)."""
    g = torch.Generator().manual_seed(seed)
    high = min(tok.config.num_tokens, 1001)
    return torch.randint(0, high, (images, per_image, tok.tokens_per_item), generator=g)


def best(fn: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(preset: str, images: int, per_image: int, rounds: int = 3, kind: str = "box") -> dict[str, float]:
    """Seconds of the loop, to_text and from_text on the same items; asserts they agree."""
    cls, loops = KINDS[kind]
    tok = cls.from_preset(preset)
    ids = random_ids(tok, images, per_image)
    lists = ids.tolist()
    loop = loops[preset]
    texts = tok.to_text(ids)
    assert texts == [loop(boxes) for boxes in lists], preset
    assert torch.equal(tok.from_text(texts), ids), preset
    return {
        "loop": best(lambda: [loop(boxes) for boxes in lists], rounds),
        "to_text": best(lambda: tok.to_text(ids), rounds),
        "from_text": best(lambda: tok.from_text(texts), rounds),
    }


@pytest.mark.parametrize("preset", presets_for("box"))
@pytest.mark.parametrize("path", ["loop", "to_text", "from_text"])
def test_text_speed(benchmark, preset, path):
    tok = BoxTokenizer.from_preset(preset)
    ids = random_ids(tok, 10_000, 10)
    lists = ids.tolist()
    texts = tok.to_text(ids)
    run = {"loop": lambda: [LOOPS[preset](boxes) for boxes in lists],
           "to_text": lambda: tok.to_text(ids),
           "from_text": lambda: tok.from_text(texts)}[path]
    out = benchmark.pedantic(run, rounds=3, warmup_rounds=1)
    assert len(out) == 10_000
    benchmark.extra_info["boxes_per_s"] = 100_000 / benchmark.stats["mean"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--per-image", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--kind", choices=["box", "point", "both"], default="box")
    args = parser.parse_args()
    n = args.images * args.per_image
    for kind in ["box", "point"] if args.kind == "both" else [args.kind]:
        print(f"{n:,} {kind}es" if kind == "box" else f"{n:,} points", end="")
        print(f" ({args.images:,} images × {args.per_image}), best of {args.rounds}; "
              f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads")
        print("| preset | f-string loop | to_text | × loop | from_text | × loop |")
        print("|---|---|---|---|---|---|")
        for preset in presets_for(kind):
            t = measure(preset, args.images, args.per_image, args.rounds, kind)
            print(f"| `{preset}` | {t['loop']:.3f} s | {t['to_text']:.3f} s | {t['loop'] / t['to_text']:.2f} | "
                  f"{t['from_text']:.3f} s | {t['loop'] / t['from_text']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
