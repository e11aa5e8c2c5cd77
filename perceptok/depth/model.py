"""The VQ-VAE networks behind ``DepthTokenizer``.

Axis legend: ``B`` maps, ``H, W`` input pixels (grid × cell_size), ``h, w`` token grid,
``D`` code dimension, ``N = h·w`` tokens.

``PerceptokVQVAE`` is ours. Its input has two channels, the hole-filled relative inverse depth
and the validity mask, so the codes know where measurements were (sparse LiDAR-like maps, Kinect
shadows). Its decoder predicts a coarse level per token, upsampled bilinearly, plus a learned
full-resolution residual for edges, slopes and occlusions: the "pooled grid" baseline is one
setting of it, so training starts from a strong solution and spends its capacity on shape.
Decoding stops at 1/decoder_stride of the input resolution with few channels (callers resize to
the size they ask for), which makes it several times cheaper than the original's transposed-conv stack.

``AuroraVQVAE`` is the original's architecture (REFERENCE.md, "Depth tokenizer in the original").
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn
from vector_quantize_pytorch import FSQ, VectorQuantize

from perceptok.depth.config import DepthTokenizerConfig


class ResBlock(nn.Module):
    def __init__(self, channels: int, act: type[nn.Module] = nn.SiLU, bottleneck: bool = False):
        super().__init__()
        if bottleneck:  # the original's x + [3×3, ReLU, 3×3, ReLU, 1×1]
            self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), act(),
                                      nn.Conv2d(channels, channels, 3, padding=1), act(),
                                      nn.Conv2d(channels, channels, 1))
        else:
            self.body = nn.Sequential(act(), nn.Conv2d(channels, channels, 3, padding=1), act(),
                                      nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def run_wide(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``module(x)`` in float32 or wider, whatever the module's dtype. Encoders run this way:
    their output is rounded to codes, and bf16 activations flip 1.3–2 % of the codes of the real
    maps (even the input's cast to bf16 alone flips 1.3 %), while a float32 encoder in a bf16
    tokenizer gives exactly the float32 codes. Encoders are small; decoders keep the dtype."""
    wide = torch.promote_types(x.dtype, torch.float32)
    if all(p.dtype == wide for p in module.parameters()):
        return module(x.to(wide))
    tensors = {name: t.to(wide) if t.is_floating_point() else t
               for name, t in [*module.named_parameters(), *module.named_buffers()]}
    return torch.func.functional_call(module, tensors, (x.to(wide),))


def _stage_channels(cfg: DepthTokenizerConfig) -> list[int]:
    """Channels from full resolution (index 0) down to token resolution (index -1)."""
    n = int(math.log2(cfg.cell_size))
    return [min(cfg.width, 16 * 2**i) for i in range(n)] + [cfg.width]


class PerceptokVQVAE(nn.Module):
    in_channels = 2  # relative inverse depth in [-1, 1], validity in {0, 1}

    def __init__(self, cfg: DepthTokenizerConfig, latent_dim: int):
        super().__init__()
        ch = _stage_channels(cfg)
        down: list[nn.Module] = [nn.Conv2d(self.in_channels, ch[0], 3, padding=1), nn.SiLU()]
        for a, b in zip(ch[:-1], ch[1:]):
            down += [nn.Conv2d(a, b, 3, stride=2, padding=1), nn.SiLU()]
        self.encoder = nn.Sequential(*down, ResBlock(cfg.width), ResBlock(cfg.width), nn.SiLU(),
                                     nn.Conv2d(cfg.width, latent_dim, 1))
        # With FSQ the encoder starts as the pooled-grid baseline and learns what to add: its last
        # layer's rows for the prior axes start at zero and a fixed prior puts each cell's mean
        # level on the first FSQ axis (prior_axes=1: the other axes are free for shape: edges,
        # slopes, occlusions), or also the remainder of the level between the first axis's steps on the
        # second (prior_axes=2: every code carries the level to 1/128 from the first step, but
        # training keeps the second axis for the level and learns little shape; measured in
        # BENCHMARKS.md). Without a prior the extra axes collapse to one level early in training.
        # The free axes start as random projections of the encoder's features rather than at
        # zero, so they carry information, and the decoder learns to read them, from step one.
        self.cell_size = cfg.cell_size
        self.level_prior = cfg.quantizer == "fsq"
        self.fsq_levels = cfg.fsq_levels
        self.prior_axes = cfg.prior_axes
        if self.level_prior:
            with torch.no_grad():
                self.encoder[-1].weight[: cfg.prior_axes].zero_()
                self.encoder[-1].bias.zero_()
        self.context = nn.Sequential(nn.Conv2d(latent_dim, cfg.width, 1), ResBlock(cfg.width), ResBlock(cfg.width),
                                     ResBlock(cfg.width), nn.SiLU())
        self.level = nn.Conv2d(cfg.width, 1, 1)
        # The detail branch stops at 1/decoder_stride of the input resolution: finer detail than
        # that is below what 100 tokens carry, and a last full-resolution stage would cost more
        # than all the others together.
        stages = list(zip(reversed(ch[1:]), reversed(ch[:-1])))
        stages = stages[: len(stages) - int(math.log2(cfg.decoder_stride))]
        up: list[nn.Module] = []
        for a, b in stages:
            up += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(a, b, 3, padding=1), nn.SiLU()]
        self.detail = nn.Sequential(*up, nn.Conv2d(stages[-1][1] if stages else cfg.width, 1, 3, padding=1))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 2, H, W)`` → latents ``(B, D, h, w)``, in float32 or wider (see ``run_wide``)."""
        z = run_wide(self.encoder, x)
        if self.level_prior:
            z = z + self._prior(x[:, :1].to(z.dtype))
        return z

    def _prior(self, depth: torch.Tensor) -> torch.Tensor:
        """``(B, 1, H, W)`` input in [-1, 1] → ``(B, D, h, w)`` FSQ pre-activations (tanh-bounded
        by FSQ, hence atanh) that quantise to the cell's mean level on axis 0 (and, with
        ``prior_axes=2``, its remainder on axis 1); other axes get 0."""
        mean = F.avg_pool2d(depth, self.cell_size).clamp(-1, 1)  # (B, 1, h, w)
        half = (self.fsq_levels[0] - 1) / 2
        offset = 0.5 if self.fsq_levels[0] % 2 == 0 else 0.0
        steps = mean * 0.98 * half - offset  # axis 0 in level units, before rounding
        rest = (steps - torch.round(steps)) * 2  # in [-1, 1]
        axes = [torch.atanh(0.98 * mean)]
        if self.prior_axes > 1:
            axes.append(torch.atanh(0.98 * rest.clamp(-1, 1)))
        axes += [torch.zeros_like(mean)] * (len(self.fsq_levels) - len(axes))
        return torch.cat(axes, dim=1)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latents ``(B, D, h, w)`` → relative inverse depth ``(B, 1, H/s, W/s)`` (about [0, 1]),
        s = decoder_stride."""
        feat = self.context(z)
        level = self.level(feat)  # (B, 1, h, w)
        detail = self.detail(feat)  # (B, 1, H/s, W/s)
        base = F.interpolate(level, size=detail.shape[-2:], mode="bilinear", align_corners=False)
        return base + detail


class AuroraVQVAE(nn.Module):
    """The original: five 4×4 stride-2 convs (1→16→32→64→128→256), two residual blocks, 1×1 to
    the code dimension; the decoder mirrors it with transposed convs. Input is one channel in [-1, 1]."""

    in_channels = 1

    def __init__(self, cfg: DepthTokenizerConfig):
        super().__init__()
        ch = [1, 16, 32, 64, 128, 256]
        down: list[nn.Module] = []
        for a, b in zip(ch[:-1], ch[1:]):
            down += [nn.Conv2d(a, b, 4, stride=2, padding=1), nn.ReLU()]
        self.encoder = nn.Sequential(*down, ResBlock(256, nn.ReLU, True), ResBlock(256, nn.ReLU, True),
                                     nn.Conv2d(256, cfg.code_dim, 1))
        up: list[nn.Module] = [nn.Conv2d(cfg.code_dim, 256, 1), nn.ReLU(), ResBlock(256, nn.ReLU, True),
                               ResBlock(256, nn.ReLU, True)]
        for a, b in zip([256, 256, 128, 64, 32], [256, 128, 64, 32, 16]):
            up += [nn.ConvTranspose2d(a, b, 4, stride=2, padding=1), nn.ReLU()]
        self.decoder = nn.Sequential(*up, nn.Conv2d(16, 1, 1))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return run_wide(self.encoder, x[:, :1])

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        # The original's output is in [-1, 1] like its input; map it to [0, 1].
        return (self.decoder(z) + 1) / 2


class DepthVQVAE(nn.Module):
    """Network + quantiser. Tokens are the quantiser's indices, row-major over the grid."""

    def __init__(self, cfg: DepthTokenizerConfig):
        super().__init__()
        self.cfg = cfg
        latent_dim = len(cfg.fsq_levels) if cfg.quantizer == "fsq" else cfg.code_dim
        self.net = AuroraVQVAE(cfg) if cfg.architecture == "aurora" else PerceptokVQVAE(cfg, latent_dim)
        if cfg.quantizer == "fsq":
            self.quantizer: nn.Module = FSQ(levels=list(cfg.fsq_levels))
        else:
            self.quantizer = VectorQuantize(**self._vq_options(cfg))

    @staticmethod
    def _vq_options(cfg: DepthTokenizerConfig) -> dict:
        options = dict(dim=cfg.code_dim, codebook_size=cfg.codebook_size, decay=0.99, commitment_weight=0.25)
        if cfg.architecture == "aurora":
            return options  # the original: a plain EMA codebook
        # k-means init and dead-code replacement keep a small codebook in use; matching by cosine
        # similarity in a low-dimensional space (Yu et al., ViT-VQGAN) keeps it spread out.
        return {**options, "kmeans_init": True, "kmeans_iters": 10, "threshold_ema_dead_code": 2,
                "use_cosine_sim": True, "codebook_dim": min(cfg.code_dim, 16)}

    @property
    def in_channels(self) -> int:
        return self.net.in_channels

    def quantize(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Latents ``(B, D, h, w)`` → quantised latents, ids ``(B, N)`` and the commitment loss."""
        h, w = z.shape[-2:]
        tokens = rearrange(z, "b d h w -> b (h w) d")
        if self.cfg.quantizer == "fsq":
            q, ids = self.quantizer(tokens)
            loss = tokens.new_zeros(())
        else:
            q, ids, loss = self.quantizer(tokens)
        return rearrange(q, "b (h w) d -> b d h w", h=h, w=w), ids.long(), loss

    def encode_ids(self, x: torch.Tensor) -> torch.Tensor:
        """Network input ``(B, C, H, W)`` → ids ``(B, N)``."""
        return self.quantize(self.net.encode(x))[1]

    def codes(self, ids: torch.Tensor) -> torch.Tensor:
        """Ids ``(B, N)`` → code vectors ``(B, N, D)``."""
        if self.cfg.quantizer == "fsq":
            return self.quantizer.indices_to_codes(ids)
        return self.quantizer.get_output_from_indices(ids)

    def all_codes(self) -> torch.Tensor:
        """Every code vector, ``(K, D)``."""
        ids = torch.arange(self.cfg.codebook_size, device=next(self.parameters()).device)[None]
        return self.codes(ids)[0]

    def decode_codes(self, codes: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """Code vectors ``(B, N, D)`` → relative inverse depth ``(B, 1, H', W')`` (H' = H for the
        aurora architecture, H/decoder_stride for ours)."""
        z = rearrange(codes, "b (h w) d -> b d h w", h=grid[0], w=grid[1])
        return self.net.decode(z.to(next(self.net.parameters()).dtype))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Input ``(B, C, H, W)`` → reconstruction ``(B, 1, H', W')``, ids ``(B, N)``, commitment loss."""
        q, ids, loss = self.quantize(self.net.encode(x))
        return self.net.decode(q), ids, loss
