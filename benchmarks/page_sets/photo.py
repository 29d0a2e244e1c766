"""Photographed-page degradations (OpenCV and numpy).

In: the page raster (BGR uint8), its line boxes as quadrilaterals [N, 4, 2] in pixels, the page's generator and
the border's share of each side. Out: ``photograph``'s photo (BGR uint8, the border around the page) and the
quadrilaterals through the same homography: paper tint and texture, a background border, rotation and
perspective, uneven light and shadow, a colour cast, blur, sensor noise, sometimes grey.
"""

from __future__ import annotations

import math

import cv2
import numpy as np


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cells: int) -> np.ndarray:
    coarse = rng.standard_normal((cells, cells)).astype(np.float32)
    return cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)


def photograph(page: np.ndarray, quads: np.ndarray, rng: np.random.Generator, border: tuple
                ) -> tuple[np.ndarray, np.ndarray]:
    """The page (BGR uint8) as a slightly skewed photo: (image, the quads [N, 4, 2] through the same homography)."""
    h, w = page.shape[:2]
    image = page.astype(np.float32) / 255.0
    red = float(rng.uniform(0.9, 1.0))
    green = red - float(rng.uniform(0.0, 0.04))
    tint = np.float32([green - float(rng.uniform(0.0, 0.08)), green, red])  # BGR: warm paper
    image = image * tint * (1.0 + 0.02 * float(rng.uniform(0, 1)) * _smooth_noise(rng, h, w, 24)[..., None])
    bx, by = round(w * border[0]), round(h * border[1])
    width, height = w + 2 * bx, h + 2 * by
    desk = np.float32(rng.uniform(0.05, 0.75, 3)) if rng.random() < 0.8 else np.float32([0.9, 0.9, 0.9])
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = float(rng.uniform(0, 2 * np.pi))
    ramp = (math.cos(angle) * xx / width + math.sin(angle) * yy / height)[..., None]
    background = desk * (0.8 + 0.4 * ramp) + 0.03 * rng.standard_normal((height, width, 1)).astype(np.float32)
    background = cv2.GaussianBlur(background, (0, 0), 1.0).reshape(height, width, 3)
    source = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    turn = np.radians(float(np.clip(rng.normal(0.0, 1.2), -3.0, 3.0)))
    rotation = np.float32([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
    shake = float(rng.uniform(0.0, 0.03))
    target = (source - [w / 2, h / 2]) @ rotation.T + [width / 2, height / 2]
    target += rng.uniform(-shake, shake, (4, 2)) * [w, h]
    if bx or by:  # with a border the whole page stays in the picture
        centre = np.float32([width / 2, height / 2])
        reach = np.max(np.abs(target - centre) / (centre - 1.0))
        if reach > 1.0:
            target = centre + (target - centre) / reach
    matrix = cv2.getPerspectiveTransform(source, target.astype(np.float32))
    photo = np.ascontiguousarray(background, dtype=np.float32)  # the same type as the page: drawn into in place
    photo = cv2.warpPerspective(image, matrix, (width, height), dst=photo, flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_TRANSPARENT)
    light = 1.0 + float(rng.uniform(0.0, 0.3)) * (ramp - 0.5) * (1 if rng.random() < 0.5 else -1)
    spot_x, spot_y = float(rng.uniform(0, width)), float(rng.uniform(0, height))
    spread = float(rng.uniform(0.2, 0.6)) * max(width, height)
    spot = np.exp(-((xx - spot_x) ** 2 + (yy - spot_y) ** 2) / (2 * spread ** 2))[..., None]
    light = light * (1.0 + float(rng.uniform(-0.2, 0.2)) * spot)
    if rng.random() < 0.3:  # a soft shadow edge across the page
        edge = float(rng.uniform(0, 2 * np.pi))
        distance = np.cos(edge) * (xx - width / 2) + np.sin(edge) * (yy - height / 2) - float(
            rng.uniform(-0.3, 0.3)) * max(width, height)
        softness = float(rng.uniform(0.01, 0.08)) * max(width, height)
        step = 0.5 * (1.0 + np.tanh(distance / (2.0 * softness)))
        light = light * (1.0 - float(rng.uniform(0.15, 0.45)) * step)[..., None]
    photo = photo * light * np.float32(rng.uniform(0.92, 1.08, 3))
    if rng.random() < 0.75:
        photo = cv2.GaussianBlur(photo, (0, 0), float(rng.uniform(0.3, 1.1)))
    photo = photo + float(rng.uniform(0.005, 0.03)) * rng.standard_normal(photo.shape).astype(np.float32)
    if rng.random() < 0.15:
        grey = photo @ np.float32([0.114, 0.587, 0.299])
        photo = np.repeat(grey[..., None], 3, axis=2)
    photo = np.clip(photo * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if len(quads):
        quads = cv2.perspectiveTransform(quads.reshape(-1, 1, 2).astype(np.float64), matrix).reshape(-1, 4, 2)
    return photo, quads
