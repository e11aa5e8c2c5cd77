"""Config and presets shared by the box and point tokenizers.

Each preset follows the documented convention of one system (``REFERENCE.md``, "Box conventions
elsewhere"). Coordinates are normalised to [0, 1] by the image size before quantisation, so a
preset's tokens do not depend on the image resolution.
"""

from __future__ import annotations

import dataclasses
import string

from perceptok.config import TokenizerConfig
from perceptok.coordinates.grammar import LAYOUTS

QUANTIZATIONS = ("round", "floor", "grid")
ORDERS = ("xy", "yx")


def token_format_parts(token_format: str) -> tuple[str, str]:
    """The literal text before and after the one number field of ``token_format``."""
    parts = list(string.Formatter().parse(token_format))
    fields = [p for p in parts if p[1] is not None]
    if len(fields) != 1 or fields[0][1] not in ("", "0"):
        raise ValueError(
            f"token_format {token_format!r} must hold exactly one positional field, "
            "like '<PIXEL_{}>' or '<loc{:04d}>'"
        )
    prefix = "".join(p[0] for p in parts[: parts.index(fields[0]) + 1])
    suffix = "".join(p[0] for p in parts[parts.index(fields[0]) + 1 :])
    return prefix, suffix


@dataclasses.dataclass(frozen=True)
class CoordinateConfig(TokenizerConfig):
    # Name of the convention this config follows ("custom" for a hand-made one); shown in cards.
    preset: str = "aurora"
    # Quantisation levels per axis; with quantization="grid", the number of cells per axis.
    bins: int = 336
    # "round": q = round(v·(bins−1)), decoded q/(bins−1), end points exact (AURORA, PaliGemma, Qwen2-VL);
    # "floor": q = min(floor(v·bins), bins−1), decoded at the bin centre (q+0.5)/bins (Florence-2);
    # "grid": one token per cell of a bins×bins grid, id = row·bins + col, decoded at the
    # cell centre; a box's far corner takes the last cell it covers (Kosmos-2).
    quantization: str = "round"
    # Axis order inside a point: "xy" gives boxes as x1 y1 x2 y2, "yx" as y1 x1 y2 x2 (PaliGemma).
    order: str = "xy"
    # Token string of coordinate id q, a str.format pattern: "<PIXEL_{}>", "<loc{:04d}>", "{}".
    token_format: str = "<PIXEL_{}>"
    # Text grammar around coordinate tokens and labels: one of grammar.LAYOUTS.
    layout: str = "aurora"

    def __post_init__(self) -> None:
        if not isinstance(self.bins, int) or self.bins < 2:
            raise ValueError(f"bins must be an integer ≥ 2, got {self.bins!r}")
        if self.quantization not in QUANTIZATIONS:
            raise ValueError(f"quantization must be one of {QUANTIZATIONS}, got {self.quantization!r}")
        if self.order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, got {self.order!r}")
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {sorted(LAYOUTS)}, got {self.layout!r}")
        token_format_parts(self.token_format)
        if self.token_format.format(0) == self.token_format.format(1):
            raise ValueError(f"token_format {self.token_format!r} gives the same string for every id")

    @property
    def tokens_per_point(self) -> int:
        """1 for a grid cell token, else one token per axis."""
        return 1 if self.quantization == "grid" else 2

    @property
    def num_tokens(self) -> int:
        return self.bins * self.bins if self.quantization == "grid" else self.bins


PRESETS: dict[str, dict[str, object]] = {
    # AURORA: one token per integer pixel of the 336×336 resized image, x first.
    "aurora": dict(bins=336, quantization="round", order="xy", token_format="<PIXEL_{}>", layout="aurora"),
    # PaliGemma: round(v/size × 1023), y before x.
    "paligemma": dict(bins=1024, quantization="round", order="yx", token_format="<loc{:04d}>", layout="paligemma"),
    # Florence-2: floor(v/(W/1000)), decoded at (q+0.5)·W/1000.
    "florence2": dict(bins=1000, quantization="floor", order="xy", token_format="<loc_{}>", layout="florence2"),
    # Kosmos-2: top-left and bottom-right cells of a 32×32 grid.
    "kosmos2": dict(bins=32, quantization="grid", order="xy", token_format="<patch_index_{:04d}>", layout="kosmos2"),
    # Qwen2-VL: integers 0..1000 relative to the image, written as plain digits.
    "qwen2vl": dict(bins=1001, quantization="round", order="xy", token_format="{}", layout="qwen2vl"),
}
