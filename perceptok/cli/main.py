"""``perceptok`` entry point: builds the parser from the subcommand modules and turns user
mistakes into one clear line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from perceptok.cli import coords, depth, hub, shards
from perceptok.cli.messages import one_line
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
    coords.add_bench(bench)
    depth.add_export(_by_modality(sub, "export", "export a tokenizer's networks (ONNX)"))
    shards.add_tokenize(_by_modality(sub, "tokenize", "whole datasets → resumable Parquet shards of tokens"))
    hub.add_info(sub)
    hub.add_push(sub)
    return parser


_NETWORK_MODULES = ("huggingface_hub", "httpx", "httpx2", "httpcore", "requests", "urllib3")


def _hub_error(err: Exception) -> str | None:
    """One line for a Hub or network failure, or None for other errors. huggingface_hub 2.x
    raises httpx(2) errors, which are not OSError."""
    if type(err).__module__.split(".")[0] not in _NETWORK_MODULES:
        return None
    name = type(err).__name__
    status = getattr(getattr(err, "response", None), "status_code", None)
    first = str(err).strip().splitlines()[0] if str(err).strip() else name
    if name in ("RepositoryNotFoundError", "RevisionNotFoundError", "EntryNotFoundError") or status == 404:
        fix = "check the repository id and revision, and that your token can see it (hf auth login)"
    elif name == "GatedRepoError" or status in (401, 403):
        fix = "log in with a token that has access (hf auth login, or --token), or accept the repository's terms"
    elif status == 429:
        fix = "the Hub is rate-limiting you: wait a minute and run the command again"
    else:
        fix = ("no connection to the Hub: check the network, or set HF_HUB_OFFLINE=1 and use a local folder "
               "or a model already in the cache")
    return f"{name}: {first} ({fix})"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except (PerceptokError, ValueError, TypeError, OSError, ImportError) as err:
        print(f"perceptok: error: {_hub_error(err) or one_line(err)}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as err:  # noqa: BLE001 -- network failures from the Hub's HTTP stack; the rest propagates
        line = _hub_error(err)
        if line is None:
            raise
        print(f"perceptok: error: {line}", file=sys.stderr)
        return EXIT_USAGE
    return 0


if __name__ == "__main__":
    sys.exit(main())
