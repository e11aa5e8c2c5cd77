"""Depth readers: every entry of the real manifest with the right units, every file format,
and clear errors for bad files."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from perceptok.io import read_depth, read_depth_folder, read_manifest

# Metres, from the sources the data README names: Kinect v1/v2, TUM, Redwood, SUN3D and NYU are
# indoor sensors reading roughly 0.4–10 m; the ICL-NUIM renders are rooms of a few metres.
SOURCE_RANGES = {
    "kinect_slambook": (0.4, 10.5), "tum": (0.4, 10.5), "iclnuim": (0.4, 6.0), "redwood": (0.4, 4.0),
    "sun3d": (0.4, 10.5), "nyu_raw": (0.4, 10.5), "esanet_kinect2": (0.0, 10.5),
}


def test_every_manifest_entry_loads_in_metres(shared_data):
    entries = read_manifest(shared_data / "depth" / "manifest.jsonl")
    assert len(entries) == 21
    for entry in entries:
        d = entry.load()
        lo, hi = next(r for prefix, r in SOURCE_RANGES.items() if entry.id.startswith(prefix))
        values = d.values[d.valid]
        assert d.values.shape in ((480, 640), (424, 512)), entry.id
        assert 0.65 <= d.valid_fraction <= 1.0, entry.id  # the README: "66–100 % valid"
        assert lo <= float(values.min()) and float(values.max()) <= hi, (entry.id, values.min(), values.max())
        assert 0.8 <= float(values.median()) <= 4.0, entry.id
        assert entry.rgb is not None and entry.rgb.is_file()


def test_special_encodings_decode_to_plausible_metres(shared_data):
    entries = {e.id: e for e in read_manifest(shared_data / "depth" / "manifest.jsonl")}
    nyu = entries["nyu_raw_open3d"].load()  # raw Kinect disparity, byte-swapped
    assert nyu.valid_fraction > 0.9 and 1.0 < float(nyu.values[nyu.valid].median()) < 5.0
    sun = entries["sun3d_open3d"].load()  # bit-rotated millimetres
    assert 1.0 < float(sun.values[sun.valid].median()) < 5.0


def test_file_formats_round_trip(tmp_path):
    metres = np.linspace(0.5, 5.0, 48, dtype=np.float32).reshape(6, 8)
    mm = (metres * 1000).round().astype(np.uint16)
    Image.fromarray(mm).save(tmp_path / "a16.png")
    Image.fromarray((metres * 40).astype(np.uint8)).save(tmp_path / "b8.png")
    np.save(tmp_path / "c.npy", metres)
    np.savez(tmp_path / "d.npz", depth=metres)
    with open(tmp_path / "e.pfm", "wb") as f:
        f.write(b"Pf\n8 6\n-1.0\n" + metres[::-1].astype("<f4").tobytes())
    assert np.allclose(read_depth(tmp_path / "a16.png", scale=0.001).values, mm * 0.001)
    assert read_depth(tmp_path / "b8.png", encoding="uint8", scale=0.025).values.max() == pytest.approx(5.0, abs=0.03)
    for name in ("c.npy", "d.npz", "e.pfm"):
        assert np.allclose(read_depth(tmp_path / name).values, metres), name
    maps = list(read_depth_folder(tmp_path, scale=None))
    assert len(maps) == 5


def test_invalid_values_nan_and_masks(tmp_path):
    a = np.array([[0.0, 1.0], [np.nan, np.inf]], np.float32)
    np.save(tmp_path / "a.npy", a)
    d = read_depth(tmp_path / "a.npy")
    assert d.valid.tolist() == [[False, True], [False, False]]
    assert bool(d.values[0, 0].isnan()) and float(d.values[0, 1]) == 1.0
    rel = read_depth(tmp_path / "a.npy", kind="relative_inverse", invalid=())
    assert rel.valid.tolist() == [[True, True], [False, False]]  # 0 is "infinitely far", not missing


def test_bad_files_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_depth(tmp_path / "missing.png")
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not a png")
    with pytest.raises(ValueError, match="cannot read"):
        read_depth(tmp_path / "corrupt.png", encoding="uint16")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "eight.png")
    with pytest.raises(ValueError, match="8-bit image"):
        read_depth(tmp_path / "eight.png", encoding="uint16")
    Image.fromarray(np.zeros((4, 4), np.uint16)).save(tmp_path / "sixteen.png")
    with pytest.raises(ValueError, match="not 8-bit"):
        read_depth(tmp_path / "sixteen.png", encoding="uint8")
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(ValueError, match="channels"):
        read_depth(tmp_path / "rgb.png", encoding="uint8")
    Image.fromarray(np.full((4, 4), 70000, np.int32)).save(tmp_path / "wide.tif")
    with pytest.raises(ValueError, match="outside the 16-bit range"):
        read_depth(tmp_path / "wide.tif", encoding="uint16")
    np.save(tmp_path / "empty.npy", np.zeros((0, 3), np.float32))
    with pytest.raises(ValueError, match="non-empty"):
        read_depth(tmp_path / "empty.npy")
    with open(tmp_path / "short.pfm", "wb") as f:
        f.write(b"Pf\n8 6\n-1.0\n" + b"\0" * 10)
    with pytest.raises(ValueError, match="truncated"):
        read_depth(tmp_path / "short.pfm")
    with pytest.raises(ValueError, match="kind must be"):
        read_depth(tmp_path / "eight.png", kind="inverse")


def test_manifest_errors(tmp_path):
    (tmp_path / "m.jsonl").write_text('{"id": "a", "depth": "a.png"}\n')
    with pytest.raises(ValueError, match="lacks"):
        read_manifest(tmp_path / "m.jsonl")
    (tmp_path / "m.jsonl").write_text("not json\n")
    with pytest.raises(ValueError, match="not a JSON object"):
        read_manifest(tmp_path / "m.jsonl")
