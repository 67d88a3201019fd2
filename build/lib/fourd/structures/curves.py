"""Cubic Hermite interpolation: the one definition camera paths (Catmull-Rom keyframes) and glTF
animation (CUBICSPLINE samplers) share."""

from __future__ import annotations


def hermite(p0, p1, m0, m1, h: float, s: float):
    """The cubic Hermite curve from p0 to p1 on a segment of duration ``h`` at fraction ``s`` in
    [0, 1], with tangents m0, m1 per unit time (arrays or tensors of one shape)."""
    s2, s3 = s * s, s * s * s
    return (2 * s3 - 3 * s2 + 1) * p0 + (s3 - 2 * s2 + s) * h * m0 + (-2 * s3 + 3 * s2) * p1 + (s3 - s2) * h * m1
