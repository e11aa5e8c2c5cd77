"""The interface every perception-token modality implements.

A tokenizer turns a structure (a depth map, a set of boxes, …) into ids in ``[0, vocab_size)``
and back, and renders ids as the token text that a language model reads or writes. Local id ``i``
is the string ``vocab[i]``; an LM plugin maps local ids to its own ids.

Save/load/push follow huggingface_hub's ``PyTorchModelHubMixin``: three public methods over two
small hooks (``state_tensors`` and ``load_state_tensors``), but loading is strict.
"""

from __future__ import annotations

import abc
import dataclasses
import os
import tempfile
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from perceptok import checkpoint
from perceptok.config import TokenizerConfig
from perceptok.describe import saved_config, split_saved
from perceptok.errors import CheckpointError
from perceptok.registry import get_tokenizer_class

if TYPE_CHECKING:
    import torch


@dataclasses.dataclass
class TokenizerOutput:
    """What ``encode`` returns; each modality extends it with what decoding needs.

    Attributes:
        ids: local token ids, batch first, ``torch.long``.
    """

    ids: torch.Tensor


class PerceptionTokenizer(abc.ABC):
    """Abstract base of every perception tokenizer.

    Subclasses set ``config_class``, are registered with ``@register_tokenizer(name)`` and
    implement ``vocab``, ``encode``, ``decode``, ``to_text`` and ``from_text``. Tokenizers with
    learned weights also override ``state_tensors`` and ``load_state_tensors``.
    """

    tokenizer_type: ClassVar[str] = ""  # set by @register_tokenizer
    config_class: ClassVar[type[TokenizerConfig]]

    def __init__(self, config: TokenizerConfig):
        if not isinstance(config, self.config_class):
            raise TypeError(
                f"{type(self).__name__} takes a {self.config_class.__name__}, got {type(config).__name__}"
            )
        self.config = config
        # Extra (title, markdown) sections for the model card, e.g. how the weights were trained.
        self.card_sections: list[tuple[str, str]] = []

    # --- vocabulary -------------------------------------------------------------------------

    @property
    @abc.abstractmethod
    def vocab(self) -> list[str]:
        """Token strings; local id ``i`` is ``vocab[i]``."""

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    @property
    def start_token(self) -> str | None:
        """The token that opens a span of this modality, where it has one."""
        return None

    @property
    def end_token(self) -> str | None:
        """The token that closes a span of this modality, where it has one."""
        return None

    @property
    def special_tokens(self) -> list[str]:
        """Every string an LM must know as one token: the vocabulary and the delimiters."""
        extra = [t for t in (self.start_token, self.end_token) if t is not None]
        return list(self.vocab) + extra

    @cached_property
    def token_to_id(self) -> dict[str, int]:
        return {token: i for i, token in enumerate(self.vocab)}

    # --- tokenization -----------------------------------------------------------------------

    @abc.abstractmethod
    def encode(self, x: Any, **kwargs: Any) -> TokenizerOutput:
        """Structure → ids. A single input gives unbatched ids, a batch gives ids batch first."""

    @abc.abstractmethod
    def decode(self, ids: torch.Tensor, **kwargs: Any) -> Any:
        """Ids → the structure back."""

    @abc.abstractmethod
    def to_text(self, ids: torch.Tensor | TokenizerOutput, **kwargs: Any) -> str | list[str]:
        """Ids → token text: one string for a single item, a list for a batch."""

    @abc.abstractmethod
    def from_text(self, text: str | list[str], strict: bool = True) -> torch.Tensor:
        """Token text → ids. Strict by default (``TokenParseError`` on malformed text);
        ``strict=False`` recovers what it can from real model output."""

    # --- weights (hooks) --------------------------------------------------------------------

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Tensors saved to ``model.safetensors``; empty for tokenizers without weights."""
        return {}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Copy checked tensors (same names and shapes as ``state_tensors``) into the tokenizer."""

    # --- persistence ------------------------------------------------------------------------

    def config_dict(self) -> dict[str, Any]:
        """What ``config.json`` holds: the type, the library version and the config fields."""
        return saved_config(self.tokenizer_type, self.config)

    def model_card(self) -> str:
        """The generated ``README.md`` of a saved tokenizer."""
        from perceptok.model_card import render_model_card

        return render_model_card(self)

    def save_pretrained(self, save_directory: str | os.PathLike) -> Path:
        """Write ``config.json``, ``model.safetensors`` (where there are weights) and ``README.md``."""
        folder = Path(save_directory)
        checkpoint.save_checkpoint(folder, self.config_dict(), self.state_tensors(), self.model_card())
        return folder

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike,
        revision: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        token: str | bool | None = None,
    ) -> PerceptionTokenizer:
        """Load a saved tokenizer from a local folder or a Hub repository id.

        Called on ``PerceptionTokenizer`` (or ``AutoPerceptionTokenizer``) it builds whatever type
        the checkpoint names; called on a subclass it refuses checkpoints of another type.
        """
        folder = checkpoint.resolve_folder(name_or_path, revision, cache_dir, token)
        source = str(folder / checkpoint.CONFIG_NAME)
        saved_type, values, recorded_hash = split_saved(checkpoint.read_config(folder), source)
        target = get_tokenizer_class(saved_type)
        if cls is not PerceptionTokenizer and not issubclass(target, cls):
            raise CheckpointError(
                f"{source} holds a {saved_type!r} tokenizer, not a {cls.tokenizer_type!r} one; "
                "load it with AutoPerceptionTokenizer.from_pretrained"
            )
        tokenizer = target(target.config_class.from_dict(values, source=source))
        expected = tokenizer.state_tensors()
        found = checkpoint.read_weights(folder)
        weights_path = str(folder / checkpoint.WEIGHTS_NAME)
        if not expected:
            if found is not None:
                raise CheckpointError(
                    f"{weights_path} exists but a {saved_type!r} tokenizer has no weights; "
                    "the folder mixes two checkpoints"
                )
            return tokenizer
        if found is None:
            raise CheckpointError(f"{weights_path} is missing; a {saved_type!r} tokenizer needs its weights")
        checkpoint.check_tensors(expected, found, weights_path)
        checkpoint.check_weights_hash({"weights_sha256": recorded_hash}, found, weights_path)
        tokenizer.load_state_tensors(found)
        return tokenizer

    def push_to_hub(
        self,
        repo_id: str,
        *,
        private: bool | None = None,
        token: str | None = None,
        revision: str | None = None,
        commit_message: str = "Upload perceptok tokenizer",
        create_pr: bool = False,
    ) -> Any:
        """Create the repository if needed and upload what ``save_pretrained`` writes.

        Returns huggingface_hub's ``CommitInfo``.
        """
        from huggingface_hub import HfApi

        api = HfApi(token=token)
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        with tempfile.TemporaryDirectory() as tmp:
            self.save_pretrained(tmp)
            return api.upload_folder(
                repo_id=repo_id,
                folder_path=tmp,
                repo_type="model",
                revision=revision,
                commit_message=commit_message,
                create_pr=create_pr,
            )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config!r})"


class AutoPerceptionTokenizer:
    """Loads any saved tokenizer, dispatching on the ``tokenizer_type`` in its ``config.json``."""

    def __init__(self) -> None:
        raise TypeError("use AutoPerceptionTokenizer.from_pretrained(name_or_path)")

    @staticmethod
    def from_pretrained(
        name_or_path: str | os.PathLike,
        revision: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        token: str | bool | None = None,
    ) -> PerceptionTokenizer:
        """Load a folder or Hub id saved by any registered tokenizer type."""
        return PerceptionTokenizer.from_pretrained(
            name_or_path, revision=revision, cache_dir=cache_dir, token=token
        )
