"""The grayscale PNG reader: the same codes as PIL for every filter type, bit depth and real file,
None for the images it leaves to PIL, and a clear error for every kind of damage."""

from __future__ import annotations

import json
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from perceptok.io import read_depth_codes
from perceptok.io.png import gray_png_depth, read_gray_png


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _filtered(codes: np.ndarray, depth: int, filters: list[int]) -> bytes:
    """The rows of ``codes`` as a PNG encoder stores them before compression: each row's filter
    type byte, then its bytes minus the type's predictor (ISO/IEC 15948 §9.2), modulo 256."""
    bpp = depth // 8
    rows = codes.astype(">u2" if depth == 16 else np.uint8).view(np.uint8).reshape(len(codes), -1).astype(np.int32)
    out = []
    for y, kind in enumerate(filters):
        x = rows[y]
        b = rows[y - 1] if y else np.zeros_like(x)
        a = np.concatenate([np.zeros(bpp, np.int32), x[:-bpp]])
        c = np.concatenate([np.zeros(bpp, np.int32), b[:-bpp]])
        pa, pb, pc = np.abs(b - c), np.abs(a - c), np.abs(a + b - 2 * c)
        paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
        pred = [np.zeros_like(x), a, b, (a + b) >> 1, paeth][kind]
        out.append(bytes([kind]) + ((x - pred) % 256).astype(np.uint8).tobytes())
    return b"".join(out)


def _png(codes: np.ndarray, depth: int, filters: list[int], pieces: int = 3, colour: int = 0, interlace: int = 0) -> bytes:
    """A PNG file of ``codes`` with the given row filters, its compressed data split over
    ``pieces`` IDAT chunks, and a text chunk before them."""
    h, w = codes.shape
    data = zlib.compress(_filtered(codes, depth, filters), 6)
    cuts = np.linspace(0, len(data), pieces + 1).astype(int)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, colour, 0, 0, interlace))
            + _chunk(b"tEXt", b"Comment\x00made by the test")
            + b"".join(_chunk(b"IDAT", data[a:b]) for a, b in zip(cuts[:-1], cuts[1:])) + _chunk(b"IEND", b""))


@pytest.mark.parametrize("depth", [8, 16])
def test_every_filter_type_reads_as_pil_reads_it(depth, tmp_path):
    rng = np.random.default_rng(depth)
    h, w = 23, 17
    smooth = np.cumsum(rng.integers(-3, 4, (h, w)), axis=1) + 100 * np.arange(h)[:, None]
    codes = np.where(rng.random((h, w)) < 0.3, rng.integers(0, 2**depth, (h, w)), smooth % 2**depth)
    filters = [y % 5 for y in range(10)] + list(rng.integers(0, 5, h - 10))
    path = tmp_path / "map.png"
    path.write_bytes(_png(codes, depth, filters))
    with Image.open(path) as im:  # the test's encoder is right: PIL reads back the codes
        assert np.array_equal(np.asarray(im), codes)
    got, bits = read_gray_png(path.read_bytes())
    assert bits == depth and got.dtype == np.int32 and np.array_equal(got, codes)
    assert np.array_equal(read_depth_codes(path).codes.numpy(), codes)


def test_real_pngs_read_as_pil_reads_them(shared_data):
    root = shared_data / "depth"
    entries = [json.loads(line) for line in (root / "manifest.jsonl").read_text().splitlines() if line.strip()]
    paths = [root / e["depth"] for e in entries if e["depth"].endswith(".png")]
    assert len(paths) >= 10
    for path in paths:
        got = read_gray_png(path.read_bytes())
        with Image.open(path) as im:
            assert got is not None and got[1] == 16 and np.array_equal(got[0], np.asarray(im)), path


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "P", "LA", "1"])
def test_other_images_are_left_to_pil(mode, tmp_path):
    path = tmp_path / "other.png"
    Image.new(mode, (5, 4)).save(path)
    assert read_gray_png(path.read_bytes()) is None
    interlaced = _png(np.zeros((4, 5), int), 8, [0] * 4, interlace=1)
    assert read_gray_png(interlaced) is None
    assert read_gray_png(b"P5\n5 4\n255\n" + bytes(20)) is None  # a PGM


def _damaged() -> dict[str, bytes]:
    codes = np.arange(12 * 9).reshape(12, 9) * 500
    good = _png(codes, 16, [4] * 12, pieces=2)
    ihdr_crc = 8 + 8 + 13
    bad_filter = bytearray(_filtered(codes, 16, [1] * 12))
    bad_filter[5 * (9 * 2 + 1)] = 7
    body = bytearray(good)
    body[-40] ^= 0xFF  # inside the compressed data
    return {
        "truncated mid-data": good[: len(good) // 2],
        "no IEND": good[:-12],
        "header CRC": good[:ihdr_crc] + bytes(4) + good[ihdr_crc + 4 :],
        "corrupt data": bytes(body),
        "bad filter type": good[:33] + _chunk(b"IDAT", zlib.compress(bytes(bad_filter))) + _chunk(b"IEND", b""),
        "too few rows": good[:33] + _chunk(b"IDAT", zlib.compress(_filtered(codes[:5], 16, [0] * 5))) + _chunk(b"IEND", b""),
        "too many rows": (good[:33] + _chunk(b"IDAT", zlib.compress(_filtered(np.vstack([codes, codes]), 16, [0] * 24)))
                          + _chunk(b"IEND", b"")),
        "zero width": good[:8] + _chunk(b"IHDR", struct.pack(">IIBBBBB", 0, 12, 16, 0, 0, 0, 0)) + good[33:],
        "huge header": good[:8] + _chunk(b"IHDR", struct.pack(">IIBBBBB", 60000, 60000, 16, 0, 0, 0, 0)) + good[33:],
    }


@pytest.mark.parametrize("name", sorted(_damaged()))
def test_damaged_pngs_raise_a_clear_error(name, tmp_path):
    data = _damaged()[name]
    with pytest.raises(ValueError, match="damaged|truncated") as err:
        read_gray_png(data)
    if name == "bad filter type":
        assert "row 5" in str(err.value) and "filter type 7" in str(err.value)
    if name == "huge header":  # refused before 7 GB of rows are allocated
        assert "cannot hold 60000 rows" in str(err.value)
    path = tmp_path / "damaged.png"
    path.write_bytes(data)
    with pytest.raises(ValueError, match="damaged.png"):  # the reader names the file
        read_depth_codes(path, encoding="uint16")


def test_the_encoding_is_guessed_from_the_header(tmp_path):
    for depth, dtype in [(8, np.uint8), (16, np.uint16)]:
        path = tmp_path / f"{depth}.png"
        Image.fromarray(np.full((3, 4), 200, dtype)).save(path)
        assert gray_png_depth(path.read_bytes()[:29]) == depth
        assert read_depth_codes(path).table.numel() == 2**depth  # encoding None: uint8 or uint16 from the header
    palette = tmp_path / "p.png"
    Image.new("P", (4, 3)).save(palette)
    assert gray_png_depth(palette.read_bytes()[:29]) is None
    assert read_depth_codes(palette).table.numel() == 256  # PIL's answer: a palette image is 8-bit
