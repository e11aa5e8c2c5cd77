"""Benchmark scoring: the chosen letter or number from a model's free text, and accuracy.

Benchmarks (``REFERENCE.md``; prompt formats in ``shared/data/benchmarks/samples.jsonl``):
``blink-depth`` (A/B), ``hardblink`` (A–E), ``blink-count``, ``cvbench-count``, ``seed-count``
(A–D) and ``cvbench-depth`` (A/B). A record holds at least ``id``, ``answer`` (the gold "(B)",
"B" or "3") and ``prediction`` (free text, perception tokens allowed); with a ``prompt``, the
choices' texts are matched too ("B is closer", "Two", "3").
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

BENCHMARK_LETTERS = {
    "blink-depth": "AB", "hardblink": "ABCDE", "blink-count": "ABCD", "cvbench-count": "ABCDEF",
    "cvbench-depth": "AB", "seed-count": "ABCD",
}
NUMBER_WORDS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen twenty".split())}
_TOKENS = re.compile(r"<[^<>\s]{1,40}>")  # perception tokens and other special tokens
_CHOICE_LINE = re.compile(r"^\s*\(?([A-F])[).]\s*(.+?)\s*$", re.M)


def choices_of(prompt: str | None) -> dict[str, str]:
    """Letter → choice text, from prompt lines like "(A) A is closer" or "B. Two"."""
    return {m.group(1): m.group(2) for m in _CHOICE_LINE.finditer(prompt or "")}


def extract_letter(text: str, letters: str, choices: dict[str, str] | None = None) -> str | None:
    """The option a free-text answer chooses, or None. Later statements win over earlier ones
    (chain-of-thought ends with the answer); explicit forms win over loose ones."""
    clean = _TOKENS.sub(" ", text)
    L = f"[{letters}]"
    patterns = [
        rf"\(({L})\)",
        rf"\b(?:answer|option|choice)\b[^A-Za-z]{{0,12}}(?:is\s+)?\(?({L})\b",
        rf"\b(?:point\s+)?({L})\s+is\s+(?:the\s+)?(?:clos|near)",
        rf"\bpoint\s+({L})\b",
        rf"^\s*({L})\s*(?:[).:,]|$)",
    ]
    for pattern in patterns:
        found = re.findall(pattern, clean, flags=re.I if "answer" in pattern else 0)
        if found:
            return found[-1].upper()
    if choices:
        hits = [(m.start(), letter) for letter, option in choices.items()
                for m in re.finditer(rf"(?<!\w){re.escape(option)}(?!\w)", clean, flags=re.I)]
        if hits:
            return max(hits)[1]
        number = extract_number(clean)
        if number is not None:
            matches = [letter for letter, option in choices.items() if extract_number(option) == number]
            if len(matches) == 1:
                return matches[0]
    return None


def extract_number(text: str) -> int | None:
    """The last number in the text, in digits or words (zero to twenty)."""
    clean = _TOKENS.sub(" ", text)
    found = [(m.start(), int(m.group())) for m in re.finditer(r"(?<![\w.])\d+(?![\w.]\d)", clean)]
    found += [(m.start(), NUMBER_WORDS[m.group().lower()]) for m in
              re.finditer(r"\b(" + "|".join(NUMBER_WORDS) + r")\b", clean, flags=re.I)]
    return max(found)[1] if found else None


def _gold(answer: Any) -> tuple[str, str | int]:
    text = str(answer).strip()
    if re.fullmatch(r"\(?([A-F])\)?", text):
        return "letter", text.strip("()")
    if re.fullmatch(r"\d+", text):
        return "number", int(text)
    raise ValueError(f"gold answer {answer!r} is neither a letter like '(B)' nor a number like '3'")


def score(benchmark: str, records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy (0–1) over records, their number, and the ids whose prediction held no answer."""
    if benchmark not in BENCHMARK_LETTERS:
        raise ValueError(f"unknown benchmark {benchmark!r}; choose one of {sorted(BENCHMARK_LETTERS)}")
    n = correct = 0
    unparseable = []
    for record in records:
        missing = [k for k in ("id", "answer", "prediction") if k not in record]
        if missing:
            raise ValueError(f"record {record.get('id', '?')!r} lacks {missing}; records need id, answer and prediction")
        kind, gold = _gold(record["answer"])
        prediction = str(record["prediction"] or "")
        if kind == "letter":
            choices = choices_of(record.get("prompt"))
            letters = "".join(sorted(choices)) or BENCHMARK_LETTERS[benchmark]
            got: str | int | None = extract_letter(prediction, letters, choices)
        else:
            got = extract_number(prediction)
        n += 1
        if got is None:
            unparseable.append(record["id"])
        correct += got == gold
    return {"benchmark": benchmark, "accuracy": correct / n if n else 0.0, "n": n, "correct": correct,
            "unparseable": unparseable}
