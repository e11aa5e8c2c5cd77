"""The procedural scene generator: deterministic, aligned outputs, sane geometry."""

from __future__ import annotations

import numpy as np
import pytest

from perceptok.synthetic import render_scene


def test_deterministic_by_seed():
    a, b = render_scene(7, (60, 80)), render_scene(7, (60, 80))
    assert np.array_equal(a.rgb, b.rgb) and np.array_equal(a.depth, b.depth) and a.labels == b.labels
    c = render_scene(8, (60, 80))
    assert not np.array_equal(a.depth, c.depth)


@pytest.mark.parametrize("kind", ["indoor", "outdoor"])
def test_outputs_are_aligned(kind):
    for seed in range(5):
        s = render_scene(seed, (72, 96), kind=kind)
        assert s.rgb.shape == (72, 96, 3) and s.depth.shape == (72, 96) and s.kind == kind
        assert len(s.boxes) == len(s.labels) == s.masks.shape[0]
        finite = np.isfinite(s.depth)
        assert (s.depth[finite] > 0).all()
        if kind == "indoor":
            assert finite.all()  # a closed room: every ray hits something
        for box, mask in zip(s.boxes, s.masks):
            ys, xs = np.nonzero(mask)
            assert box.tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
        assert (s.instances[~finite] == 0).all()


def test_bad_arguments():
    with pytest.raises(ValueError, match="kind"):
        render_scene(0, kind="underwater")
    with pytest.raises(ValueError, match="8×8"):
        render_scene(0, size=(4, 4))


def test_rooms_are_furnished_with_tables_cabinets_and_thin_structures():
    scenes = [render_scene(seed, (96, 128), kind="indoor") for seed in range(12)]
    labels = [label for s in scenes for label in s.labels]
    assert any(label.endswith("table") for label in labels)
    assert np.mean([len(s.labels) for s in scenes]) > 4  # cluttered rather than a few objects
    # thin structures: some object is visible in columns only a few pixels wide (legs, poles)
    widths = [int((s.instances == i).any(0).sum()) for s in scenes for i in range(1, len(s.labels) + 1)]
    assert min(widths) <= 4
