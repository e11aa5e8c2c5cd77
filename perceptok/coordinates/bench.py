"""``perceptok bench boxes`` / ``points``: box and point text against the obvious loop.

For every convention, ``to_text`` and strict ``from_text`` on ``images × per_image`` random
items, beside a plain per-item Python f-string loop that writes the same text (written by hand
per convention below; the benchmark checks that both texts agree and that ``from_text`` gives
the ids back), all in the same run. Each figure is the best of ``rounds`` timed calls.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from perceptok.coordinates.config import presets_for

Loop = Callable[[list[list[int]]], str]


def _json(key: str) -> Loop:
    return lambda boxes: "[" + ", ".join([f'{{"{key}": [{a}, {b}, {c}, {d}]}}' for a, b, c, d in boxes]) + "]"


def _json_points(key: str) -> Loop:
    return lambda points: "[" + ", ".join([f'{{"{key}": [{a}, {b}]}}' for a, b in points]) + "]"


# The obvious per-item loop of each convention, from Python lists of ids (the same text as to_text).
LOOPS: dict[str, dict[str, Loop]] = {
    "box": {
        "aurora": lambda boxes: ", ".join([f"(<PIXEL_{a}>,<PIXEL_{b}>,<PIXEL_{c}>,<PIXEL_{d}>)" for a, b, c, d in boxes]),
        "paligemma": lambda boxes: " ; ".join([f"<loc{a:04d}><loc{b:04d}><loc{c:04d}><loc{d:04d}>"
                                               for a, b, c, d in boxes]),
        "florence2": lambda boxes: "".join([f"<loc_{a}><loc_{b}><loc_{c}><loc_{d}>" for a, b, c, d in boxes]),
        "kosmos2": lambda boxes: "".join([f"<object><patch_index_{a:04d}><patch_index_{b:04d}></object>"
                                          for a, b in boxes]),
        "qwen2vl": lambda boxes: "".join([f"<|box_start|>({a},{b}),({c},{d})<|box_end|>" for a, b, c, d in boxes]),
        "qwen25vl": _json("bbox_2d"),
        "qwen3vl": _json("bbox_2d"),
        "gemini": _json("box_2d"),
        "internvl": lambda boxes: ("<box>[" + ", ".join([f"[{a}, {b}, {c}, {d}]" for a, b, c, d in boxes]) + "]</box>")
        if boxes else "",
        "shikra": lambda boxes: ("[" + ";".join([f"{a / 1000:.3f},{b / 1000:.3f},{c / 1000:.3f},{d / 1000:.3f}"
                                                 for a, b, c, d in boxes]) + "]") if boxes else "",
    },
    "point": {
        "aurora": lambda points: ", ".join([f"(<PIXEL_{a}>,<PIXEL_{b}>)" for a, b in points]),
        "paligemma": lambda points: " ; ".join([f"<loc{a:04d}><loc{b:04d}>" for a, b in points]),
        "florence2": lambda points: "".join([f"<loc_{a}><loc_{b}>" for a, b in points]),
        "kosmos2": lambda points: "".join([f"<object><patch_index_{a:04d}></object>" for (a,) in points]),
        "qwen2vl": lambda points: "".join([f"<|box_start|>({a},{b})<|box_end|>" for a, b in points]),
        "qwen25vl": _json_points("point_2d"),
        "qwen3vl": _json_points("point_2d"),
        "gemini": _json_points("point"),
        "molmo": lambda points: " ".join([f'<point x="{a / 10:.1f}" y="{b / 10:.1f}" alt=""></point>'
                                          for a, b in points]),
        "shikra": lambda points: ("[" + ";".join([f"{a / 1000:.3f},{b / 1000:.3f}" for a, b in points]) + "]")
        if points else "",
    },
}


def tokenizer(kind: str, preset: str) -> Any:
    from perceptok import BoxTokenizer, PointTokenizer

    return (BoxTokenizer if kind == "box" else PointTokenizer).from_preset(preset)


def random_ids(tok: Any, images: int, per_image: int, seed: int = 0) -> np.ndarray:
    """``(images, per_image, T)`` valid ids (pixel presets: coordinates up to 1000 px)."""
    high = min(tok.config.num_tokens, 1001)
    return np.random.default_rng(seed).integers(0, high, (images, per_image, tok.tokens_per_item))


def _best(fn: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(kind: str, preset: str, images: int, per_image: int, rounds: int = 3) -> dict[str, float]:
    """Seconds of the loop, ``to_text`` and strict ``from_text`` on the same items (checked to agree)."""
    tok = tokenizer(kind, preset)
    ids = random_ids(tok, images, per_image)
    lists = ids.tolist()
    loop = LOOPS[kind][preset]
    texts = tok.to_text(ids)
    if texts != [loop(items) for items in lists] or not np.array_equal(tok.from_text(texts, return_tensors="np"), ids):
        raise AssertionError(f"{kind} {preset}: to_text, from_text and the loop disagree")
    loop_s = _best(lambda: [loop(items) for items in lists], rounds)
    to_text_s = _best(lambda: tok.to_text(ids), rounds)
    from_text_s = _best(lambda: tok.from_text(texts), rounds)
    return {"loop_s": loop_s, "to_text_s": to_text_s, "from_text_s": from_text_s,
            "to_text_vs_loop": loop_s / to_text_s, "from_text_vs_loop": loop_s / from_text_s}


def bench_text(kind: str = "box", images: int = 100_000, per_image: int = 10, rounds: int = 3,
               presets: list[str] | None = None, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Every convention's figures (``measure``) and the machine, as one JSON-ready dict."""
    if kind not in LOOPS:
        raise ValueError(f"kind must be one of {sorted(LOOPS)}, got {kind!r}")
    known = presets_for(kind)
    presets = presets or known
    unknown = sorted(set(presets) - set(known))
    if unknown:
        raise ValueError(f"unknown {kind} preset(s) {unknown}; choose from {known}")
    if min(images, per_image, rounds) < 1:
        raise ValueError("images, items per image and rounds must be positive")
    import torch

    try:
        import numba

        numba_version = numba.__version__
    except ImportError:
        numba_version = None
    out: dict[str, Any] = {"kind": kind, "machine": platform.processor() or platform.machine(),
                           "torch": torch.__version__, "numba": numba_version, "images": images,
                           "per_image": per_image, "rounds": rounds, "presets": {}}
    for preset in presets:
        if progress is not None:
            progress(preset)
        out["presets"][preset] = measure(kind, preset, images, per_image, rounds)
    return out
