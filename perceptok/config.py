"""Typed tokenizer configs that serialise to ``config.json`` and refuse unknown keys."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, TypeVar

from perceptok.errors import CheckpointError

C = TypeVar("C", bound="TokenizerConfig")


def _lists(value: Any) -> Any:
    return [_lists(v) for v in value] if isinstance(value, (tuple, list)) else value


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, (tuple, list)) else value


def _fits(value: Any, hint: Any) -> bool:
    """Whether a value read from JSON fits a field's type hint (ints for float fields too)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if hint is type(None):
        return value is None
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_fits(v, args[0]) for v in value)
        return len(value) == len(args) and all(_fits(v, a) for v, a in zip(value, args))
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint) if isinstance(hint, type) else True


@dataclasses.dataclass(frozen=True)
class TokenizerConfig:
    """Base of every tokenizer config.

    Subclasses are frozen dataclasses with a comment on each field and validation in
    ``__post_init__``. Tuples are stored as JSON lists and come back as tuples.
    """

    def to_dict(self) -> dict[str, Any]:
        """The config fields as JSON-ready values (tuples become lists)."""
        return {f.name: _lists(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls: type[C], values: dict[str, Any], source: str = "config") -> C:
        """Build a config from saved values; unknown keys are an error, missing keys take defaults."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise CheckpointError(
                f"{source}: unknown config keys {unknown} for {cls.__name__} "
                f"(known: {sorted(names)}). The file was written by another tokenizer type or a "
                "newer perceptok; upgrade perceptok or remove the keys."
            )
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for key, value in values.items():
            if not _fits(value, hints[key]):
                raise CheckpointError(f"{source}: {key} must be {_name(hints[key])}, got {value!r}; "
                                      "the file was edited or written by something else: re-save the tokenizer")
            kwargs[key] = _tuples(value) if isinstance(value, list) else value
        try:
            return cls(**kwargs)
        except (TypeError, ValueError, AttributeError, IndexError, KeyError) as err:
            raise CheckpointError(f"{source}: invalid {cls.__name__}: {err}") from err


def _name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
