"""``perceptok`` entry point: builds the parser from the subcommand modules and turns user
mistakes into one clear line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from perceptok.cli import coords, depth, hub
from perceptok.errors import PerceptokError

EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="perceptok", description="Perception tokens for multimodal LMs.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    hub.add_list(sub)
    encode = sub.add_parser("encode", help="structure → token text").add_subparsers(
        dest="modality", required=True, metavar="MODALITY")
    decode = sub.add_parser("decode", help="token text → structure (JSON)").add_subparsers(
        dest="modality", required=True, metavar="MODALITY")
    coords.add_commands(encode, decode)
    depth.add_encode(encode)
    depth.add_decode(decode)
    train = sub.add_parser("train", help="train a tokenizer").add_subparsers(
        dest="modality", required=True, metavar="MODALITY")
    depth.add_train(train)
    evaluate = sub.add_parser("eval", help="evaluate a tokenizer").add_subparsers(
        dest="modality", required=True, metavar="MODALITY")
    depth.add_eval(evaluate)
    bench = sub.add_parser("bench", help="measure throughput").add_subparsers(
        dest="modality", required=True, metavar="MODALITY")
    depth.add_bench(bench)
    export = sub.add_parser("export", help="export a tokenizer's networks (ONNX)").add_subparsers(
        dest="modality", required=True, metavar="MODALITY")
    depth.add_export(export)
    hub.add_info(sub)
    hub.add_push(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except (PerceptokError, ValueError, TypeError, OSError) as err:
        print(f"perceptok: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    return 0


if __name__ == "__main__":
    sys.exit(main())
