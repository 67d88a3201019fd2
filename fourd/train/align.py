"""Camera pose refinement by direct image alignment against the model.

Every few hundred steps each training camera is aligned to what the model renders from it (the
other cameras' blended views, its own excluded): the render gives every pixel on the subject a
colour and a depth, i.e. a 3D point; the camera's pose is then changed by a small rotation about
its centre and a shift of that centre so that its own (colour-corrected) image, sampled where
those points project, matches the render — a few damped Gauss–Newton steps on the six numbers,
with a robust (Huber) weight. For a subject small against its distance a turn of the camera and a
sideways shift of its centre move the image almost alike; a prior on the shift (as strong as the
data's own constraint on the rotation) settles that ambiguity toward the turn, so the centre moves
only where the subject's depth (parallax) asks for it. A whole image constrains six numbers far better than the one noisy
gradient a training step gives them (tried first: Adam on the pose from the photometric loss
wandered by about its own learning rate per step and made the injected 0.08° error worse).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from fourd.model.corrections import perturbed


def _sample(img: Tensor, uv: Tensor) -> tuple[Tensor, Tensor]:
    """img [H, W, 3], uv [N, 2] pixel coordinates (centres at +½) → (colours [N, 3], inside [N])."""
    H, W = img.shape[:2]
    g = torch.stack([2 * uv[:, 0] / W - 1, 2 * uv[:, 1] / H - 1], -1)[None, None]
    out = F.grid_sample(img.permute(2, 0, 1)[None], g, mode="bilinear", padding_mode="border", align_corners=False)
    inside = (uv[:, 0] > 1) & (uv[:, 1] > 1) & (uv[:, 0] < W - 1) & (uv[:, 1] < H - 1)
    return out[0, :, 0].T, inside


@torch.no_grad()
def align_camera(run, frames: list[int], cam: str, iterations: int = 12, max_pixels: int = 40_000,
                 max_step_deg: float = 0.5, shift_prior: float = 1.0) -> tuple[Tensor, Tensor] | None:
    """The pose change (rotation vector [3], centre shift [3] in world units) that aligns training
    camera ``cam``'s images of ``frames`` with the model's renders; None when too little of the
    subject is seen to trust it."""
    pts, ref, imgs, cams = [], [], [], []
    for f in frames:
        tgt = run.target(f, cam)
        out = run.render(f, tgt.camera, cam)
        a = out.image.alpha
        # every pixel the model covers, its silhouette included: against the background the outline
        # is the strongest cue an evenly coloured subject gives
        ij = (a > 0.5).nonzero()
        if ij.shape[0] < 200:
            continue
        if ij.shape[0] > max_pixels // len(frames):
            ij = ij[torch.randperm(ij.shape[0], generator=torch.Generator().manual_seed(f))[: max_pixels // len(frames)]]
        uv = torch.stack([ij[:, 1], ij[:, 0]], -1).to(a.dtype) + 0.5
        z = (out.image.depth / a.clamp_min(1e-6))[ij[:, 0], ij[:, 1]]
        cam0 = tgt.camera.detach()
        pts.append(cam0.unproject(uv[None], z[None])[0])
        ref.append(out.image.rgb[ij[:, 0], ij[:, 1]])
        imgs.append(tgt.image.detach())
        cams.append(cam0)
    if not pts:
        return None
    dev = pts[0].device

    def residual(delta: Tensor) -> tuple[Tensor, Tensor]:
        rs, ms = [], []
        for X, c, I, r0 in zip(pts, cams, imgs, ref):
            moved = perturbed(c, delta[:3], delta[3:])
            uv, _ = moved.project(X)
            col, inside = _sample(I, uv[0])
            rs.append((col - r0).reshape(-1))
            ms.append(inside.repeat_interleave(3))
        return torch.cat(rs), torch.cat(ms)

    scale = float(cams[0].centers[0].norm()) or 1.0  # shifts solved in units of the distance to the origin
    unit = torch.tensor([1.0, 1.0, 1.0, scale, scale, scale], device=dev, dtype=pts[0].dtype)
    delta = torch.zeros(6, device=dev, dtype=pts[0].dtype)
    r, m = residual(delta)
    lam = 1e-3
    prior = None
    for _ in range(iterations):
        # Jacobian by forward differences in the six (scaled) parameters
        eps = 1e-4
        J = torch.stack([(residual(delta + eps * unit * torch.eye(6, device=dev, dtype=delta.dtype)[k])[0] - r) / eps
                         for k in range(6)], -1)
        valid = m.float()
        sigma = 1.4826 * r[m].abs().median().clamp_min(1e-4)
        w = valid * torch.clamp(1.345 * sigma / r.abs().clamp_min(1e-12), max=1.0)  # Huber
        JtJ = J.T @ (w[:, None] * J)
        if prior is None:  # fixed at the first iteration: the data's constraint on the rotation
            prior = float(torch.diag(JtJ)[:3].mean()) * shift_prior
        P = torch.diag(torch.tensor([0, 0, 0, prior, prior, prior], device=dev, dtype=JtJ.dtype))
        x = delta / unit  # scaled parameters
        g = J.T @ (w * r) + P @ x
        step = -torch.linalg.solve(JtJ + P + lam * torch.diag(torch.diag(JtJ + P)) + 1e-9 * torch.eye(6, device=dev), g)
        cand = delta + step * unit
        r2, m2 = residual(cand)

        def cost(rr, mm, xx):
            return float((w * rr.pow(2) * mm).sum()) + float(xx @ P @ xx)

        if cost(r2, m2, cand / unit) < cost(r, m, x):
            delta, r, m = cand, r2, m2
            lam = max(lam / 3, 1e-6)
        else:
            lam *= 10
    ang = float(delta[:3].norm()) * 180 / torch.pi
    if ang > max_step_deg:  # more than calibration error: distrust it
        return None
    return delta[:3].float(), delta[3:].float()


@torch.no_grad()
def refine_poses(run, frames_per_camera: int = 2, generator: torch.Generator | None = None) -> dict:
    """One round: align every training camera (the corrections' parameters move by the found
    change). Returns per camera the rotation (degrees) applied this round."""
    corr = run.model.corrections
    frames = run.video.frames
    moved = {}
    for name in corr.names:
        pick = torch.randperm(len(frames), generator=generator)[:frames_per_camera].tolist()
        got = align_camera(run, [frames[i] for i in pick], name)
        if got is None:
            continue
        w, s = got
        i = corr.names.index(name)
        corr.rotation[i] += w.to(corr.rotation)
        corr.shift[i] += (s / corr.distance).to(corr.shift)
        moved[name] = float(w.norm()) * 180 / torch.pi
    return moved
