"""Errors that users of perceptok can catch by type.

Every error says what was expected, what came, and how to fix it (STYLE.md, rule 7).
"""

from __future__ import annotations


class PerceptokError(Exception):
    """Base class of the errors perceptok raises for user mistakes."""


class TokenParseError(PerceptokError, ValueError):
    """Token text that does not follow a tokenizer's grammar.

    Attributes:
        position: character offset into the text where parsing failed.
        expected: what the grammar allowed at that position.
        text: the text that was being parsed.
    """

    def __init__(self, text: str, position: int, expected: str):
        self.text = text
        self.position = position
        self.expected = expected
        snippet = text[position : position + 30]
        found = repr(snippet) if snippet else "the end of the text"
        super().__init__(
            f"malformed token text at character {position}: expected {expected}, found {found}. "
            "Pass strict=False to recover the well-formed parts of model output."
        )


class CheckpointError(PerceptokError, ValueError):
    """A saved tokenizer that cannot be loaded as it is (missing, corrupt or mismatched files)."""
