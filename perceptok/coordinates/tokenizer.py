"""Shared machinery of the coordinate tokenizers (boxes and points).

Axis legend: ``B`` images in a batch, ``N`` items (boxes or points) per image, ``T`` tokens per
item, ``P`` points per item. A single image's items are ``(N, ...)``; a batch is a list of those
or one ``(B, N, ...)`` tensor, and its ids are padded with ``PAD_ID`` up to the largest ``N``.

The arithmetic is numpy's, on the CPU in float64, so that these tokenizers import no torch: ids
and items come back as torch tensors by default and as numpy arrays with
``return_tensors="np"`` (Hugging Face tokenizers' keyword), which is how ``perceptok encode
boxes`` starts in a fraction of a second.
"""

from __future__ import annotations

import abc
import re
import warnings
from collections.abc import Callable, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from perceptok.base import PerceptionTokenizer, TokenizerOutput
from perceptok.coordinates.config import PRESETS, CoordinateConfig, token_format_parts
from perceptok.coordinates.grammar import ItemGrammar
from perceptok.coordinates.layouts import LAYOUTS
from perceptok.coordinates.outputs import PAD_ID, CanvasSize, CoordinateEncoding, ReturnTensors, as_return_type, encoding, padded
from perceptok.coordinates.quantize import ids_to_points, points_to_ids, smart_resize
from perceptok.coordinates.render import TableRenderer
from perceptok.coordinates.validate import as_numpy, check_canvas, is_torch_tensor, item_canvases

if TYPE_CHECKING:
    from perceptok.coordinates.kernels import TextKernels

# Unlabelled batches of at least this many images take the compiled text kernels (``kernels.py``),
# whose first use costs about a second (importing numba, loading the compiled code).
COMPILED_FROM = 256


def _is_tensor_like(x: Any) -> bool:
    return isinstance(x, np.ndarray) or is_torch_tensor(x)


class CoordinateTokenizer(PerceptionTokenizer):
    """Base of ``BoxTokenizer`` and ``PointTokenizer``: quantisation, text, batching."""

    points_per_item: ClassVar[int]
    item_kind: ClassVar[str]  # "box" or "point"
    input_width: ClassVar[int]  # numbers per input item: 4 for boxes, 2 for points

    def __init__(self, config: CoordinateConfig | None = None):
        super().__init__(config if config is not None else self.config_class())
        cfg: CoordinateConfig = self.config  # type: ignore[assignment]
        layout = LAYOUTS[cfg.layout]
        if self.item_kind not in layout.kinds:
            other = "BoxTokenizer" if self.item_kind == "point" else "PointTokenizer"
            raise ValueError(f"the {cfg.layout} convention writes {' and '.join(layout.kinds)} items only, "
                             f"not {self.item_kind} items; use {other}")
        self._vocab = cfg.vocab()
        prefix, suffix = token_format_parts(cfg.token_format)
        self.grammar = ItemGrammar(layout, self._vocab, prefix, suffix, cfg.decimals, self.points_per_item,
                                   cfg.tokens_per_point, self.item_kind)
        # Far corners: the second point of a box (the grid quantiser rounds them differently).
        self._far = np.arange(self.points_per_item) == 1

    @classmethod
    def from_preset(cls, name: str, **overrides: Any):
        """A tokenizer following one system's convention: one of ``PRESETS``."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        return cls(cls.config_class(preset=name, **{**PRESETS[name], **overrides}))

    @property
    def vocab(self) -> list[str]:
        return self._vocab

    @cached_property
    def _renderer(self) -> TableRenderer:
        return TableRenderer(self.grammar)

    @cached_property
    def _kernels(self) -> TextKernels | None:
        """Compiled text of unlabelled batches, checked against the tables on first use; None
        without numba, for a template that cannot be read run by run, or (with a warning) where
        the kernels fail to compile or disagree: then batches are rendered from tables and
        parsed text by text."""
        try:
            from perceptok.coordinates.kernels import TextKernels
        except (ImportError, RuntimeError):  # numba missing, not built for this Python, or no cache folder
            return None
        try:
            return TextKernels.checked(self._renderer)
        except Exception as err:  # an accelerator: it may never cost a result
            warnings.warn(f"compiled box and point text is off ({type(err).__name__}: {err}); "
                          "large batches are rendered from tables and parsed text by text", RuntimeWarning)
            return None

    def _compiled(self, images: int) -> TextKernels | None:
        return self._kernels if images >= COMPILED_FROM else None

    @property
    def textual(self) -> bool:
        """Whether the convention writes coordinates as plain numbers (JSON, digits, decimals):
        an LM reads and writes it as ordinary text, with no tokens to add."""
        return self.config.textual

    @property
    def special_tokens(self) -> list[str]:
        """The coordinate tokens, and the layout's tag-like literals (Kosmos-2's ``<object>``,
        ``</object>``, ``<phrase>``, ``</phrase>``), which an LM must know as single tokens for a
        constraint to enforce them; none for a textual convention."""
        if self.textual:
            return []
        L = self.grammar.layout
        opener, closer = L.item_delimiters(self.item_kind)
        literals = [opener, closer, *L.label.split("{0}")]
        tags = [t.strip() for t in literals if re.fullmatch(r"</?[A-Za-z_]+>", t.strip())]
        return [*super().special_tokens, *dict.fromkeys(tags)]

    @property
    def tokens_per_item(self) -> int:
        return self.grammar.arity

    # --- input handling (subclasses turn raw items into normalised points) -------------------

    @abc.abstractmethod
    def _read(self, items: Any, canvas_size: CanvasSize | None, name: Callable[[int], str],
              **kwargs: Any) -> tuple[np.ndarray, CanvasSize | None]:
        """One image's items → ``(N, input_width)`` float64, finite, in the form ``_to_points``
        takes (boxes as x1 y1 x2 y2), and the image's canvas (the items' own where they carry
        one). ``name(i)`` names item ``i`` in an error."""

    @abc.abstractmethod
    def _to_points(self, items: np.ndarray, canvas: np.ndarray | None, clip: bool, name: Callable[[int], str]) -> np.ndarray:
        """``_read``'s items of any number of images, joined ``(M, input_width)`` → ``(M, P, 2)``
        normalised x, y in [0, 1], validated (float64), in a few array operations. ``canvas``:
        each item's ``(M, 2)`` (H, W) (``validate.item_canvases``), or None."""

    def _is_batch(self, x: Any) -> bool:
        if _is_tensor_like(x):
            return x.ndim == 3
        if isinstance(x, Sequence) and len(x) > 0:
            first = x[0]
            return _is_tensor_like(first) or (
                isinstance(first, Sequence) and (len(first) == 0 or isinstance(first[0], Sequence))
            )
        return False

    # --- encode / decode ---------------------------------------------------------------------

    def encode(
        self,
        x: Any,
        *,
        canvas_size: CanvasSize | Sequence[CanvasSize] | None = None,
        labels: Sequence[Any] | None = None,
        clip: bool = False,
        return_tensors: ReturnTensors = "pt",
        **kwargs: Any,
    ) -> CoordinateEncoding:
        """Items → ids.

        Args:
            x: one image's items ``(N, input_width)``, or a batch (a list of those or a
                ``(B, N, input_width)`` tensor). Torch tensors, numpy arrays, nested lists.
            canvas_size: ``(H, W)`` of the image for absolute pixel coordinates (one for all
                images, or one per image); ``None`` for coordinates normalised to [0, 1].
            labels: one optional label per item (per image in a batch).
            clip: clip coordinates outside the image onto its border instead of raising.
            return_tensors: ``"pt"`` for torch tensors, ``"np"`` for numpy arrays.
        """
        kind = self.item_kind
        if not self._is_batch(x):
            def name(i: int) -> str:
                return f"{kind} {i}"

            items, canvas = self._read(x, canvas_size, name, **kwargs)  # (N, W)
            canvas = check_canvas(canvas)
            points = self._to_points(items, item_canvases([canvas], [len(items)]), clip, name)  # (N, P, 2)
            ids = points_to_ids(points, self.config, self._far, self._sides(canvas))  # (N, T)
            if labels is not None:
                labels = self._check_labels(labels, len(ids))
            return encoding(ids, np.asarray(len(ids)), labels, return_tensors)
        # A batch: each image's items read on their own (its format, shape and canvas), then every
        # item of the batch validated, normalised and quantised together.
        images = list(as_numpy(x))
        read = [self._read(item, size, lambda i, b=b: f"{kind} {i} of image {b}", **kwargs)
                for b, (item, size) in enumerate(zip(images, self._batch_canvas_sizes(canvas_size, len(images))))]
        counts = np.array([len(items) for items, _ in read], dtype=np.int64)
        sizes = [check_canvas(size) for _, size in read]
        first = np.concatenate([[0], np.cumsum(counts)])  # each image's first item

        def in_batch(i: int) -> str:
            b = int(np.searchsorted(first, i, side="right")) - 1
            return f"{kind} {i - first[b]} of image {b}"

        joined = np.concatenate([items for items, _ in read]) if read else np.zeros((0, self.input_width))
        points = self._to_points(joined, item_canvases(sizes, counts), clip, in_batch)  # (sum N, P, 2)
        sides = None
        if self.config.quantization == "pixel":  # (sum N, 1, 2): each item's image's resized (W, H)
            per_size = {size: self._sides(size) for size in dict.fromkeys(sizes)}  # images share a few sizes
            sides = np.repeat(np.concatenate([per_size[size] for size in sizes]).reshape(-1, 1, 2), counts, axis=0) \
                if sizes else np.zeros((0, 1, 2))
        flat = points_to_ids(points, self.config, self._far, sides)  # (sum N, T)
        ids = padded(flat, counts, self.tokens_per_item)
        if labels is not None:
            if len(labels) != len(counts):
                raise ValueError(f"got labels for {len(labels)} images but {len(counts)} images")
            labels = [self._check_labels(lab, int(n)) for lab, n in zip(labels, counts)]
        return encoding(ids, counts, labels, return_tensors)

    def _sides(self, canvas_size: CanvasSize | None) -> np.ndarray | None:
        """``(1, 1, 2)`` (W, H) of the model input that a "pixel" preset writes coordinates in."""
        cfg: CoordinateConfig = self.config  # type: ignore[assignment]
        if cfg.quantization != "pixel":
            return None
        canvas = check_canvas(canvas_size)
        if canvas is None:
            raise ValueError(f"the {cfg.preset} preset writes pixels of the model's resized input, which depend on "
                             "the image size: pass canvas_size=(H, W) of the original image")
        h, w = smart_resize(max(round(canvas[0]), 1), max(round(canvas[1]), 1), *cfg.input_resize)
        if max(h, w) >= cfg.bins:
            raise ValueError(f"the resized input is {h}×{w}, beyond the {cfg.bins - 1} px this config's bins allow; "
                             "raise bins")
        return np.array([w, h], dtype=np.float64).reshape(1, 1, 2)

    def _check_labels(self, labels: Sequence[Any], n: int) -> list[str | None]:
        if isinstance(labels, str) or len(labels) != n:
            raise ValueError(f"expected a list of {n} labels (one per {self.item_kind}), got {labels!r}")
        return [None if lab is None else self.grammar.check_label(str(lab)) for lab in labels]

    @staticmethod
    def _batch_canvas_sizes(canvas_size: Any, n: int) -> list[CanvasSize | None]:
        if canvas_size is None:
            return [None] * n
        if len(canvas_size) == 2 and all(isinstance(v, (int, float, np.integer)) for v in canvas_size):
            return [tuple(canvas_size)] * n  # type: ignore[list-item]
        if len(canvas_size) != n:
            raise ValueError(f"got {len(canvas_size)} canvas sizes for {n} images; pass one (H, W) or one per image")
        return list(canvas_size)

    def _ids_array(self, ids: Any) -> np.ndarray:
        """Ids (an encoding, a tensor on any device, an array or nested lists) as int64 numpy,
        checked: ``(N, T)`` or ``(B, N, T)``, each a token id or ``PAD_ID``."""
        if isinstance(ids, TokenizerOutput):
            ids = ids.ids
        try:
            a = np.asarray(as_numpy(ids))
        except (TypeError, ValueError):  # ragged nested lists
            a = np.asarray(None)
        if a.dtype.kind not in "iub" or a.ndim not in (2, 3) or a.shape[-1] != self.tokens_per_item:
            raise ValueError(
                f"expected integer ids of shape (N, {self.tokens_per_item}) or "
                f"(B, N, {self.tokens_per_item}), got {a.dtype} {tuple(a.shape)}"
            )
        a = a.astype(np.int64, copy=False)
        if a.size:
            low, high = int(a.min()), int(a.max())
            if high >= self.config.num_tokens or low < PAD_ID or (low < 0 and ((a < 0) & (a != PAD_ID)).any()):
                raise ValueError(f"ids must lie in 0..{self.config.num_tokens - 1} (or be PAD_ID={PAD_ID})")
        return a

    def _points_from_ids(self, ids: np.ndarray, canvas_size: CanvasSize | None) -> np.ndarray:
        """``(N, T)`` ids → ``(N, P, 2)`` x, y in pixels of ``canvas_size`` or normalised."""
        canvas = check_canvas(canvas_size)
        points = ids_to_points(ids, self.config, self._sides(canvas))
        if canvas is not None:
            h, w = canvas
            points = points * np.array([w, h])
        return points

    @abc.abstractmethod
    def _items_from_points(self, points: np.ndarray, **kwargs: Any) -> np.ndarray:
        """``(N, P, 2)`` decoded x, y → the ``(N, input_width)`` items that ``decode`` returns."""

    def decode(
        self,
        ids: Any,
        *,
        canvas_size: CanvasSize | Sequence[CanvasSize] | None = None,
        return_tensors: ReturnTensors = "pt",
        **kwargs: Any,
    ) -> Any:
        """Ids → items (float32), in pixels of ``canvas_size`` or normalised to [0, 1].

        ``(N, T)`` ids give an ``(N, input_width)`` tensor; ``(B, N, T)`` ids give a list of
        ``(N_b, input_width)`` tensors, padding rows dropped. ``canvas_size`` is one ``(H, W)``
        or one per image; ``return_tensors="np"`` gives numpy arrays.
        """
        ids = self._ids_array(ids)
        if ids.ndim == 2:
            return as_return_type(self._items_from_points(self._points_from_ids(ids, canvas_size), **kwargs), return_tensors)
        sizes = self._batch_canvas_sizes(canvas_size, len(ids))
        return [
            as_return_type(self._items_from_points(self._points_from_ids(rows[(rows != PAD_ID).all(-1)], size), **kwargs),
                return_tensors)
            for rows, size in zip(ids, sizes)
        ]

    # --- text --------------------------------------------------------------------------------

    def to_text(self, ids: Any, labels: Sequence[Any] | None = None) -> str | list[str]:
        """Token text of one image's items (a string) or of a batch (a list of strings).

        ``ids`` as ``decode`` takes them. Labels come from ``labels`` or, when ``ids`` is an
        encoding, from its labels. A batch is written at once from lookup tables of token strings
        (``render.TableRenderer``).
        """
        if labels is None and isinstance(ids, CoordinateEncoding):
            labels = ids.labels
        ids = self._ids_array(ids)
        single = ids.ndim == 2
        rows = ids[None] if single else ids  # (B, N, T)
        kernels = self._compiled(len(rows)) if labels is None else None
        if kernels is not None:
            return kernels.write(rows, PAD_ID)
        if rows.size == 0 or rows.min() > PAD_ID:  # no padding: one pass instead of a mask
            counts = np.full(len(rows), rows.shape[1])
            flat = rows.reshape(-1, rows.shape[-1])  # (M, T), image order
        else:
            keep = (rows != PAD_ID).all(-1)  # (B, N)
            counts = keep.sum(-1)
            flat = rows[keep]
        item_labels = None
        if labels is not None:
            per_image = [labels] if single else list(labels)
            if len(per_image) != len(counts):
                raise ValueError(f"got labels for {len(per_image)} images but ids of {len(counts)}")
            item_labels = []
            for lab, n in zip(per_image, counts.tolist()):
                item_labels += self._check_labels(lab, n)
        texts = self._renderer.render(flat, counts, item_labels)
        return texts[0] if single else texts

    def parse(self, text: str | Sequence[str], strict: bool = True,
              return_tensors: ReturnTensors = "pt") -> CoordinateEncoding:
        """Token text → ids, counts and labels (one string, or a list of strings as a batch).

        A strict batch of canonical unlabelled texts (what ``to_text`` writes) is read at once
        (``kernels.TextKernels``); anything else is parsed text by text.
        """
        if isinstance(text, str):
            items, labels = self.grammar.parse(text, strict)
            ids = np.array(items, dtype=np.int64).reshape(len(items), self.tokens_per_item)
            return encoding(ids, np.asarray(len(items)),
                             labels if any(lab is not None for lab in labels) else None, return_tensors)
        texts = list(text)
        kernels = self._compiled(len(texts)) if strict else None
        fast = kernels.read(texts) if kernels is not None else None
        if fast is not None:
            flat, counts = fast[0], fast[1].astype(np.int64)
            return encoding(padded(flat, counts, self.tokens_per_item), counts, None, return_tensors)
        singles = [self.parse(t, strict, return_tensors="np") for t in texts]
        counts = np.array([s.counts for s in singles], dtype=np.int64)
        ids = padded(np.concatenate([s.ids for s in singles]) if singles else np.zeros((0, self.tokens_per_item)),
                      counts, self.tokens_per_item)
        has_labels = any(s.labels is not None for s in singles)
        labels = [s.labels or [None] * int(s.counts) for s in singles] if has_labels else None
        return encoding(ids, counts, labels, return_tensors)

    def from_text(self, text: str | Sequence[str], strict: bool = True, return_tensors: ReturnTensors = "pt") -> Any:
        return self.parse(text, strict, return_tensors).ids
