"""``perceptok`` entry point: builds the parser from the subcommand modules and turns user
mistakes into one clear line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from perceptok.cli import coords, depth, hub, shards
from perceptok.errors import PerceptokError

EXIT_USAGE = 2


def _by_modality(sub: argparse._SubParsersAction, name: str, help: str) -> argparse._SubParsersAction:
    """A command whose subcommands are modalities (``perceptok NAME depth ...``)."""
    return sub.add_parser(name, help=help).add_subparsers(dest="modality", required=True, metavar="MODALITY")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="perceptok", description="Perception tokens for multimodal LMs.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    hub.add_list(sub)
    encode = _by_modality(sub, "encode", "structure → token text")
    decode = _by_modality(sub, "decode", "token text → structure (JSON)")
    coords.add_commands(encode, decode)
    depth.add_encode(encode)
    depth.add_decode(decode)
    depth.add_train(_by_modality(sub, "train", "train a tokenizer"))
    depth.add_eval(_by_modality(sub, "eval", "evaluate a tokenizer"))
    bench = _by_modality(sub, "bench", "measure throughput")
    depth.add_bench(bench)
    shards.add_bench(bench)
    depth.add_export(_by_modality(sub, "export", "export a tokenizer's networks (ONNX)"))
    shards.add_tokenize(_by_modality(sub, "tokenize", "whole datasets → resumable Parquet shards of tokens"))
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
