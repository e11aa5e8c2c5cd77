"""What the command line says: errors on one line, with its own flags in their advice, and a
warning for what lenient parsing dropped or filled."""

from __future__ import annotations

import re
import sys
from typing import Any

from perceptok.errors import TokenParseError


def one_line(err: BaseException) -> str:
    """The error as one line, with the command line's flags in its advice. An error raised in a
    DataLoader worker, whose message torch fills with the worker's traceback, is its last line:
    the original error's own message."""
    text = str(err)
    if "Original Traceback" in text:
        last = text.strip().splitlines()[-1]
        text = re.sub(r"^[\w.]+: ", "", last)
    text = " ".join(text.split()) or type(err).__name__
    return text.replace("Pass strict=False to recover", "Pass --lenient to recover")


def parse(tok: Any, text: str, lenient: bool, **kwargs: Any) -> Any:
    """``tok.parse(text, **kwargs)``; with ``lenient``, text that is not well formed is read
    leniently and a warning on standard error says what was wrong and what lenient reading does
    with it."""
    try:
        return tok.parse(text, strict=True, **kwargs)
    except TokenParseError as err:
        if not lenient:
            raise
        parsed = tok.parse(text, strict=False, **kwargs)
        what = (f"kept the {int(parsed.counts)} well-formed item(s), dropped the rest" if hasattr(parsed, "counts")
                else "missing codes repeat the last one read, extra codes are dropped")
        print(f"perceptok: warning: the text is not well formed: {one_line(err).split('. Pass')[0]}; "
              f"read leniently ({what})", file=sys.stderr)
        return parsed
