"""Quick pictures of coloured points (carved sequences, baked frames) through the point renderer."""

from __future__ import annotations

import numpy as np
import torch

from fourd.render.compositor import composite
from fourd.render.rasterize import rasterize_points
from fourd.structures.cameras import Cameras
from fourd.structures.fragments import RasterSettings


def render_points(points: torch.Tensor, colors: torch.Tensor, radius: float | torch.Tensor, camera: Cameras,
                  K: int = 4, density: float = 1.0, background=(0, 0, 0), backend: str = "auto") -> np.ndarray:
    """[H, W, 3] uint8 image of points [P, 3] with colours [P, 3] in [0, 1] drawn as discs."""
    radii = torch.as_tensor(radius, dtype=torch.float32, device=points.device).expand(points.shape[0])
    C = camera.centers[0]
    dist = (points - C).norm(dim=1)
    s = RasterSettings(K=K, near=max(1e-3, float(dist.min()) * 0.5), far=float(dist.max()) * 2 + 1e-3)
    with torch.no_grad():
        frags = rasterize_points(points.float(), radii, camera, s, backend=backend)
        out = composite(frags, points.float(), radii, torch.full_like(radii, density), colors.float(), camera,
                        background=torch.tensor(background, dtype=torch.float32))
    return (out.rgb.clamp(0, 1) * 255 + 0.5).byte().numpy()
