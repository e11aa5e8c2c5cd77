"""Grayscale PNGs, the form most depth maps are stored in, read about twice as fast as PIL reads
them: libdeflate inflates the image data (twice zlib's speed) and a compiled loop undoes the
row filters and writes the codes (PNG, ISO/IEC 15948 §9: filter types None, Sub, Up, Average,
Paeth). Only non-interlaced 8- and 16-bit grayscale images take this path; ``read_gray_png``
returns None for every other PNG, which PIL then reads. Importing this module imports numba
(about a quarter of a second after torch); the loop compiles once, then is cached on disk.
"""

from __future__ import annotations

import struct
import zlib

import deflate
import numba
import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
GRAY = 0  # IHDR colour type of a grayscale image without alpha
MAX_DEFLATE_RATIO = 1032  # deflate's most: 258 bytes from each 2-bit code of a full block


@numba.njit(cache=True, nogil=True)
def _unfilter(data, height, width, bpp, out):
    """Undo the row filters of ``data`` (the inflated image: ``height`` rows of one filter-type
    byte then ``width × bpp`` bytes) into ``out`` ``(height, width)`` int32, big-endian samples
    of ``bpp`` bytes. Returns -1, or the first row whose filter type is not 0–4."""
    n = width * bpp
    prev = np.zeros(n, np.int32)  # the row above, unfiltered (zeros above the first row)
    cur = np.zeros(n, np.int32)
    for y in range(height):
        start = y * (n + 1) + 1
        kind = data[start - 1]
        if kind == 0:
            for i in range(n):
                cur[i] = data[start + i]
        elif kind == 1:
            for i in range(n):
                cur[i] = (data[start + i] + (cur[i - bpp] if i >= bpp else 0)) & 0xFF
        elif kind == 2:
            for i in range(n):
                cur[i] = (data[start + i] + prev[i]) & 0xFF
        elif kind == 3:
            for i in range(n):
                cur[i] = (data[start + i] + (((cur[i - bpp] if i >= bpp else 0) + prev[i]) >> 1)) & 0xFF
        elif kind == 4:
            for i in range(n):
                a = cur[i - bpp] if i >= bpp else 0
                b = prev[i]
                c = prev[i - bpp] if i >= bpp else 0
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                cur[i] = (data[start + i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        else:
            return y
        if bpp == 2:
            for x in range(width):
                out[y, x] = (cur[2 * x] << 8) | cur[2 * x + 1]
        else:
            for x in range(width):
                out[y, x] = cur[x]
        prev, cur = cur, prev
    return -1


def gray_png_depth(head: bytes) -> int | None:
    """The bit depth (8 or 16) of a non-interlaced grayscale PNG from its first 29 bytes (the
    signature and the IHDR chunk); None for any other image."""
    if not head.startswith(SIGNATURE) or head[12:16] != b"IHDR" or len(head) < 29:
        return None
    depth, colour, interlace = head[24], head[25], head[28]
    return depth if colour == GRAY and depth in (8, 16) and interlace == 0 else None


def read_gray_png(data: bytes) -> tuple[np.ndarray, int] | None:
    """The codes ``(H, W)`` int32 and the bit depth (8 or 16) of a non-interlaced grayscale PNG
    held in ``data``; None for any other image (another colour type or bit depth, interlaced, not a
    PNG). A damaged file (truncated, a chunk or the compressed data corrupt) raises ValueError
    saying what is wrong."""
    if gray_png_depth(data[:29]) is None or len(data) < 33:
        return None
    width, height, depth, colour, compression, filtering, interlace = struct.unpack(">IIBBBBB", data[16:29])
    if compression != 0 or filtering != 0 or width == 0 or height == 0:
        raise ValueError(f"the PNG header is invalid (compression {compression}, filter method {filtering}, "
                         f"{width}×{height}); the file is damaged")
    parts, pos = [], 8
    while True:
        if pos + 12 > len(data):
            raise ValueError("the PNG file is truncated (it ends before its IEND chunk)")
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        end = pos + 8 + length
        if end + 4 > len(data):
            raise ValueError(f"the PNG file is truncated (its {kind.decode('latin-1')} chunk is cut off)")
        if kind == b"IDAT":
            parts.append(data[pos + 8 : end])
        elif kind == b"IEND":
            break
        elif kind[0] & 0x20 == 0 and kind != b"IHDR":  # a critical chunk (upper-case first letter)
            raise ValueError(f"the grayscale PNG holds an unexpected critical chunk {kind.decode('latin-1')}; "
                             "the file is damaged")
        if kind != b"IDAT" and zlib.crc32(data[pos + 4 : end]) != struct.unpack(">I", data[end : end + 4])[0]:
            raise ValueError(f"the PNG's {kind.decode('latin-1')} chunk fails its CRC check; the file is damaged")
        pos = end + 4
    bpp = depth // 8
    size, packed = height * (width * bpp + 1), b"".join(parts)
    if size > MAX_DEFLATE_RATIO * len(packed) + 64:  # checked before allocating the rows
        raise ValueError(f"the PNG's {len(packed)} bytes of image data cannot hold {height} rows of {width} pixels; "
                         "the file is damaged or truncated")
    try:
        raw = deflate.zlib_decompress(packed, size)
    except deflate.DeflateError:  # corrupt, or more data than the header's rows
        raw = b""
    if len(raw) != size:  # corrupt, or fewer
        raise ValueError(f"the PNG's image data do not inflate to {height} rows of {width} pixels; "
                         "the file is damaged or truncated")
    codes = np.empty((height, width), np.int32)
    row = _unfilter(np.frombuffer(raw, np.uint8), height, width, bpp, codes)
    if row >= 0:
        raise ValueError(f"row {row} of the PNG has filter type {raw[row * (width * bpp + 1)]}, not 0–4; "
                         "the file is damaged")
    return codes, depth

