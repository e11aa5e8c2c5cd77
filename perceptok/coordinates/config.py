"""Config and presets shared by the box and point tokenizers.

Each preset follows the documented convention of one system (``REFERENCE.md``, "Box conventions
elsewhere"; the source of each is cited beside it). Coordinates are normalised to [0, 1] by the
image size before quantisation, so a preset's text does not depend on the image resolution, except
Qwen2.5-VL's, which writes pixels of the image its processor resizes to (``quantization="pixel"``).
"""

from __future__ import annotations

import dataclasses
import string

from perceptok.config import TokenizerConfig
from perceptok.coordinates.layouts import LAYOUTS

QUANTIZATIONS = ("round", "floor", "grid", "pixel")
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
    # cell centre; a box's far corner takes the last cell it covers (Kosmos-2);
    # "pixel": q = round(v·S) on the S-pixel side of the model's resized input, decoded q/S
    # (Qwen2.5-VL); encode and decode need the image's canvas_size.
    quantization: str = "round"
    # Axis order inside a point: "xy" gives boxes as x1 y1 x2 y2, "yx" as y1 x1 y2 x2 (PaliGemma).
    order: str = "xy"
    # Token string of coordinate id q, a str.format pattern: "<PIXEL_{}>", "<loc{:04d}>", "{}".
    token_format: str = "<PIXEL_{}>"
    # Text grammar around coordinate tokens and labels: one of layouts.LAYOUTS.
    layout: str = "aurora"
    # Digits after the decimal point of a coordinate's text, id q written q / 10**decimals:
    # Shikra writes 0.123 (3, bins 1001), Molmo 12.3 percent (1, bins 1001). 0: integers.
    decimals: int = 0
    # (factor, min_pixels, max_pixels) of the model processor's smart_resize, which the "pixel"
    # quantisation writes coordinates in (Qwen2.5-VL: 28, 4·28², 16384·28²); None otherwise.
    input_resize: tuple[int, int, int] | None = None

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
        if not isinstance(self.decimals, int) or not 0 <= self.decimals <= 6:
            raise ValueError(f"decimals must be an integer from 0 to 6, got {self.decimals!r}")
        try:
            first, second = self.token_text(0), self.token_text(1)
        except ValueError as err:
            raise ValueError(f"token_format {self.token_format!r} cannot write a coordinate with "
                             f"decimals={self.decimals}: {err}; use '{{}}' for decimal numbers") from None
        if first == second:
            raise ValueError(f"token_format {self.token_format!r} gives the same string for every id")
        if self.input_resize is not None:
            object.__setattr__(self, "input_resize", tuple(self.input_resize))
        if (self.quantization == "pixel") != (self.input_resize is not None):
            raise ValueError('quantization="pixel" and input_resize=(factor, min_pixels, max_pixels) go together '
                             f"(got quantization={self.quantization!r}, input_resize={self.input_resize!r})")
        if self.input_resize is not None and (
                len(self.input_resize) != 3 or not all(isinstance(v, int) and v > 0 for v in self.input_resize)):
            raise ValueError(f"input_resize must be three positive integers, got {self.input_resize!r}")

    def token_text(self, q: int) -> str:
        """The text of coordinate id ``q``."""
        if self.decimals:
            return self.token_format.format(f"{q / 10**self.decimals:.{self.decimals}f}")
        return self.token_format.format(q)

    @property
    def textual(self) -> bool:
        """Whether coordinates are written as plain numbers (no tokens to add to an LM)."""
        return token_format_parts(self.token_format) == ("", "")

    @property
    def tokens_per_point(self) -> int:
        """1 for a grid cell token, else one token per axis."""
        return 1 if self.quantization == "grid" else 2

    @property
    def num_tokens(self) -> int:
        return self.bins * self.bins if self.quantization == "grid" else self.bins

    def vocab(self) -> list[str]:
        """Every coordinate token's text, by id."""
        return [self.token_text(i) for i in range(self.num_tokens)]


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
    # Qwen2.5-VL: JSON in absolute pixels of the input that qwen_vl_utils' smart_resize makes
    # (QwenLM/Qwen2.5-VL cookbooks/spatial_understanding.ipynb; factor 28, min 4·28², max 16384·28²).
    "qwen25vl": dict(bins=16385, quantization="pixel", order="xy", token_format="{}", layout="qwen25vl",
                     input_resize=(28, 4 * 28 * 28, 16384 * 28 * 28)),
    # Qwen3-VL: the same JSON in 0..1000 relative coordinates (QwenLM/Qwen3-VL
    # qwen-vl-finetune/GROUNDING_DATA_FORMAT.md: "Relative coordinates (0-1000 range)").
    "qwen3vl": dict(bins=1001, quantization="round", order="xy", token_format="{}", layout="qwen3vl"),
    # Gemini: box_2d [ymin, xmin, ymax, xmax] "normalized to 0-1000" (Gemini API image understanding).
    "gemini": dict(bins=1001, quantization="round", order="yx", token_format="{}", layout="gemini"),
    # InternVL: [[x1, y1, x2, y2]] in 0..1000; its RefCOCO evaluation decodes q / 1000 · size
    # (OpenGVLab/InternVL internvl_chat/eval/refcoco/evaluate_grounding.py).
    "internvl": dict(bins=1001, quantization="round", order="xy", token_format="{}", layout="internvl"),
    # Shikra: normalised coordinates with three decimals (shikras/shikra PlainBoxFormatter, precision=3).
    "shikra": dict(bins=1001, quantization="round", order="xy", token_format="{}", layout="shikra", decimals=3),
    # Molmo: percent of the image with one decimal (allenai/molmo point formatter, f"{x:0.1f}").
    "molmo": dict(bins=1001, quantization="round", order="xy", token_format="{}", layout="molmo", decimals=1),
}


def presets_for(kind: str) -> list[str]:
    """The presets whose convention writes ``kind`` items ("box" or "point"), sorted."""
    return sorted(name for name, values in PRESETS.items() if kind in LAYOUTS[str(values["layout"])].kinds)
