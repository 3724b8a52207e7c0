"""Comparing figures read back from the mart with the ones worked out by hand."""

from __future__ import annotations

import math


def close(a: float | None, b: float | None, rel_tol: float = 1e-9) -> bool:
    """Both missing, or equal but for floating-point error (within 1e-9 absolute or ``rel_tol``)."""
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=rel_tol, abs_tol=1e-9)
