"""Files of a saved tokenizer: ``config.json``, ``model.safetensors`` and the ``README.md`` card.

Writes are atomic (a temporary file in the same folder, then ``os.replace``), so a crash never
leaves a half-written checkpoint. Reads are strict and every failure names the file. Torch and
safetensors are imported where weights are read or written, so tokenizers without weights (boxes,
points) save and load without them.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import struct
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from perceptok.errors import CheckpointError

if TYPE_CHECKING:
    import torch

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
CHECKPOINT_FILES = {CONFIG_NAME, WEIGHTS_NAME, CARD_NAME}

# "owner/name" as the Hub spells repository ids.
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def atomic_write(path: Path, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` and move the result onto ``path`` only once it is complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_folder(path: Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_folder)`` and put the finished folder at ``path`` (replacing one that is
    there) by renames, so ``path`` is never a half-written folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        write(tmp)
        replace_folder(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def replace_folder(finished: Path, path: Path) -> None:
    """Put the folder ``finished`` at ``path`` (in the same folder), replacing one that is there, by
    renames: a crash between them leaves the previous folder whole in ``.NAME.*.old/NAME``
    (``replaced_folders``), never a half-written one at ``path``."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(finished, 0o777 & ~umask)  # mkdtemp makes 0700 folders
    if path.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
        os.replace(path, old / path.name)
        os.replace(finished, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(finished, path)


def move_into(finished: Path, folder: Path, last: str) -> None:
    """Move every file and folder of ``finished`` into ``folder`` by renames (a folder by
    ``replace_folder``), replacing what is there, and ``last`` after all the others, then remove
    ``finished``. ``folder``'s old ``last`` goes first: a reader never sees a half-written file,
    and finds ``last`` only beside a whole set (a crash halfway leaves no ``last``)."""
    (folder / last).unlink(missing_ok=True)
    for entry in sorted(finished.iterdir(), key=lambda p: p.name == last):
        if entry.is_dir():
            replace_folder(entry, folder / entry.name)
        else:
            os.replace(entry, folder / entry.name)
    finished.rmdir()


def replaced_folders(path: Path) -> list[Path]:
    """``path`` if it is there, then the copies ``replace_folder`` set aside (newest first): what a
    reader looks for after a crash."""
    aside = sorted(path.parent.glob(f".{path.name}.*.old/{path.name}"), key=lambda p: p.stat().st_mtime, reverse=True)
    return ([path] if path.is_dir() else []) + aside


def write_text(path: Path, text: str) -> None:
    def write(tmp: str) -> None:
        Path(tmp).write_text(text, encoding="utf-8")

    atomic_write(path, write)


def tensors_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """A hash of named tensors (names, dtypes, shapes and bytes), independent of their device."""
    import torch

    digest = hashlib.sha256()
    for key, tensor in sorted(tensors.items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_checkpoint(
    folder: Path, config: dict[str, Any], tensors: dict[str, torch.Tensor], card: str
) -> None:
    """Write a checkpoint folder. ``config.json`` records a hash of the weights, which loading
    checks, so weights and config of two different saves never load together.

    A new folder, or one that holds only checkpoint files, is written whole and swapped in by
    renames (``atomic_folder``): a crash leaves the previous checkpoint as it was. A folder with
    other files in it is updated file by file (each file atomically), weights first."""
    contiguous = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    config = {**config, "weights_sha256": tensors_sha256(contiguous)} if contiguous else dict(config)

    def write(target: Path) -> None:
        weights = target / WEIGHTS_NAME
        if contiguous:
            from safetensors.torch import save_file

            atomic_write(weights, lambda tmp: save_file(contiguous, tmp, metadata={"format": "pt"}))
        elif weights.exists():
            weights.unlink()
        write_text(target / CONFIG_NAME, json.dumps(config, indent=2, sort_keys=True) + "\n")
        write_text(target / CARD_NAME, card)

    if not folder.exists() or {p.name for p in folder.iterdir()} <= CHECKPOINT_FILES:
        atomic_folder(folder, write)
    else:
        folder.mkdir(parents=True, exist_ok=True)
        write(folder)


def check_weights_hash(config: dict[str, Any], tensors: dict[str, torch.Tensor], source: str) -> None:
    """Refuse weights whose hash differs from the one ``config.json`` recorded at saving."""
    recorded = config.get("weights_sha256")
    if recorded is not None and recorded != tensors_sha256(tensors):
        raise CheckpointError(
            f"{source} does not hold the weights its config.json was saved with (their hash differs): "
            "the folder mixes two saves, e.g. after a crash while saving; save the tokenizer again")


def read_config(folder: Path) -> dict[str, Any]:
    path = folder / CONFIG_NAME
    if not path.is_file():
        raise CheckpointError(
            f"{path} not found: a perceptok checkpoint folder holds {CONFIG_NAME} "
            "(written by save_pretrained)"
        )
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path} is not valid JSON ({err}); re-save the tokenizer") from err
    if not isinstance(config, dict):
        raise CheckpointError(f"{path} must hold a JSON object, found {type(config).__name__}")
    return config


def read_weights(folder: Path) -> dict[str, torch.Tensor] | None:
    """The tensors of ``model.safetensors``, or ``None`` where the folder has none."""
    path = folder / WEIGHTS_NAME
    if not path.exists():
        return None
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path} is not a readable safetensors file ({err})") from err


def weights_numel(folder: Path) -> int:
    """How many numbers ``model.safetensors`` holds (0 where the folder has none), read from the
    file's header alone (an 8-byte little-endian length, then JSON with each tensor's shape)."""
    path = folder / WEIGHTS_NAME
    if not path.exists():
        return 0
    try:
        with open(path, "rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            if length > 100_000_000:  # safetensors' own limit on the header
                raise ValueError(f"a header of {length} bytes")
            header = json.loads(f.read(length))
        return sum(math.prod(entry["shape"]) for key, entry in header.items() if key != "__metadata__")
    except (OSError, struct.error, ValueError, KeyError, TypeError, AttributeError) as err:
        raise CheckpointError(f"{path} is not a readable safetensors file ({err})") from err


def check_tensors(
    expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor], source: str
) -> None:
    """Refuse missing or extra tensors and tensors whose shape differs from ``expected``."""
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    wrong = [
        f"{k}: expected {tuple(expected[k].shape)}, found {tuple(found[k].shape)}"
        for k in sorted(set(expected) & set(found))
        if expected[k].shape != found[k].shape
    ]
    problems = []
    if missing:
        problems.append(f"missing tensors {missing}")
    if extra:
        problems.append(f"unexpected tensors {extra}")
    if wrong:
        problems.append("wrong shapes (" + "; ".join(wrong) + ")")
    if problems:
        raise CheckpointError(
            f"{source} does not match the tokenizer its config.json describes: "
            + ", ".join(problems)
            + ". The weights come from another config; save them again with save_pretrained."
        )


def resolve_folder(
    name_or_path: str | os.PathLike,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    token: str | bool | None = None,
) -> Path:
    """A local folder holding the checkpoint: the path itself, or a Hub snapshot in the cache.

    Hub downloads go through ``huggingface_hub.snapshot_download``, so ``HF_HUB_OFFLINE=1``
    serves them from the local cache without touching the network.
    """
    path = Path(name_or_path)
    if path.is_dir():
        return path
    if path.exists():
        raise CheckpointError(f"{path} is a file; pass the folder that holds {CONFIG_NAME}")
    name = str(name_or_path)
    if not _REPO_ID.match(name):
        raise CheckpointError(
            f"{name!r} is neither an existing folder nor a Hub repository id like 'owner/name'"
        )
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        folder = snapshot_download(
            name,
            revision=revision,
            cache_dir=cache_dir,
            token=token,
            allow_patterns=list(CHECKPOINT_FILES),
            library_name="perceptok",
        )
    except LocalEntryNotFoundError as err:
        raise CheckpointError(
            f"{name!r} (revision {revision or 'main'}) is not in the local Hugging Face cache and "
            "the Hub cannot be reached (HF_HUB_OFFLINE set or no network); download it once "
            "with network access or pass a local folder"
        ) from err
    except HfHubHTTPError as err:
        raise CheckpointError(f"could not fetch {name!r} from the Hub: {err}") from err
    return Path(folder)
