"""Typed tokenizer configs that serialise to ``config.json`` and refuse unknown keys."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, TypeVar

from perceptok.errors import CheckpointError

C = TypeVar("C", bound="TokenizerConfig")


def _lists(value: Any) -> Any:
    return [_lists(v) for v in value] if isinstance(value, (tuple, list)) else value


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, (tuple, list)) else value


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
            is_tuple = typing.get_origin(hints[key]) is tuple
            kwargs[key] = _tuples(value) if is_tuple else value
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as err:
            raise CheckpointError(f"{source}: invalid {cls.__name__}: {err}") from err
