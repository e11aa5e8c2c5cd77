"""A record's image as a recipe, not pixels: where the image comes from (a file, or pixels made in
memory), whether it is padded to a square as LLaVA-1.5 trained, and which lettered points are
marked on it. Records then hold a few hundred bytes instead of megabytes of decoded pixels, so a
curriculum of 20k photos fits in memory; the DataLoader's workers load each batch's images.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, UnidentifiedImageError

from perceptok.io.square import square_offset

# LLaVA-1.5's expand2square fill: CLIP's image mean × 255.
PAD_COLOUR = (122, 116, 104)


@dataclasses.dataclass(frozen=True)
class SquareFrame:
    """Where a ``w × h`` image sits on the ``side × side`` square it is padded to (LLaVA-1.5's
    ``pad`` aspect: centred, the rest filled with ``PAD_COLOUR``; ``perceptok.io.square``'s rule,
    by which depth maps are padded too)."""

    w: int
    h: int

    @property
    def side(self) -> int:
        return square_offset(self.w, self.h)[2]

    @property
    def offset(self) -> tuple[int, int]:
        return square_offset(self.w, self.h)[:2]

    def pad_image(self, image: Image.Image) -> Image.Image:
        if self.w == self.h:
            return image
        square = Image.new("RGB", (self.side, self.side), PAD_COLOUR)
        square.paste(image, self.offset)
        return square

    def to_original(self, normalized: torch.Tensor) -> torch.Tensor:
        """``(..., 2k)`` x, y, … normalised to the square → normalised to the image."""
        x0, y0 = self.offset
        opts = dict(dtype=normalized.dtype, device=normalized.device)
        scale = torch.tensor([self.side / self.w, self.side / self.h], **opts)
        shift = torch.tensor([x0 / self.w, y0 / self.h], **opts)
        pairs = normalized.unflatten(-1, (-1, 2)) * scale - shift
        return pairs.flatten(-2)

    def crop(self, square_map: torch.Tensor) -> torch.Tensor:
        """A ``(S, S)`` map of the square → the image's part of it."""
        s = square_map.shape[-1] / self.side
        x0, y0 = self.offset
        return square_map[round(y0 * s) : round((y0 + self.h) * s), round(x0 * s) : round((x0 + self.w) * s)]


def draw_marks(image: Image.Image, points: np.ndarray, letters: str) -> Image.Image:
    """A copy of ``image`` with red circles at ``points`` ``(k, 2)`` (x, y pixels) and ``letters``
    beside them, BLINK style."""
    out = image.copy()
    draw = ImageDraw.Draw(out)
    r = max(4, round(min(image.size) / 40))
    for (x, y), letter in zip(points, letters):
        draw.ellipse([x - r, y - r, x + r, y + r], outline=(255, 0, 0), width=max(2, r // 3))
        draw.text((x + r + 2, y - r - 2), letter, fill=(255, 0, 0))
    return out


def _open_rgb(path: str) -> Image.Image:
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except FileNotFoundError:
        raise FileNotFoundError(f"image {path} not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise ValueError(f"image {path}: cannot be read ({err}); replace or remove the file") from err


@dataclasses.dataclass(frozen=True)
class ImageRecipe:
    """How to make an image: ``source`` (an image file's path, read when loaded, or pixels held in
    memory), padded to a square (``square``) and with ``letters`` marked at ``points`` (x, y
    pixels of the result). Its geometry (``size``, ``width``, ``height``, ``frame``) needs no pixels.

    Attributes:
        source: the path of an image file, or an RGB image.
        source_size: ``(w, h)`` of the source.
        square: centred on a square of ``PAD_COLOUR`` (``SquareFrame``).
        points: ``k`` (x, y) pixel centres to mark, in the frame of the padded image.
        letters: their letters, ``k`` of them.
    """

    source: str | Image.Image
    source_size: tuple[int, int]
    square: bool = False
    points: tuple[tuple[float, float], ...] = ()
    letters: str = ""

    @classmethod
    def of(cls, image: str | Path | Image.Image | ImageRecipe) -> ImageRecipe:
        """A recipe for an image file (only its header is read now, for the size), for pixels in
        memory, or the recipe itself."""
        if isinstance(image, ImageRecipe):
            return image
        if isinstance(image, Image.Image):
            return cls(image, image.size)
        path = str(image)
        try:
            with Image.open(path) as opened:
                return cls(path, opened.size)
        except FileNotFoundError:
            raise FileNotFoundError(f"image {path} not found") from None
        except (UnidentifiedImageError, OSError, SyntaxError) as err:
            raise ValueError(f"image {path}: not an image file ({err}); replace or remove it") from err

    @property
    def frame(self) -> SquareFrame:
        """Where the source sits on its square."""
        return SquareFrame(*self.source_size)

    @property
    def size(self) -> tuple[int, int]:
        """``(w, h)`` of the image that ``load`` gives."""
        return (self.frame.side,) * 2 if self.square else self.source_size

    @property
    def width(self) -> int:
        return self.size[0]

    @property
    def height(self) -> int:
        return self.size[1]

    def padded(self) -> ImageRecipe:
        """The image padded to a square (itself when it is one)."""
        return dataclasses.replace(self, square=True)

    def marked(self, points: np.ndarray, letters: str) -> ImageRecipe:
        """The image with ``letters`` marked at ``points`` ``(k, 2)`` (x, y pixels of ``size``)."""
        return dataclasses.replace(self, points=tuple(map(tuple, np.asarray(points, float).tolist())), letters=letters)

    def load(self) -> Image.Image:
        """The RGB image: read (or copied), padded and marked."""
        image = self.source.convert("RGB") if isinstance(self.source, Image.Image) else _open_rgb(self.source)
        if self.square:
            image = self.frame.pad_image(image)
        return draw_marks(image, np.array(self.points), self.letters) if self.letters else image


def load_image(image: str | Path | Image.Image | ImageRecipe) -> Image.Image:
    """An RGB image from a recipe, a file's path (read once), or itself."""
    if isinstance(image, Image.Image):
        return image
    return image.load() if isinstance(image, ImageRecipe) else _open_rgb(str(image))
