"""The one registry of perception-token modalities.

Built-in tokenizers register themselves when their modules are imported, which the first read of
the registry does; third-party packages add theirs through the ``perceptok.tokenizers``
entry-point group::

    # in the third party's pyproject.toml
    [project.entry-points."perceptok.tokenizers"]
    heatmap = "my_package.heatmap:HeatmapTokenizer"

Entry points are loaded the first time the registry is read.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Callable, TypeVar

from perceptok.errors import PerceptokError

if TYPE_CHECKING:
    from perceptok.base import PerceptionTokenizer

ENTRY_POINT_GROUP = "perceptok.tokenizers"

T = TypeVar("T", bound="type[PerceptionTokenizer]")

_TOKENIZERS: dict[str, type[PerceptionTokenizer]] = {}
_entry_points_loaded = False
# The modules whose classes and presets register themselves, by tokenizer type and preset prefix,
# so that loading one modality imports only its module (the depth networks' libraries are slow).
BUILTINS = {
    "boxes": ("perceptok.boxes.tokenizer",),
    "points": ("perceptok.points.tokenizer",),
    "depth": ("perceptok.depth.tokenizer", "perceptok.depth.pooled"),
    "depth_vqvae": ("perceptok.depth.tokenizer",),
    "depth_pooled": ("perceptok.depth.pooled",),
}


def _load_builtin(name: str) -> bool:
    """Import the built-in module(s) behind a type or preset name; False if it names none."""
    modules = BUILTINS.get(name.split(":")[0])
    for module in modules or ():
        importlib.import_module(module)
    return modules is not None


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
    for name in BUILTINS:  # the built-ins first, so entry points never shadow them
        _load_builtin(name)
    _entry_points_loaded = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in _TOKENIZERS:
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
    return sorted(_TOKENIZERS)


def get_tokenizer_class(name: str) -> type[PerceptionTokenizer]:
    """The class registered under ``name``."""
    if not _load_builtin(name):
        _load_entry_points()
    if name not in _TOKENIZERS:
        raise PerceptokError(
            f"no tokenizer type {name!r}; registered: {sorted(_TOKENIZERS)}. Third-party types "
            f"must be installed and declare a {ENTRY_POINT_GROUP!r} entry point."
        )
    return _TOKENIZERS[name]


_PRESETS: dict[str, Callable[[], PerceptionTokenizer]] = {}


def register_preset(name: str, factory: Callable[[], PerceptionTokenizer]) -> None:
    """Make ``perceptok.load(name)`` build ``factory()``; names are ``type`` or ``type:variant``."""
    if name in _PRESETS:
        raise ValueError(f"a preset named {name!r} is already registered; choose another name")
    _PRESETS[name] = factory


def list_presets() -> list[str]:
    """Short names that ``perceptok.load`` accepts without a folder or the Hub."""
    _load_entry_points()
    return sorted(_PRESETS)


def build_preset(name: str) -> PerceptionTokenizer | None:
    """The packaged preset ``name``, or ``None`` if there is none."""
    if not _load_builtin(name):
        _load_entry_points()
    factory = _PRESETS.get(name)
    return factory() if factory is not None else None
