"""Configs of the depth tokenizers (the VQ-VAE and the pooled baseline) and the VQ-VAE's presets.
Torch-free, so that ``perceptok info`` describes a depth tokenizer without building it."""

from __future__ import annotations

import dataclasses
import math

from perceptok.config import TokenizerConfig

QUANTIZERS = ("vq", "fsq")
ARCHITECTURES = ("perceptok", "aurora")


def choose_grid(grids: tuple[tuple[int, int], ...], height: int, width: int) -> tuple[int, int]:
    """The grid whose cells are closest to square for a ``height × width`` map."""
    return min(grids, key=lambda g: abs(math.log((width / g[1]) / (height / g[0]))))


class DepthGridConfig(TokenizerConfig):
    """What every depth config's ``grids``, ``codebook_size`` and ``token_prefix`` define: the
    token grid of a map and the token strings (the one definition that the tokenizers, their span
    grammar and ``perceptok info`` read)."""

    grids: tuple[tuple[int, int], ...]
    codebook_size: int
    token_prefix: str

    @property
    def tokens_per_map(self) -> int:
        return self.grids[0][0] * self.grids[0][1]

    def choose_grid(self, height: int, width: int) -> tuple[int, int]:
        return choose_grid(self.grids, height, width)

    def token(self, name: int | str) -> str:
        """``<{token_prefix}_{name}>``: code ``k``, ``START``, ``END`` or ``GRID_{rows}x{cols}``."""
        return f"<{self.token_prefix}_{name}>"

    def vocab(self) -> list[str]:
        return [self.token(k) for k in range(self.codebook_size)]

    @property
    def start_token(self) -> str:
        return self.token("START")

    @property
    def end_token(self) -> str:
        return self.token("END")


@dataclasses.dataclass(frozen=True)
class DepthTokenizerConfig(DepthGridConfig):
    # Name of the preset this config came from ("custom" for a hand-made one).
    preset: str = "default"
    # Token grids (rows, cols) the tokenizer may use, all with the same number of tokens. A map
    # takes the grid whose cells are closest to square, so a wide frame gets a 5×20 grid instead
    # of being squashed into 10×10 (the original's choice). The first grid is the square default.
    grids: tuple[tuple[int, int], ...] = ((10, 10), (5, 20), (20, 5), (4, 25), (25, 4))
    # Side in pixels of one token's cell at the network input: the input size is grid × cell_size
    # (40×40 for 10×10: a depth map's 100-token content survives this resolution, and every
    # network stage is cheap, so training takes many more steps in the same time). A power of two.
    cell_size: int = 4
    # Number of codes; ids are 0..codebook_size-1 and tokens <{prefix}_0>..<{prefix}_{K-1}>.
    codebook_size: int = 128
    # "fsq": vector-quantize-pytorch FSQ with fsq_levels (no codebook to collapse; the default);
    # "vq": its VectorQuantize (k-means init, EMA, dead-code replacement, cosine similarity in a
    # low-dimensional code space).
    quantizer: str = "fsq"
    # FSQ levels per latent dimension (the latent has one dimension per entry); their product must
    # equal codebook_size. The first, finest axis carries the cell's level (32 steps), the
    # second shape (edges, slopes, occlusions) as the decoder reads it in context.
    fsq_levels: tuple[int, ...] = (32, 4)
    # FSQ only: how many latent axes start from the pooled-grid prior (see model.py). 1: the
    # first axis carries the cell's mean level and the others are free for shape; 2: the second
    # axis also carries the remainder of the level between the first axis's steps.
    prior_axes: int = 1
    # Dimension of a VQ code vector (FSQ latents have len(fsq_levels) dimensions).
    code_dim: int = 64
    # "perceptok": our encoder/decoder (validity-mask input, level + detail decoder);
    # "aurora": the original's (REFERENCE.md), kept as the baseline to beat.
    architecture: str = "perceptok"
    # Input pixels per decoder output pixel (a power of two ≤ cell_size); decoding stops there and
    # callers resize to the size they ask for. Also the training target's resolution.
    decoder_stride: int = 1
    # Channels of the network at token resolution.
    width: int = 128
    # Tokens are <{prefix}_START>, <{prefix}_0>.., <{prefix}_END>.
    token_prefix: str = "DEPTH"

    def __post_init__(self) -> None:
        if not self.grids or any(len(g) != 2 or min(g) < 1 for g in self.grids):
            raise ValueError(f"grids must be a non-empty list of (rows, cols), got {self.grids!r}")
        if len({g[0] * g[1] for g in self.grids}) != 1:
            raise ValueError(f"every grid must hold the same number of tokens, got {self.grids!r}")
        if self.cell_size < 2 or self.cell_size & (self.cell_size - 1):
            raise ValueError(f"cell_size must be a power of two ≥ 2, got {self.cell_size}")
        if self.decoder_stride < 1 or self.decoder_stride & (self.decoder_stride - 1) or self.decoder_stride > self.cell_size:
            raise ValueError(f"decoder_stride must be a power of two ≤ cell_size={self.cell_size}, got {self.decoder_stride}")
        if self.codebook_size < 2:
            raise ValueError(f"codebook_size must be ≥ 2, got {self.codebook_size}")
        if min(self.width, self.code_dim) < 1:
            raise ValueError(f"width and code_dim must be positive channel counts, got {self.width} and {self.code_dim}")
        if self.quantizer not in QUANTIZERS:
            raise ValueError(f"quantizer must be one of {QUANTIZERS}, got {self.quantizer!r}")
        if self.quantizer == "fsq" and math.prod(self.fsq_levels) != self.codebook_size:
            raise ValueError(f"fsq_levels {self.fsq_levels} give {math.prod(self.fsq_levels)} codes, "
                             f"not codebook_size={self.codebook_size}")
        if self.quantizer == "fsq" and min(self.fsq_levels) < 3:
            raise ValueError(f"every fsq_levels entry must be ≥ 3 (FSQ rounds a bounded value to that many steps), "
                             f"got {self.fsq_levels}")
        if self.quantizer == "fsq" and not 1 <= self.prior_axes <= min(2, len(self.fsq_levels)):
            raise ValueError(f"prior_axes must be 1 or 2 (at most the {len(self.fsq_levels)} FSQ axes), got {self.prior_axes}")
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {self.architecture!r}")
        if self.architecture == "aurora" and (self.cell_size != 32 or len(self.grids) != 1):
            raise ValueError("the aurora architecture downsamples ×32 into one square grid: cell_size=32, one grid")
        if not self.token_prefix.isidentifier():
            raise ValueError(f"token_prefix must be letters, digits or '_', got {self.token_prefix!r}")


@dataclasses.dataclass(frozen=True)
class PooledDepthConfig(DepthGridConfig):
    """Config of ``PooledDepthTokenizer``, the no-learning baseline."""

    # Token grids (rows, cols), chosen per map like DepthTokenizerConfig.grids.
    grids: tuple[tuple[int, int], ...] = ((10, 10),)
    # Pixels per cell of the default output size (grid × cell_size).
    cell_size: int = 32
    # Levels per cell; ids are round(level · (codebook_size − 1)).
    codebook_size: int = 128
    # Tokens are <{prefix}_START>, <{prefix}_k>, <{prefix}_END>.
    token_prefix: str = "DEPTH"

    def __post_init__(self) -> None:
        if not self.grids or len({g[0] * g[1] for g in self.grids}) != 1:
            raise ValueError(f"grids must be non-empty and hold the same number of tokens, got {self.grids!r}")
        if self.codebook_size < 2 or self.cell_size < 1:
            raise ValueError("codebook_size must be ≥ 2 and cell_size ≥ 1")


PRESETS: dict[str, DepthTokenizerConfig] = {
    # Token-compatible with AURORA: 100 tokens, 128 codes, <DEPTH_START> <DEPTH_k> <DEPTH_END>.
    "default": DepthTokenizerConfig(),
    # Same, with a learned VQ codebook instead of FSQ's 32·4 = 128 implicit codes.
    "vq": DepthTokenizerConfig(preset="vq", quantizer="vq"),
    # The original's architecture and sizes (REFERENCE.md): 320×320 in, ×32, 128 × 512 codebook.
    "aurora": DepthTokenizerConfig(preset="aurora", grids=((10, 10),), cell_size=32, quantizer="vq", code_dim=512,
                                   architecture="aurora", width=256),
    # Seconds-fast on a CPU, for tests: 4×4 = 16 tokens, 16 codes, 32×32 input.
    "tiny": DepthTokenizerConfig(preset="tiny", grids=((4, 4), (2, 8), (8, 2)), cell_size=8, codebook_size=16,
                                 quantizer="vq", fsq_levels=(4, 4), code_dim=8, width=16),
}
