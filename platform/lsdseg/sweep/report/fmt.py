"""How the report writes numbers: scores are fractions (0.314) and read as mIoU points (31.4)."""
from __future__ import annotations

import math

MINUS = "\u2212"  # a typographic minus: "-1.0" and "+1.0" line up in a table


def percent(value: float) -> str:
    """A fraction as mIoU points with one decimal; "-" for a missing value (NaN)."""
    return "-" if math.isnan(value) else f"{value * 100:.1f}"


def points(value: float) -> str:
    """A signed difference in mIoU points: "+2.1", "−1.0"."""
    return f"{value * 100:+.1f}".replace("-", MINUS)


def number(value: object) -> str:
    """A searched parameter's value, short: 0.000123 as 0.000123, 12.3456 as 12.3."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:.3g}"
    return "-" if value is None else str(value)
