"""Procedural 3-D scenes ray-cast to aligned RGB, depth, instance masks and boxes.

Rooms (floor, ceiling, four walls) and outdoor ground planes with sky, furnished with boxes
(rotated about the vertical), spheres, vertical cylinders and tables (a top on four thin legs),
seen by random pinhole cameras. Rooms are cluttered the way real ones are: cabinets and shelves
stand against the walls, thin poles and table legs give thin structures, and smaller things
stand on the tables.
Everything is exact and deterministic by seed: training data for the depth tokenizer and
curriculum data (counting, relative depth) for the LLaVA plugin.

Axis legend: ``H, W`` image rows and columns, ``N`` objects. World frame: x right, y up, z
forward; depth is the z-distance along the camera's optical axis, in metres.
"""

from __future__ import annotations

import dataclasses

import numpy as np

SCENE_KINDS = ("indoor", "outdoor")
SHAPES = ("box", "sphere", "cylinder", "table")
COLORS = {
    "red": (200, 40, 40), "green": (50, 160, 60), "blue": (40, 80, 200), "yellow": (220, 200, 40),
    "purple": (130, 60, 160), "orange": (230, 130, 30), "white": (225, 225, 225), "gray": (120, 120, 120),
}


@dataclasses.dataclass
class Scene:
    """A rendered scene.

    Attributes:
        rgb: ``(H, W, 3)`` uint8.
        depth: ``(H, W)`` float32 metres; sky is ``inf`` (no surface).
        instances: ``(H, W)`` int16, 0 for background, i + 1 for object i.
        boxes: ``(N, 4)`` float32 xyxy pixel boxes of the visible objects.
        labels: ``N`` names such as "red sphere".
        kind: "indoor" or "outdoor".
        seed: the seed that made it.
    """

    rgb: np.ndarray
    depth: np.ndarray
    instances: np.ndarray
    boxes: np.ndarray
    labels: list[str]
    kind: str
    seed: int

    @property
    def masks(self) -> np.ndarray:
        """``(N, H, W)`` bool instance masks."""
        return self.instances[None] == np.arange(1, len(self.labels) + 1)[:, None, None]


@dataclasses.dataclass
class _Object:
    shape: str
    center: np.ndarray  # (3,) bottom-centre for boxes, cylinders and tables, centre for spheres
    size: np.ndarray  # box, table: half extents (3,); sphere: (r, r, r); cylinder: (r, half height, r)
    yaw: float
    color: str


def _camera_rays(h: int, w: int, fov_deg: float, pitch: float, yaw: float) -> tuple[np.ndarray, np.ndarray]:
    """World-frame unit ray directions ``(H, W, 3)`` and the optical axis ``(3,)``."""
    f = 0.5 * w / np.tan(np.radians(fov_deg) / 2)
    u, v = np.meshgrid(np.arange(w) + 0.5 - w / 2, np.arange(h) + 0.5 - h / 2)
    cam = np.stack([u / f, -v / f, np.ones_like(u)], axis=-1)  # (H, W, 3)
    cp, sp, cy, sy = np.cos(pitch), np.sin(pitch), np.cos(yaw), np.sin(yaw)
    pitch_m = np.array([[1, 0, 0], [0, cp, sp], [0, -sp, cp]])  # positive pitch looks up
    yaw_m = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rot = yaw_m @ pitch_m
    dirs = cam @ rot.T
    return dirs / np.linalg.norm(dirs, axis=-1, keepdims=True), rot @ np.array([0.0, 0.0, 1.0])


def _hit_plane(o: np.ndarray, d: np.ndarray, axis: int, value: float) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (value - o[axis]) / d[..., axis]
    return np.where(t > 1e-6, t, np.inf)


def _hit_box(o: np.ndarray, d: np.ndarray, obj: _Object) -> np.ndarray:
    c, s = np.cos(-obj.yaw), np.sin(-obj.yaw)
    rot = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    centre = obj.center + np.array([0, obj.size[1], 0])
    lo_o = rot @ (o - centre)
    ld = d @ rot.T
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = (-obj.size - lo_o) / ld
        t2 = (obj.size - lo_o) / ld
    tmin = np.nanmax(np.minimum(t1, t2), axis=-1)
    tmax = np.nanmin(np.maximum(t1, t2), axis=-1)
    return np.where((tmax >= tmin) & (tmin > 1e-6), tmin, np.inf)


def _hit_sphere(o: np.ndarray, d: np.ndarray, obj: _Object) -> np.ndarray:
    oc = o - obj.center
    b = d @ oc
    disc = b * b - (oc @ oc - obj.size[0] ** 2)
    t = -b - np.sqrt(np.maximum(disc, 0))
    return np.where((disc >= 0) & (t > 1e-6), t, np.inf)


def _hit_cylinder(o: np.ndarray, d: np.ndarray, obj: _Object) -> np.ndarray:
    r, hh = obj.size[0], obj.size[1]
    ox, oz = o[0] - obj.center[0], o[2] - obj.center[2]
    dx, dz = d[..., 0], d[..., 2]
    a = dx * dx + dz * dz
    b = ox * dx + oz * dz
    disc = b * b - a * (ox * ox + oz * oz - r * r)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (-b - np.sqrt(np.maximum(disc, 0))) / a
    y = o[1] + t * d[..., 1]
    side = np.where((disc >= 0) & (t > 1e-6) & (y >= obj.center[1]) & (y <= obj.center[1] + 2 * hh), t, np.inf)
    top = _hit_plane(o, d, 1, obj.center[1] + 2 * hh)
    px, pz = o[0] + top * dx - obj.center[0], o[2] + top * dz - obj.center[2]
    cap = np.where(px * px + pz * pz <= r * r, top, np.inf)
    return np.minimum(side, cap)


def _table_parts(obj: _Object) -> list[_Object]:
    """A table as boxes: a 3 cm top at its full height on four legs of 4 cm square."""
    (hx, hy, hz), leg, top = obj.size, 0.02, 0.015
    c, s = np.cos(obj.yaw), np.sin(obj.yaw)
    parts = [_Object("box", obj.center + np.array([0, 2 * hy - 2 * top, 0]), np.array([hx, top, hz]), obj.yaw, "")]
    for sx, sz in ((-1, -1), (-1, 1), (1, -1), (1, 1)):
        lx, lz = sx * (hx - leg), sz * (hz - leg)  # leg offset in the table's frame, turned by its yaw
        offset = np.array([c * lx + s * lz, 0, -s * lx + c * lz])
        parts.append(_Object("box", obj.center + offset, np.array([leg, hy - top, leg]), obj.yaw, ""))
    return parts


def _hit_table(o: np.ndarray, d: np.ndarray, obj: _Object) -> np.ndarray:
    return np.minimum.reduce([_hit_box(o, d, part) for part in _table_parts(obj)])


_HIT = {"box": _hit_box, "sphere": _hit_sphere, "cylinder": _hit_cylinder, "table": _hit_table}


def _object(rng: np.random.Generator, shape: str, x: float, z: float, scale: float, lift: float = 0.0) -> _Object:
    if shape == "box":
        size = np.array([scale, scale * rng.uniform(0.4, 2.5), scale * rng.uniform(0.5, 1.5)])
        obj = _Object(shape, np.array([x, lift, z]), size, rng.uniform(0, np.pi), "")
    elif shape == "sphere":
        obj = _Object(shape, np.array([x, lift + scale, z]), np.full(3, scale), 0.0, "")
    elif shape == "cylinder":
        obj = _Object(shape, np.array([x, lift, z]), np.array([scale * 0.6, scale * rng.uniform(0.6, 3), 0]), 0.0, "")
    else:  # table: 0.4-1.1 m high
        size = np.array([scale * rng.uniform(1.0, 2.0), rng.uniform(0.2, 0.55), scale * rng.uniform(0.8, 1.5)])
        obj = _Object(shape, np.array([x, lift, z]), size, rng.uniform(0, np.pi), "")
    obj.color = _color(rng)
    return obj


def _color(rng: np.random.Generator) -> str:
    return list(COLORS)[int(rng.integers(len(COLORS)))]


def _place_objects(rng: np.random.Generator, kind: str, extent: float, room: tuple[float, float] | None = None) -> list[_Object]:
    """Free-standing objects; in a room of half extents ``room`` also cabinets along the walls,
    thin poles and things standing on the tables."""
    n = int(rng.integers(1, 9 if kind == "indoor" else 13))
    objects = []
    for _ in range(n):
        shape = SHAPES[int(rng.integers(len(SHAPES)))]
        scale = rng.uniform(0.15, 0.7) if kind == "indoor" else rng.uniform(0.3, 4.0)
        if kind == "indoor":
            x, z = rng.uniform(-extent, extent), rng.uniform(-extent, extent)
        else:
            x, z = rng.uniform(-extent, extent), rng.uniform(1.5, extent * 1.5)
        objects.append(_object(rng, shape, x, z, scale))
    if room is None:
        return objects
    half_w, half_d = room
    for _ in range(int(rng.integers(0, 6))):  # cabinets and shelves against a side or back wall
        hx, hy, hz = rng.uniform(0.2, 0.8), rng.uniform(0.3, 1.1), rng.uniform(0.15, 0.35)
        if rng.random() < 0.5:
            side = rng.choice([-1.0, 1.0])
            centre, size = np.array([side * (half_w - hz), 0, rng.uniform(-half_d, half_d) * 0.8]), np.array([hz, hy, hx])
        else:
            centre, size = np.array([rng.uniform(-half_w, half_w) * 0.8, 0, half_d - hz]), np.array([hx, hy, hz])
        objects.append(_Object("box", centre, size, 0.0, _color(rng)))
    for _ in range(int(rng.integers(0, 3))):  # thin poles: lamps, stands
        pole = _object(rng, "cylinder", rng.uniform(-extent, extent), rng.uniform(-extent, extent), 0.1)
        pole.size = np.array([rng.uniform(0.015, 0.06), rng.uniform(0.4, 1.0), 0])
        objects.append(pole)
    for table in [o for o in objects if o.shape == "table"]:  # clutter on the tables
        for _ in range(int(rng.integers(0, 4))):
            u, v = rng.uniform(-0.7, 0.7, 2) * table.size[[0, 2]]
            shape = ("box", "sphere", "cylinder")[int(rng.integers(3))]
            objects.append(_object(rng, shape, table.center[0] + u, table.center[2] + v, rng.uniform(0.04, 0.15),
                                   lift=2 * table.size[1]))
    return objects


def render_scene(seed: int, size: tuple[int, int] = (240, 320), kind: str | None = None) -> Scene:
    """Render one scene; the same seed, size and kind always give the same arrays.

    Args:
        seed: random seed.
        size: ``(H, W)`` of the image.
        kind: "indoor", "outdoor", or ``None`` to draw one (60 % indoor).
    """
    if kind is not None and kind not in SCENE_KINDS:
        raise ValueError(f"kind must be one of {SCENE_KINDS} or None, got {kind!r}")
    h, w = size
    if h < 8 or w < 8:
        raise ValueError(f"size must be at least 8×8 pixels, got {size}")
    rng = np.random.default_rng(seed)
    kind = kind or ("indoor" if rng.random() < 0.6 else "outdoor")
    if kind == "indoor":
        half_w, half_d, height = rng.uniform(1.5, 5), rng.uniform(1.5, 6), rng.uniform(2.4, 3.6)
        eye = np.array([rng.uniform(-0.5, 0.5) * half_w, rng.uniform(0.8, 2.0), -half_d + rng.uniform(0.2, 1.0)])
        objects = _place_objects(rng, kind, min(half_w, half_d) * 0.8, room=(half_w, half_d))
        pitch, yaw = rng.uniform(-0.5, 0.15), rng.uniform(-0.5, 0.5)
    else:
        eye = np.array([0.0, rng.uniform(1.0, 8.0), 0.0])
        objects = _place_objects(rng, kind, rng.uniform(10, 60))
        pitch, yaw = rng.uniform(-0.35, 0.05), rng.uniform(-0.3, 0.3)
    dirs, axis = _camera_rays(h, w, rng.uniform(45, 90), pitch, yaw)

    # Background surfaces: floor / ground, and for rooms the ceiling and walls.
    t_bg = _hit_plane(eye, dirs, 1, 0.0)
    bg_id = np.zeros((h, w), np.int16)  # 0 floor, 1 ceiling, 2.. walls, -1 sky
    if kind == "indoor":
        for i, (ax, val) in enumerate([(1, height), (0, -half_w), (0, half_w), (2, -half_d), (2, half_d)], start=1):
            t = _hit_plane(eye, dirs, ax, val)
            closer = t < t_bg
            t_bg, bg_id = np.where(closer, t, t_bg), np.where(closer, i, bg_id)
    else:
        bg_id = np.where(np.isinf(t_bg), -1, 0).astype(np.int16)

    t_best, instances = t_bg, np.zeros((h, w), np.int16)
    for i, obj in enumerate(objects, start=1):
        t = _HIT[obj.shape](eye, dirs, obj)
        closer = t < t_best
        t_best, instances = np.where(closer, t, t_best), np.where(closer, i, instances)

    depth = (t_best * (dirs @ axis)).astype(np.float32)  # z-depth; inf where only sky
    rgb = _shade(rng, kind, eye, dirs, t_best, instances, bg_id, objects)
    boxes, labels, keep = [], [], []
    for i, obj in enumerate(objects, start=1):
        ys, xs = np.nonzero(instances == i)
        if len(xs) >= 4:
            boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
            labels.append(f"{obj.color} {obj.shape}")
            keep.append(i)
    remap = np.zeros(len(objects) + 1, np.int16)
    remap[keep] = np.arange(1, len(keep) + 1)
    return Scene(rgb=rgb, depth=depth, instances=remap[instances],
                 boxes=np.array(boxes, np.float32).reshape(-1, 4), labels=labels, kind=kind, seed=seed)


def _shade(rng, kind, eye, dirs, t, instances, bg_id, objects) -> np.ndarray:
    """Flat colours with distance fog, a checkered floor and a sky gradient."""
    h, w = instances.shape
    palette = np.array([COLORS[o.color] for o in objects] or [(0, 0, 0)], np.float32)
    rgb = np.zeros((h, w, 3), np.float32)
    wall = np.array(rng.uniform(120, 220, 3), np.float32) if kind == "indoor" else np.array([110, 140, 80], np.float32)
    rgb[:] = wall
    hit = np.where(np.isinf(t), 0, t)[..., None] * dirs + eye
    floor = (bg_id == 0) & (instances == 0)
    checker = ((np.floor(hit[..., 0]) + np.floor(hit[..., 2])) % 2 == 0)[..., None]
    rgb = np.where(floor[..., None], np.where(checker, wall * 0.6, wall * 0.8), rgb)
    rgb = np.where((bg_id > 0)[..., None] & (instances == 0)[..., None], wall * (0.7 + 0.06 * bg_id[..., None]), rgb)
    obj = instances > 0
    rgb[obj] = palette[instances[obj] - 1] * (0.6 + 0.4 * np.clip(-dirs[obj][:, 1] + 0.5, 0, 1))[:, None]
    sky = np.isinf(t)
    rgb[sky] = (np.array([150, 190, 240], np.float32) * (0.8 + 0.2 * dirs[sky][:, 1:2]))
    fog = np.exp(-np.where(np.isinf(t), 0, t) / (80 if kind == "outdoor" else 30))[..., None]
    rgb = np.where(sky[..., None], rgb, rgb * fog + 200 * (1 - fog))
    return np.clip(rgb, 0, 255).astype(np.uint8)
