"""``perceptok-llava``: the LLaVA plugin's command line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from perceptok_llava.eval import BENCHMARK_LETTERS, score


def _eval(args: argparse.Namespace) -> None:
    path = Path(args.predictions)
    if not path.is_file():
        raise FileNotFoundError(f"predictions file {path} does not exist")
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{number} is not a JSON object: {err}") from err
    result = score(args.benchmark, records)
    print(json.dumps(result) if args.json else
          f"{args.benchmark}: accuracy {result['accuracy']:.3f} ({result['correct']}/{result['n']}), "
          f"{len(result['unparseable'])} unparseable")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="perceptok-llava", description="Perception tokens in LLaVA.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("eval", help="score predictions on a benchmark")
    p.add_argument("--benchmark", required=True, choices=sorted(BENCHMARK_LETTERS))
    p.add_argument("--predictions", required=True, help="JSONL with id, answer, prediction (and prompt)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=_eval)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except (ValueError, OSError) as err:
        print(f"perceptok-llava: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
