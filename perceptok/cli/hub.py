"""``perceptok list``, ``perceptok info`` and ``perceptok push``."""

from __future__ import annotations

import argparse
import json

from perceptok.registry import list_presets, list_tokenizers


def _list(args: argparse.Namespace) -> None:
    if args.json:
        print(json.dumps({"tokenizers": list_tokenizers(), "presets": list_presets()}))
        return
    print("tokenizer types: " + ", ".join(list_tokenizers()))
    print("packaged presets: " + ", ".join(list_presets()))


def _info(args: argparse.Namespace) -> None:
    from perceptok.describe import describe_name

    print(json.dumps(describe_name(args.name, args.revision), indent=2))


def _push(args: argparse.Namespace) -> None:
    from perceptok.loading import load

    tok = load(args.path)
    info = tok.push_to_hub(args.repo_id, private=args.private, token=args.token, revision=args.revision,
                           commit_message=args.message)
    print(f"pushed {tok.tokenizer_type} tokenizer to {args.repo_id}: {getattr(info, 'commit_url', info)}")


def add_list(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="tokenizer types and packaged presets")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=_list)


def add_info(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="describe a preset, saved folder or Hub id")
    p.add_argument("name", metavar="PATH_OR_ID")
    p.add_argument("--revision", help="Hub revision (branch, tag or commit)")
    p.set_defaults(run=_info)


def add_push(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("push", help="upload a saved tokenizer (or a preset) to the Hugging Face Hub")
    p.add_argument("path", metavar="PATH")
    p.add_argument("repo_id", metavar="REPO_ID")
    p.add_argument("--private", action="store_true", help="create the repository as private")
    p.add_argument("--token", help="Hugging Face token (default: the logged-in one)")
    p.add_argument("--revision", help="branch to push to")
    p.add_argument("--message", default="Upload perceptok tokenizer", help="commit message")
    p.set_defaults(run=_push)
