"""Box and point text in every convention: ``to_text`` and ``from_text`` on a million items
beside a plain per-item Python f-string loop that writes the same text, all measured in the same
run (``perceptok.coordinates.bench``, which ``perceptok bench boxes`` / ``points`` also runs).

The tables for BENCHMARKS.md (best of 3 rounds each, 100,000 images of 10 items):

    .venv/bin/python benchmarks/test_text_speed.py [--images 100000] [--per-image 10] [--kind box|point|both]

pytest-benchmark (a tenth of the size):

    .venv/bin/python -m pytest benchmarks/test_text_speed.py --benchmark-columns=mean,rounds
"""

from __future__ import annotations

import argparse

import pytest

from perceptok.coordinates import presets_for
from perceptok.coordinates.bench import LOOPS, bench_text, random_ids, tokenizer


@pytest.mark.parametrize("preset", presets_for("box"))
@pytest.mark.parametrize("path", ["loop", "to_text", "from_text"])
def test_text_speed(benchmark, preset, path):
    tok = tokenizer("box", preset)
    ids = random_ids(tok, 10_000, 10)
    lists = ids.tolist()
    texts = tok.to_text(ids)
    run = {"loop": lambda: [LOOPS["box"][preset](boxes) for boxes in lists],
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
    for kind in ["box", "point"] if args.kind == "both" else [args.kind]:
        result = bench_text(kind, args.images, args.per_image, args.rounds)
        print(f"{args.images * args.per_image:,} {'boxes' if kind == 'box' else 'points'} ({args.images:,} images × "
              f"{args.per_image}), best of {args.rounds}; {result['machine']}, torch {result['torch']}, "
              f"numba {result['numba']}")
        print("| preset | f-string loop | to_text | × loop | from_text | × loop |")
        print("|---|---|---|---|---|---|")
        for preset, t in result["presets"].items():
            print(f"| `{preset}` | {t['loop_s']:.3f} s | {t['to_text_s']:.3f} s | {t['to_text_vs_loop']:.2f} | "
                  f"{t['from_text_s']:.3f} s | {t['from_text_vs_loop']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
