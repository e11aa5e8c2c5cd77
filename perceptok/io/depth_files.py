"""Depth files → ``DepthMap`` (values in physical units plus a validity mask).

Encodings (the spec of ``shared/data/README.md``):

- ``uint8`` / ``uint16``: integer image (PNG or PGM); value = raw × ``scale``.
- ``sun3d_bitshift``: uint16 with rotated bits: mm = ((v >> 3) | (v << 13)) & 0xFFFF, then × ``scale``.
- ``kinect_raw_disparity``: 16-bit PGM of raw Kinect disparity stored byte-swapped: swap bytes,
  then metres = 351.3 / (1092.5 − raw).
- ``float``: ``.npy``, the first array of ``.npz``, or ``.pfm``; value × ``scale`` (``None`` = 1).

Raw values listed in ``invalid``, NaN and ±inf are invalid; so are non-positive metric depths.
"""

from __future__ import annotations

import dataclasses
import functools
import io
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from perceptok.io.formats import DEPTH_ENCODINGS, DEPTH_KINDS
from perceptok.io.png import gray_png_depth, read_gray_png

FLOAT_SUFFIXES = (".npy", ".npz", ".pfm")
IMAGE_SUFFIXES = (".png", ".pgm", ".ppm", ".tif", ".tiff")


@dataclasses.dataclass
class DepthMap:
    """One depth map.

    Attributes:
        values: ``(H, W)`` float32 in the map's units (metres for ``metric``, pixels for
            ``disparity``, unitless for ``relative_inverse``); invalid pixels hold NaN.
        valid: ``(H, W)`` bool.
        kind: one of ``DEPTH_KINDS``.
        path: the file it came from.
    """

    values: torch.Tensor
    valid: torch.Tensor
    kind: str
    path: Path | None = None

    @property
    def valid_fraction(self) -> float:
        return float(self.valid.float().mean())

    def to(self, device: str | torch.device, non_blocking: bool = False) -> DepthMap:
        return dataclasses.replace(self, values=self.values.to(device, non_blocking=non_blocking),
                                   valid=self.valid.to(device, non_blocking=non_blocking))


@dataclasses.dataclass
class DepthCodes:
    """One 8- or 16-bit depth image as stored: code ``k`` stands for ``table[k]``.

    Attributes:
        codes: ``(H, W)`` int32 raw values.
        table: ``(2**bits,)`` float32, each code's value in the map's units (NaN: no
            measurement), as ``read_depth`` computes it; shared by the maps read with the same
            settings (read-only: tokenizers derive what they need from it once per table).
        kind: one of ``DEPTH_KINDS``.
        path: the file it came from.
    """

    codes: torch.Tensor
    table: torch.Tensor
    kind: str
    path: Path | None = None

    def to(self, device: str | torch.device, non_blocking: bool = False) -> DepthCodes:
        return dataclasses.replace(self, codes=self.codes.to(device, non_blocking=non_blocking))

    def to_map(self) -> DepthMap:
        values = self.table.to(self.codes.device).take(self.codes.long())
        return DepthMap(values=values, valid=~torch.isnan(values), kind=self.kind, path=self.path)


def same_table(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether two code tables are the same table: the same object, or equal bit for bit (NaN,
    which marks invalid codes, included; ``torch.equal`` says NaN differs from itself)."""
    return a is b or (a.dtype == b.dtype and a.shape == b.shape and a.device == b.device
                      and torch.equal(a.contiguous().view(torch.uint8), b.contiguous().view(torch.uint8)))


def _read_pfm(path: Path) -> np.ndarray:
    with open(path, "rb") as f:
        header = f.readline().strip()
        if header not in (b"Pf", b"PF"):
            raise ValueError(f"{path} is not a PFM file (header {header[:10]!r}, expected Pf or PF)")
        dims = f.readline().split()
        scale = float(f.readline().strip())
        w, h = int(dims[0]), int(dims[1])
        channels = 1 if header == b"Pf" else 3
        raw = f.read()
    if len(raw) < w * h * channels * 4:
        raise ValueError(f"{path} is truncated: expected {w * h * channels} floats, found {len(raw) // 4}")
    data = np.frombuffer(raw[: w * h * channels * 4], dtype="<f4" if scale < 0 else ">f4")
    data = data.reshape(h, w, channels)[::-1]  # PFM stores rows bottom to top
    return data[..., 0].astype(np.float32)


def _read_float(path: Path) -> np.ndarray:
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return np.load(path, allow_pickle=False)
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            if not archive.files:
                raise ValueError(f"{path} holds no arrays")
            return archive[archive.files[0]]
    if suffix == ".pfm":
        return _read_pfm(path)
    raise ValueError(f"encoding 'float' reads .npy, .npz or .pfm files, not {path.name}")


def _read_integer_image(path: Path, bits: int) -> np.ndarray:
    """Raw codes of a one-channel 8- or 16-bit image, as int32 (grayscale PNGs through
    ``perceptok.io.png``, every other image through PIL)."""
    data = path.read_bytes()
    png = read_gray_png(data)
    if png is not None:
        raw, mode = png[0], "L" if png[1] == 8 else "I;16"
    else:
        with Image.open(io.BytesIO(data)) as im:
            mode = im.mode
            raw = np.asarray(im)
    if raw.ndim != 2:
        raise ValueError(f"{path} has {raw.shape[2]} channels ({mode}); a depth image has one")
    if bits == 8 and mode not in ("L", "P"):
        raise ValueError(f"{path} is a {mode} image, not 8-bit; use encoding='uint16' for 16-bit depth")
    if bits == 16 and mode in ("L", "P", "1"):
        raise ValueError(f"{path} is an 8-bit image; use encoding='uint8' (16-bit depth was expected)")
    fits = png is not None or (raw.dtype.kind == "u" and raw.dtype.itemsize * 8 <= bits)  # L and I;16: in range by type
    if raw.size and not fits and (raw.min() < 0 or raw.max() >= 2**bits):
        raise ValueError(
            f"{path} holds values from {raw.min()} to {raw.max()}, outside the {bits}-bit range "
            f"0..{2**bits - 1}: it is not a {bits}-bit depth image (wrong encoding?)"
        )
    return raw if png is not None else raw.astype(np.int32)  # a copy: PIL's arrays are read-only


def read_depth(
    path: str | Path,
    encoding: str | None = None,
    scale: float | None = None,
    kind: str = "metric",
    invalid: Sequence[float] = (0,),
) -> DepthMap:
    """Read one depth file.

    Args:
        path: the file.
        encoding: one of ``DEPTH_ENCODINGS``; ``None`` guesses ``float`` for .npy/.npz/.pfm
            and ``uint8``/``uint16`` from the image's bit depth.
        scale: multiplier from raw values to the map's units; ``None`` means 1 (for
            ``kinect_raw_disparity`` the encoding fixes the units and scale must be ``None``).
        kind: what the values mean, one of ``DEPTH_KINDS``.
        invalid: raw values that mean "no measurement".
    """
    path, encoding = _check(path, encoding, scale, kind)
    if encoding != "float":
        return read_depth_codes(path, encoding, scale, kind, invalid).to_map()
    raw = _attempt(path, encoding, lambda: np.asarray(_read_float(path), dtype=np.float64))
    values, bad = to_values(raw, encoding, scale, kind, tuple(invalid))
    return DepthMap(values=torch.from_numpy(values), valid=torch.from_numpy(~bad), kind=kind, path=path)


def read_depth_codes(
    path: str | Path,
    encoding: str | None = None,
    scale: float | None = None,
    kind: str = "metric",
    invalid: Sequence[float] = (0,),
) -> DepthCodes:
    """Read an 8- or 16-bit depth image as stored: its raw codes and what each code means (the
    arguments as for ``read_depth``, whose map is ``read_depth_codes(...).to_map()``).
    Tokenizers encode ``DepthCodes`` without expanding them, much faster."""
    path, encoding = _check(path, encoding, scale, kind)
    if encoding == "float":
        raise ValueError(f"{path} holds floating-point depth, which has no codes; read it with read_depth")
    bits = 8 if encoding == "uint8" else 16
    raw = _attempt(path, encoding, lambda: _read_integer_image(path, bits))
    table = _code_table(encoding, None if scale is None else float(scale), kind, tuple(invalid))
    return DepthCodes(codes=torch.from_numpy(raw), table=table, kind=kind, path=path)


def _check(path: str | Path, encoding: str | None, scale: float | None, kind: str) -> tuple[Path, str]:
    path = Path(path)
    if kind not in DEPTH_KINDS:
        raise ValueError(f"kind must be one of {DEPTH_KINDS}, got {kind!r}")
    if not path.is_file():
        raise FileNotFoundError(f"depth file {path} does not exist")
    if encoding is None:
        encoding = "float" if path.suffix.lower() in FLOAT_SUFFIXES else _guess_bits(path)
    if encoding not in DEPTH_ENCODINGS:
        raise ValueError(f"encoding must be one of {DEPTH_ENCODINGS}, got {encoding!r}")
    if encoding == "kinect_raw_disparity" and scale is not None:
        raise ValueError("kinect_raw_disparity fixes its units (metres); pass scale=None")
    return path, encoding


def _attempt(path: Path, encoding: str, read: Callable[[], np.ndarray]) -> np.ndarray:
    """``read()``, its failures as one ValueError naming the file, and the shape checked."""
    try:
        raw = read()
    except (UnidentifiedImageError, OSError, EOFError, ValueError) as err:
        if isinstance(err, ValueError) and str(path) in str(err):
            raise
        raise ValueError(f"cannot read {path} as a depth file with encoding {encoding!r}: {err}") from err
    if raw.ndim != 2 or min(raw.shape) == 0:
        raise ValueError(f"{path} holds an array of shape {raw.shape}; a depth map is a non-empty (H, W) array")
    return raw


def to_values(raw: np.ndarray, encoding: str, scale: float | None, kind: str,
               invalid: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The one definition of stored numbers → units: float32 values (NaN where invalid) and the
    invalid mask. ``raw`` holds integer codes or floats as ``encoding`` stores them."""
    if encoding == "sun3d_bitshift":
        raw = ((raw >> 3) | (raw << 13)) & 0xFFFF
    elif encoding == "kinect_raw_disparity":
        raw = raw.astype(np.uint16).byteswap().astype(np.int64)
    bad = ~np.isfinite(raw)
    for value in invalid:
        bad |= raw == value
    if encoding == "kinect_raw_disparity":
        bad |= raw >= 1092.5
        values = 351.3 / (1092.5 - np.where(bad, 0.0, raw))
    else:
        values = raw.astype(np.float64) * (1.0 if scale is None else float(scale))
    if kind != "relative_inverse":
        bad |= values <= 0
    return np.where(bad, np.nan, values).astype(np.float32), bad


@functools.lru_cache(maxsize=64)
def _code_table(encoding: str, scale: float | None, kind: str, invalid: tuple[float, ...]) -> torch.Tensor:
    """``(2**bits,)`` float32: the value of every raw code (NaN: invalid), one tensor shared by
    every map read with these settings."""
    bits = 8 if encoding == "uint8" else 16
    return torch.from_numpy(to_values(np.arange(2**bits, dtype=np.int64), encoding, scale, kind, invalid)[0])


def _guess_bits(path: Path) -> str:
    with open(path, "rb") as f:
        depth = gray_png_depth(f.read(29))
    if depth is not None:  # a grayscale PNG says so in its header: no need to open it with PIL
        return f"uint{depth}"
    try:
        with Image.open(path) as im:
            return "uint8" if im.mode in ("L", "P") else "uint16"
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"cannot read {path} as a depth image: {err}") from err


def read_depth_folder(
    folder: str | Path,
    encoding: str | None = None,
    scale: float | None = None,
    kind: str = "metric",
    invalid: Sequence[float] = (0,),
) -> Iterator[DepthMap]:
    """Every depth file of a folder (8/16-bit PNG or PGM, .npy, .npz, .pfm), sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"depth folder {folder} does not exist")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in FLOAT_SUFFIXES + IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"{folder} holds no depth files ({', '.join(FLOAT_SUFFIXES + IMAGE_SUFFIXES)})")
    for path in files:
        yield read_depth(path, encoding=encoding, scale=scale, kind=kind, invalid=invalid)
