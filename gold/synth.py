"""Shared helpers of the gold variant modules: seeded images and card lists."""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np

Cards = list[tuple[str, Any, str]]


def seed_of(name: str) -> int:
    """A stable seed for a file name (independent of which other files exist)."""
    return zlib.crc32(name.encode())


def image(
    shape: tuple[int, ...], seed: int, level: float, stars: int = 3, dtype: str = ">i4"
) -> np.ndarray[Any, Any]:
    """A seeded sky image: a level, Gaussian noise and a few Gaussian stars."""
    rng = np.random.default_rng(seed)
    data = rng.normal(level, max(level, 1.0) ** 0.5, size=shape)
    yy, xx = np.mgrid[: shape[-2], : shape[-1]]
    for _ in range(stars):
        y, x = rng.uniform(2, shape[-2] - 2), rng.uniform(2, shape[-1] - 2)
        data += rng.uniform(2000, 20000) * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / 4.0)
    return np.round(data).astype(dtype)


def cards_for(base: Cards, overrides: dict[str, Any]) -> Cards:
    """The base cards with some values replaced (None removes a card); new keys are appended."""
    out: Cards = []
    seen = set()
    for key, value, comment in base:
        seen.add(key)
        if key in overrides:
            if overrides[key] is None:
                continue
            value = overrides[key]
        out.append((key, value, comment))
    out.extend((k, v, "") for k, v in overrides.items() if k not in seen and v is not None)
    return out
