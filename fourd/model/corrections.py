"""Per-camera corrections learned with the model: what a real rig gets slightly wrong.

- **Colour.** Cameras of a rig disagree in colour (gain, white balance, offset). Each training
  camera gets an affine correction ``x ↦ A x + b`` (3×3 + offset, starting at the identity) that
  maps its images into one shared colour space; it is applied to the source views that are blended
  and to the training targets they are compared with. The corrections' mean is held at the
  identity (the mean of the deltas is subtracted), so the scene's colour stays anchored to the
  rig as a whole. They are fitted against the model's renders (:mod:`fourd.train.align`).
- **Pose.** Calibration is off by a fraction of a pixel to a few pixels. Each training camera gets
  a small rotation about its centre (a rotation vector) and a shift of its centre (in units of the
  cameras' distance to the subject), the shifts' mean held at zero so the world frame does not
  drift (the turns' mean is not held: turning every camera alike about its own centre is no
  motion of the whole rig, and a real rig can be off that way). They start where the checks before
  training put them (rig check, silhouette and surface alignment) and can be aligned with the
  model's renders (:mod:`fourd.train.align`); on top, a turn per camera (``turn``, in the camera's
  own frame, its mean held at zero) is learned by the optimizer with the model
  (``TrainConfig.lr_pose``).

Held-out cameras are never corrected: they are the ground truth evaluation compares against.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from fourd.structures.cameras import Cameras


def _skew(w: Tensor) -> Tensor:
    """[B, 3] → [B, 3, 3] cross-product matrices."""
    z = torch.zeros_like(w[:, 0])
    return torch.stack([torch.stack([z, -w[:, 2], w[:, 1]], -1),
                        torch.stack([w[:, 2], z, -w[:, 0]], -1),
                        torch.stack([-w[:, 1], w[:, 0], z], -1)], 1)


def rotation_from_vector(w: Tensor) -> Tensor:
    """[B, 3] rotation vectors (axis × angle, radians) → [B, 3, 3] rotation matrices."""
    return torch.linalg.matrix_exp(_skew(w))


def perturbed(camera: Cameras, rotation: Tensor, shift: Tensor) -> Cameras:
    """``camera`` (one) turned by ``rotation`` [3] (a rotation vector, radians) about its centre and
    its centre moved by ``shift`` [3] (world units)."""
    R = rotation_from_vector(rotation.reshape(1, 3).to(camera.R)) @ camera.R
    C = camera.centers + shift.reshape(1, 3).to(camera.R)
    return Cameras(camera.K, R, -(R @ C[..., None])[..., 0], camera.H, camera.W, camera.D, list(camera.names))


class CameraCorrections(nn.Module):
    def __init__(self, names: list[str], distance: float = 1.0, hold_turn_mean: bool = False):
        super().__init__()
        self.hold_turn_mean = bool(hold_turn_mean)  # the old runs' way (ModelConfig.hold_turn_mean)
        self.names = list(names)
        self._index = {n: i for i, n in enumerate(self.names)}
        self.register_buffer("distance", torch.tensor(float(distance)))  # the rig's distance to the subject
        C = len(self.names)
        self.colour_matrix = nn.Parameter(torch.zeros(C, 3, 3))  # delta from the identity
        self.colour_offset = nn.Parameter(torch.zeros(C, 3))
        self.rotation = nn.Parameter(torch.zeros(C, 3))  # radians
        self.shift = nn.Parameter(torch.zeros(C, 3))  # centre shift, in units of ``distance``
        # the turns training learns on top (TrainConfig.lr_pose), in each camera's own frame, their
        # mean held at zero: every camera tilting alike moves every image as the subject rising
        # would, which the held-out cameras would see as an error
        self.turn = nn.Parameter(torch.zeros(C, 3))

    def has(self, name: str) -> bool:
        return name in self._index

    # --------------------------------------------------------------- colour
    def colour_params(self) -> tuple[Tensor, Tensor]:
        """(A [C, 3, 3], b [C, 3]) of every camera, their mean the identity."""
        d = self.colour_matrix - self.colour_matrix.mean(0, keepdim=True)
        b = self.colour_offset - self.colour_offset.mean(0, keepdim=True)
        return torch.eye(3, device=d.device) + d, b

    def colour(self, image: Tensor, name: str, channels_first: bool = False) -> Tensor:
        """``image`` of camera ``name`` ([..., 3], or [3, h, w] with ``channels_first``) in the shared
        colour space; unchanged for cameras without a correction (held out)."""
        if name not in self._index:
            return image
        A, b = self.colour_params()
        i = self._index[name]
        A, b = A[i].to(image), b[i].to(image)
        if channels_first:
            return torch.einsum("ij,jhw->ihw", A, image) + b[:, None, None]
        return image @ A.T + b

    def gains(self) -> Tensor:
        """[C, 3] the colour gain each camera was found to have (1 / the diagonal of its correction)."""
        A, _ = self.colour_params()
        return 1 / torch.diagonal(A, dim1=1, dim2=2)

    # ----------------------------------------------------------------- pose
    def pose_params(self) -> tuple[Tensor, Tensor]:
        """(rotation vectors [C, 3] in radians, centre shifts [C, 3] in world units; the shifts
        zero-mean, the rotations too when ``hold_turn_mean``)."""
        w = self.rotation - self.rotation.mean(0, keepdim=True) if self.hold_turn_mean else self.rotation
        w = w + (self.turn - self.turn.mean(0, keepdim=True))
        s = (self.shift - self.shift.mean(0, keepdim=True)) * self.distance
        return w, s

    def camera(self, camera: Cameras, name: str) -> Cameras:
        """``camera`` (one camera of the rig, possibly cropped or resized) with the refined pose of
        ``name``; unchanged for cameras without a correction."""
        if name not in self._index:
            return camera
        w, s = self.pose_params()
        i = self._index[name]
        return perturbed(camera, w[i], s[i])

    def refined(self, cameras: Cameras) -> Cameras:
        """The whole rig with every corrected camera's refined pose (for ``RUN/cameras``)."""
        with torch.no_grad():
            return Cameras.cat([self.camera(cameras[j], n) for j, n in enumerate(cameras.names)])

    def summary(self) -> dict:
        """Per camera: gain, offset, rotation (degrees) and centre shift found."""
        with torch.no_grad():
            A, b = (t.detach() for t in self.colour_params())
            w, s = (t.detach() for t in self.pose_params())  # may be the parameters themselves
            g = self.gains()
        return {n: {"colour_gain": g[i].tolist(), "colour_offset": b[i].tolist(),
                    "colour_matrix": A[i].tolist(), "rotation_deg": float(w[i].norm()) * 180 / torch.pi,
                    "centre_shift": s[i].tolist()} for n, i in self._index.items()}
