"""Street-scene geometry and the two appearance styles of the built-in synthetic benchmark.

`scene` draws a layout (labels, instances, parts) from a generator; `paint_source` and `paint_target`
turn the same layout into a flat "synthetic" image or a textured, lit, blurred and noisy "real" one.
Everything is vectorised numpy over the whole image (plus one PIL blur).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageFilter

ROAD, SIDEWALK, BUILDING, POLE, VEGETATION, SKY, PERSON, CAR = 0, 1, 2, 5, 8, 10, 11, 13
BODY, DARK, GLASS, SKIN, TRUNK = 0, 1, 2, 3, 4  # parts: shading within one instance, same label


@dataclass
class Scene:
    label: np.ndarray  # HxW uint8 train ids
    inst: np.ndarray  # HxW int32 instance ids, indexes `kinds`
    part: np.ndarray  # HxW uint8 part ids
    kinds: list  # class of each instance


@lru_cache(maxsize=8)
def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
    return yy, xx


class _Canvas:
    def __init__(self, h: int, w: int):
        self.label = np.full((h, w), SKY, np.uint8)
        self.inst = np.zeros((h, w), np.int32)
        self.part = np.zeros((h, w), np.uint8)
        self.kinds = [SKY]

    def new(self, kind: int) -> int:
        self.kinds.append(kind)
        return len(self.kinds) - 1

    def put(self, mask: np.ndarray, ident: int, part: int = BODY) -> None:
        self.label[mask] = self.kinds[ident]
        self.inst[mask] = ident
        self.part[mask] = part


def _blob(yy, xx, cy, cx, ry, rx, rng, wobble=0.18):
    """An ellipse whose radius wobbles with the angle (tree crowns, bushes)."""
    dy, dx = (yy - cy) / ry, (xx - cx) / rx
    ang = np.arctan2(dy, dx)
    k, ph = rng.integers(4, 9), rng.uniform(0, 2 * np.pi, 2)
    edge = 1 + wobble * (0.6 * np.sin(k * ang + ph[0]) + 0.4 * np.sin((2 * k + 1) * ang + ph[1]))
    return dx * dx + dy * dy < edge * edge


def _box(yy, xx, cy, cx, hh, hw, p=4.0):
    """A superellipse: a rounded rectangle centred on (cy, cx) with half sizes (hh, hw)."""
    return (np.abs(yy - cy) / hh) ** p + (np.abs(xx - cx) / hw) ** p < 1


def scene(rng: np.random.Generator, h: int, w: int) -> Scene:
    yy, xx = _grid(h, w)
    c = _Canvas(h, w)
    hy = rng.uniform(0.36, 0.5) * h  # horizon
    vx = rng.uniform(0.3, 0.7) * w  # vanishing point
    depth = np.clip((yy - hy) / (h - hy), 0, None)  # 0 at the horizon, 1 at the bottom row
    road = (rng.uniform(0.22, 0.4) * w, rng.uniform(0.22, 0.4) * w)  # half widths at the bottom (left, right)
    walk = (road[0] + rng.uniform(0.2, 0.45) * w, road[1] + rng.uniform(0.2, 0.45) * w)

    x = rng.uniform(-0.1, 0) * w  # buildings along the horizon, with gaps
    while x < w:
        bw = rng.uniform(0.07, 0.22) * w
        r = rng.random()
        if r < 0.75:
            top = hy - rng.uniform(0.1, 0.38) * h
            c.put((xx >= x) & (xx < x + bw) & (yy >= top) & (yy < hy + 1), c.new(BUILDING))
        elif r < 0.9:
            ry = rng.uniform(0.08, 0.16) * h
            c.put(_blob(yy, xx, hy - 0.5 * ry, x + bw / 2, ry, bw / 2 + 2, rng) & (yy < hy + 1), c.new(VEGETATION))
        x += bw

    ground = yy >= hy
    c.put(ground, c.new(SIDEWALK))
    off = xx - vx
    c.put(ground & (off > -road[0] * depth) & (off < road[1] * depth), c.new(ROAD))
    for sign, side in ((-1, 0), (1, 1)):  # receding facades beyond the sidewalks
        if rng.random() < 0.55:
            d = sign * off
            start = rng.uniform(0.15, 0.45) * w
            rise = rng.uniform(0.5, 1.2)
            c.put((d > start) & (d > walk[side] * depth) & (yy > hy - rise * d), c.new(BUILDING))

    objs = []  # (depth, kind) drawn far to near
    for _ in range(rng.integers(1, 4)):
        objs.append((rng.uniform(0.1, 0.95), VEGETATION))
    for _ in range(rng.integers(1, 5)):
        objs.append((rng.uniform(0.12, 1.05), CAR))
    for _ in range(rng.integers(1, 4)):
        objs.append((rng.uniform(0.2, 1.0), PERSON))
    for _ in range(rng.integers(1, 4)):
        objs.append((rng.uniform(0.15, 1.0), POLE))
    objs.sort(key=lambda o: o[0])
    for s, kind in objs:
        yg = hy + s * (h - hy)  # ground contact row
        side = int(rng.integers(0, 2))
        sign = -1 if side == 0 else 1
        if kind == CAR:
            cw = s * w * rng.uniform(0.26, 0.34)
            lo, hi = vx - road[0] * s + 0.5 * cw, vx + road[1] * s - 0.5 * cw
            xc = rng.uniform(lo, hi) if hi > lo else vx
            ident = c.new(CAR)
            c.put(_box(yy, xx, yg - 0.3 * cw, xc, 0.17 * cw, 0.5 * cw), ident)
            cab_y = yg - 0.59 * cw
            half = 0.36 * cw + 0.08 * cw * (yy - cab_y) / (0.13 * cw)  # trapezoid cabin
            cab = (np.abs(yy - cab_y) < 0.13 * cw) & (np.abs(xx - xc) < half)
            c.put(cab, ident)
            c.put(cab & (np.abs(yy - cab_y) < 0.09 * cw) & (np.abs(xx - xc) < half - 0.06 * cw), ident, GLASS)
            for wx in (-0.33, 0.33):
                c.put(_box(yy, xx, yg - 0.1 * cw, xc + wx * cw, 0.1 * cw, 0.1 * cw, 2.5), ident, DARK)
        elif kind == PERSON:
            ph = s * h * rng.uniform(0.45, 0.6)
            xc = vx + sign * (road[side] * s + rng.uniform(0.15, 0.85) * (walk[side] - road[side]) * s)
            ident = c.new(PERSON)
            c.put(_box(yy, xx, yg - 0.63 * ph, xc, 0.2 * ph, 0.12 * ph, 3), ident)
            for lx in (-0.055, 0.055):
                c.put((np.abs(xx - xc - lx * ph) < max(0.5, 0.04 * ph)) & (yy < yg) & (yy > yg - 0.48 * ph), ident, DARK)
            c.put(_box(yy, xx, yg - 0.9 * ph, xc, 0.09 * ph, 0.075 * ph, 2), ident, SKIN)
        elif kind == POLE:
            ph = s * h * rng.uniform(1.1, 1.8)
            xc = vx + sign * (road[side] * s + rng.uniform(0.05, 0.3) * (walk[side] - road[side]) * s)
            ident = c.new(POLE)
            c.put((np.abs(xx - xc) < max(0.5, 0.012 * s * w)) & (yy < yg) & (yy > yg - ph), ident)
            if rng.random() < 0.5:  # lamp arm over the road
                arm = (xx - xc) * -sign
                c.put((arm > 0) & (arm < 0.12 * ph) & (np.abs(yy - (yg - ph)) < max(0.5, 0.01 * s * w)), ident)
        else:  # a tree on or beyond the sidewalk
            th = s * h * rng.uniform(0.8, 1.3)
            xc = vx + sign * (road[side] * s + rng.uniform(0.4, 1.4) * (walk[side] - road[side]) * s)
            ident = c.new(VEGETATION)
            c.put((np.abs(xx - xc) < max(0.5, 0.035 * th)) & (yy < yg) & (yy > yg - 0.5 * th), ident, TRUNK)
            c.put(_blob(yy, xx, yg - 0.7 * th, xc, 0.3 * th, 0.3 * th * rng.uniform(0.8, 1.3), rng), ident)
    return Scene(c.label, c.inst, c.part, c.kinds)


# --- styles -----------------------------------------------------------------------------------------

_SOURCE = {  # flat, saturated "game" colours
    ROAD: (100, 60, 150), SIDEWALK: (235, 110, 200), BUILDING: (235, 135, 40), POLE: (250, 225, 20),
    VEGETATION: (40, 215, 50), SKY: (50, 140, 255), PERSON: (240, 30, 40), CAR: (30, 50, 225),
}
_SOURCE_PART = {BODY: 1.0, DARK: 0.35, GLASS: 0.6, SKIN: 1.25, TRUNK: 0.55}

_TARGET = {  # duller, darker or paler, warmer: a photograph of the same world
    ROAD: (72, 72, 76), SIDEWALK: (165, 155, 140), BUILDING: (138, 100, 82), POLE: (96, 98, 104),
    VEGETATION: (62, 84, 40), SKY: (190, 205, 218), PERSON: (60, 52, 58), CAR: (150, 150, 150),
}
_CAR_PAINT = np.array([(200, 200, 205), (35, 35, 40), (140, 140, 148), (130, 35, 35), (40, 60, 105), (95, 100, 90)], np.float32)
_TARGET_PART = {DARK: (25, 25, 28), GLASS: (45, 55, 65), SKIN: (190, 150, 125), TRUNK: (70, 55, 40)}


def _instance_colours(sc: Scene, palette: dict, rng: np.random.Generator, jitter: float) -> np.ndarray:
    base = np.array([palette[k] for k in sc.kinds], np.float32)
    return base + rng.normal(0, jitter, base.shape).astype(np.float32)


def paint_source(sc: Scene, rng: np.random.Generator) -> np.ndarray:
    colours = _instance_colours(sc, _SOURCE, rng, 10.0)
    shade = np.zeros(len(_SOURCE_PART), np.float32)
    for part, f in _SOURCE_PART.items():
        shade[part] = f
    img = colours[sc.inst] * shade[sc.part][..., None]
    return np.clip(img, 0, 255).round().astype(np.uint8)


def _noise(rng: np.random.Generator, h: int, w: int, cell: int) -> np.ndarray:
    """Smooth value noise of roughly unit variance with features about `cell` pixels wide."""
    gh, gw = h // cell + 2, w // cell + 2
    g = Image.fromarray(rng.standard_normal((gh, gw)).astype(np.float32), "F")
    return np.asarray(g.resize((gw * cell, gh * cell), Image.BILINEAR))[:h, :w] * 1.6


def paint_target(sc: Scene, rng: np.random.Generator) -> np.ndarray:
    h, w = sc.label.shape
    yy, xx = _grid(h, w)
    lab, inst = sc.label, sc.inst
    colours = _instance_colours(sc, _TARGET, rng, 9.0)
    cars = np.array([k == CAR for k in sc.kinds])
    colours[cars] = _CAR_PAINT[rng.integers(0, len(_CAR_PAINT), cars.sum())] + rng.normal(0, 8, (cars.sum(), 3))
    people = np.array([k == PERSON for k in sc.kinds])
    colours[people] = rng.uniform(25, 130, (people.sum(), 1)) * rng.uniform(0.7, 1.2, (people.sum(), 3))
    img = colours[inst]
    for part, rgb in _TARGET_PART.items():
        img[sc.part == part] = rgb
    img += rng.normal(0, 6, (len(sc.kinds), 1)).astype(np.float32)[inst]  # per-instance brightness

    fine, mid = rng.standard_normal((h, w)).astype(np.float32), _noise(rng, h, w, 4)
    sky = lab == SKY
    horizon = yy[sky].max() if sky.any() else h / 2
    img[sky] += (yy[sky] / horizon * 35 - 10)[:, None] + 6 * _noise(rng, h, w, 12)[sky][:, None]
    img[lab == ROAD] += (7 * fine + 5 * mid)[lab == ROAD][:, None]
    walk = lab == SIDEWALK
    tiles = ((yy.astype(np.int32) % 4 == 0) | ((xx.astype(np.int32) + 2 * yy.astype(np.int32) // 4) % 6 == 0))
    img[walk] += (-18 * tiles + 4 * fine)[walk][:, None]
    veg = lab == VEGETATION
    leaves = 16 * fine + 14 * _noise(rng, h, w, 2) + 10 * mid
    img[veg] += leaves[veg][:, None] * np.array([0.8, 1.0, 0.6], np.float32)
    build = (lab == BUILDING) & (sc.part == BODY)
    n = len(sc.kinds)
    px, py = rng.integers(3, 7, n), rng.integers(4, 8, n)
    phx, phy = rng.integers(0, 7, n), rng.integers(0, 8, n)
    xi, yi = xx.astype(np.int32), yy.astype(np.int32)
    windows = ((xi + phx[inst]) % px[inst] < (px[inst] + 1) // 2) & ((yi + phy[inst]) % py[inst] < py[inst] // 2)
    win = build & windows & (rng.random(n) < 0.85)[inst]
    img[win] = img[win] * 0.35 + np.array([60, 72, 88], np.float32) * 0.65
    img[build] += 5 * mid[build][:, None]

    img *= rng.uniform(0.9, 1.1, 3).astype(np.float32)  # white balance
    ang = rng.uniform(0, 2 * np.pi)
    ramp = ((xx / w - 0.5) * np.cos(ang) + (yy / h - 0.5) * np.sin(ang)) * rng.uniform(0.05, 0.35)
    vign = 1 - rng.uniform(0.05, 0.3) * (((xx / w - 0.5) ** 2 + (yy / h - 0.5) ** 2) * 2)
    light = (1 + ramp) * vign * rng.uniform(0.8, 1.15)
    if rng.random() < 0.5:  # a cast shadow over part of the ground and what stands on it
        nx, ny = rng.normal(size=2)
        cut = (xx / w - rng.uniform(0.2, 0.8)) * nx + (yy / h - rng.uniform(0.5, 0.9)) * ny > 0
        light = np.where(cut & (yy > horizon), light * rng.uniform(0.6, 0.85), light)
    img *= light[..., None]
    gamma = rng.uniform(0.85, 1.15)
    img = 255 * (np.clip(img, 0, 255) / 255) ** gamma
    out = Image.fromarray(img.round().astype(np.uint8)).filter(ImageFilter.GaussianBlur(rng.uniform(0.4, 0.9)))
    img = np.asarray(out, np.float32) + rng.normal(0, rng.uniform(2, 5), (h, w, 3)).astype(np.float32)
    return np.clip(img, 0, 255).round().astype(np.uint8)
