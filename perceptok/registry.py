"""The one registry of perception-token modalities.

Built-in tokenizers register themselves when their modules are imported, which the first use of
their type does (``BUILTIN_TYPES``); built-in presets are declared by light modules
(``PRESET_MODULES``); third-party packages add theirs through the ``perceptok.tokenizers``
entry-point group::

    # in the third party's pyproject.toml
    [project.entry-points."perceptok.tokenizers"]
    heatmap = "my_package.heatmap:HeatmapTokenizer"

Entry points are loaded the first time the registry is read.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from perceptok.errors import PerceptokError

if TYPE_CHECKING:
    from perceptok.base import PerceptionTokenizer

ENTRY_POINT_GROUP = "perceptok.tokenizers"

T = TypeVar("T", bound="type[PerceptionTokenizer]")

_TOKENIZERS: dict[str, type[PerceptionTokenizer]] = {}
_entry_points_loaded = False
# The built-in tokenizer types and the modules whose classes register them, imported on first use
# so that one modality never pays for another's libraries (the depth networks' are slow).
BUILTIN_TYPES = {
    "boxes": "perceptok.boxes.tokenizer",
    "points": "perceptok.points.tokenizer",
    "depth_vqvae": "perceptok.depth.tokenizer",
    "depth_pooled": "perceptok.depth.pooled",
}
# Built-in types whose tokenizers import torch, with the torch-free class of their configs, whose
# ``vocab()``, ``start_token`` and ``end_token`` are the tokenizer's: ``perceptok info`` describes
# them from config.json alone. Type: (tokenizer class name, config module, config class name).
CONFIG_CLASSES = {
    "depth_vqvae": ("DepthTokenizer", "perceptok.depth.config", "DepthTokenizerConfig"),
    "depth_pooled": ("PooledDepthTokenizer", "perceptok.depth.config", "PooledDepthConfig"),
}
# Modules that declare the built-in presets. They import no torch (a preset's factory imports its
# class when it is built), so listing presets is instant.
PRESET_MODULES = ("perceptok.coordinates.presets", "perceptok.depth.presets")


def _load_builtin_presets() -> None:
    for module in PRESET_MODULES:
        importlib.import_module(module)


def register_tokenizer(name: str) -> Callable[[T], T]:
    """Class decorator that registers a tokenizer class under ``name``; duplicates are refused."""

    def decorator(cls: T) -> T:
        if not name or not name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"tokenizer name {name!r} must be non-empty letters, digits, '_' or '-'")
        if name in _TOKENIZERS and _TOKENIZERS[name] is not cls:
            raise ValueError(
                f"a tokenizer named {name!r} is already registered ({_TOKENIZERS[name].__qualname__}); "
                "choose another name"
            )
        cls.tokenizer_type = name
        _TOKENIZERS[name] = cls
        return cls

    return decorator


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in _TOKENIZERS or ep.name in BUILTIN_TYPES:  # entry points never shadow built-ins
            continue
        cls = ep.load()
        register_tokenizer(ep.name)(cls)


def reload_entry_points() -> None:
    """Look for newly installed third-party modalities again."""
    global _entry_points_loaded
    _entry_points_loaded = False
    _load_entry_points()


def list_tokenizers() -> list[str]:
    """Names of every registered tokenizer type, built-in and third-party, sorted."""
    _load_entry_points()
    return sorted(set(_TOKENIZERS) | set(BUILTIN_TYPES))


def get_tokenizer_class(name: str) -> type[PerceptionTokenizer]:
    """The class registered under ``name``."""
    if name in BUILTIN_TYPES:
        importlib.import_module(BUILTIN_TYPES[name])
    elif name not in _TOKENIZERS:
        _load_entry_points()
    if name not in _TOKENIZERS:
        raise PerceptokError(
            f"no tokenizer type {name!r}; registered: {list_tokenizers()}. Third-party types "
            f"must be installed and declare a {ENTRY_POINT_GROUP!r} entry point."
        )
    return _TOKENIZERS[name]


_PRESETS: dict[str, Callable[[], PerceptionTokenizer]] = {}
_DESCRIBERS: dict[str, Callable[[], dict[str, Any]]] = {}


def register_preset(name: str, factory: Callable[[], PerceptionTokenizer],
                    describe: Callable[[], dict[str, Any]] | None = None) -> None:
    """Make ``perceptok.load(name)`` build ``factory()``; names are ``type`` or ``type:variant``.
    ``describe``: what ``describe(factory())`` gives, computed without building the tokenizer
    (``perceptok info`` then imports no torch)."""
    _load_builtin_presets()  # so that a built-in name is taken whoever registers first
    if name in _PRESETS:
        raise ValueError(f"a preset named {name!r} is already registered; choose another name")
    _PRESETS[name] = factory
    if describe is not None:
        _DESCRIBERS[name] = describe


def describe_preset(name: str) -> dict[str, Any] | None:
    """The description of preset ``name`` where it has one that needs no tokenizer, else None."""
    _load_builtin_presets()
    describe = _DESCRIBERS.get(name)
    return describe() if describe is not None else None


def list_presets() -> list[str]:
    """Short names that ``perceptok.load`` accepts without a folder or the Hub."""
    _load_builtin_presets()
    _load_entry_points()
    return sorted(_PRESETS)


def build_preset(name: str) -> PerceptionTokenizer | None:
    """The packaged preset ``name``, or ``None`` if there is none."""
    _load_builtin_presets()
    if name not in _PRESETS:
        _load_entry_points()
    factory = _PRESETS.get(name)
    return factory() if factory is not None else None
