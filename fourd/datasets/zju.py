"""ZJU-MoCap's own layout (the folders the dataset ships, e.g. ``CoreView_377/``), read as it is.

```
root/
  annots.npy                 a dict: cams {K, R, T (millimetres), D} as lists over the cameras,
                             ims [frame] {ims: image paths relative to root, one per camera}
  Camera_B1/000000.jpg …     (CoreView_313/315: "Camera (1)/CoreView_313_Camera_(1)_0001_….jpg")
  mask_cihp/<image path>.png human-parsing part ids (any nonzero id is the subject), and/or
  mask/<image path>.png      the older masks; mask_cihp is used when it is there
```

``annots.npy`` is an object array whose payload is a pickle; the dataset's own readers
``np.load(..., allow_pickle=True)`` it, which runs whatever a file asks. fourd does not: the
payload is read by an unpickler that builds only dicts, lists, strings, numbers and NumPy
arrays, and refuses a file that asks for anything else (naming it) without running it.
Frame numbers are positions in ``ims``; camera names the image paths' folders (with characters
calibration files cannot hold as keys replaced: "Camera (1)" → "Camera_1"); translations are
divided by 1000 (metres, as the dataset's readers do); K and D are OpenCV's (k1 k2 p1 p2 k3).
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np

from fourd.datasets.base import MultiViewVideo
from fourd.errors import DataError
from fourd.structures.cameras import Cameras, K_from_opencv, check_distortion, file_safe_name

ANNOTS = "annots.npy"
MASK_DIRS = ("mask_cihp", "mask")

# what an annots.npy may build: NumPy arrays and scalars (their reconstruction, under NumPy 1's and
# 2's module names). Dicts, lists, tuples, strings and numbers need no global at all.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
}


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name}")
        import importlib

        mod = module.replace("numpy.core.", "numpy._core.") if int(np.__version__.split(".")[0]) >= 2 else module
        return getattr(importlib.import_module(mod), name)


def read_annots(path: Path) -> dict:
    """The dict in a ZJU-MoCap ``annots.npy``, read without running anything it asks for."""
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read_header(fh)
            if dtype != np.dtype(object) or shape != ():
                raise DataError(f"{path.name} is not the annotation dict ZJU-MoCap ships (an array {shape} of "
                                f"{dtype})", path, "point fourd at the sequence folder the dataset ships")
            value = _ArraysOnly(io.BytesIO(fh.read()), encoding="latin1").load()  # the object array np.save wrote
            value = value.item() if isinstance(value, np.ndarray) and value.shape == () else value
    except pickle.UnpicklingError as e:
        raise DataError(f"{path.name} asks to build {e}, which is not an array, list, number or string: "
                        "refused, nothing run", path, "use the file the dataset ships, or convert the capture "
                        "with a tool you trust") from None
    except (ValueError, EOFError, OSError, TypeError, AttributeError) as e:
        raise DataError(f"{path.name} cannot be read ({type(e).__name__}: {e})", path,
                        "re-copy the file (truncated?)") from None
    if not isinstance(value, dict) or "cams" not in value or "ims" not in value:
        raise DataError(f"{path.name} holds no 'cams' and 'ims'", path, "use the annots.npy the dataset ships")
    return value


def _cameras(cams: dict, names: list[str], folders: list[str], sizes: list[tuple[int, int]], where: Path) -> Cameras:
    try:
        K = np.asarray(cams["K"], np.float64).reshape(-1, 3, 3)
        R = np.asarray(cams["R"], np.float64).reshape(-1, 3, 3)
        T = np.asarray(cams["T"], np.float64).reshape(-1, 3) / 1000.0  # millimetres → metres
        D = np.asarray(cams.get("D", np.zeros((len(K), 5))), np.float64).reshape(len(K), -1)
    except (KeyError, ValueError) as e:
        raise DataError(f"cams in {where.name} cannot be read as K, R, T, D per camera ({e})", where,
                        "use the annots.npy the dataset ships") from None
    if not len(K) == len(R) == len(T) == len(D):
        raise DataError(f"cams in {where.name} hold {len(K)} K, {len(R)} R, {len(T)} T", where,
                        "use the annots.npy the dataset ships")
    if len(K) != len(names):
        # more calibrated cameras than image folders (CoreView_313/315 list 21 of 23): each folder's
        # number ("Camera (12)", "Camera_B12") is its camera's place in cams, counted from 1
        import re

        num = [re.search(r"(\d+)\D*$", f) for f in folders]
        idx = [int(m.group(1)) - 1 if m else -1 for m in num]
        if not all(0 <= i < len(K) for i in idx) or len(set(idx)) != len(idx):
            raise DataError(f"cams in {where.name} hold {len(K)} cameras for {len(names)} image folders, and the "
                            "folders' numbers do not say which is which", where, "use the annots.npy the dataset ships")
        K, R, T, D = K[idx], R[idx], T[idx], D[idx]
    if not np.isfinite(np.concatenate([K.reshape(-1), R.reshape(-1), T.reshape(-1), D.reshape(-1)])).all():
        raise DataError(f"cams in {where.name} hold NaN or infinite values", where, "re-copy the file")
    if D.shape[1] < 5:
        D = np.pad(D, ((0, 0), (0, 5 - D.shape[1])))
    try:
        c = Cameras(np.stack([K_from_opencv(k) for k in K]), R, T, [s[0] for s in sizes], [s[1] for s in sizes],
                    D[:, :5], names)
    except ValueError as e:
        raise DataError(str(e), where, "use the annots.npy the dataset ships") from None
    check_distortion(c, where)
    return c


class ZjuMocapCapture(MultiViewVideo):
    """A ZJU-MoCap sequence folder (``annots.npy`` + camera folders + ``mask_cihp/`` or ``mask/``)."""

    layout = "zju_mocap"

    def __init__(self, root: str | Path, cache_bytes: int = 512 << 20):
        from fourd.datasets.codecs import encoded_size

        root = Path(root)
        ann = read_annots(root / ANNOTS)
        try:
            paths = [[str(p) for p in f["ims"]] for f in ann["ims"]]
        except (TypeError, KeyError) as e:
            raise DataError(f"ims in {ANNOTS} is not a list of {{'ims': [paths]}} ({e})", root / ANNOTS,
                            "use the annots.npy the dataset ships") from None
        if not paths or not paths[0]:
            raise DataError(f"{ANNOTS} lists no images", root / ANNOTS, "use the annots.npy the dataset ships")
        # cameras named by their folders, made safe for calibration files ("Camera (1)" → "Camera_1")
        folders = [Path(p).parent.as_posix() for p in paths[0]]
        names = [file_safe_name(f) for f in folders]
        if len(set(names)) != len(names):
            raise DataError(f"{ANNOTS}: the first frame's images do not lie in one folder per camera", root / ANNOTS,
                            "use the annots.npy the dataset ships")
        self._paths = {}  # (frame, camera) → image path relative to root
        for f, ims in enumerate(paths):
            if len(ims) != len(names):
                raise DataError(f"{ANNOTS}: frame {f} lists {len(ims)} images for {len(names)} cameras", root / ANNOTS,
                                "use the annots.npy the dataset ships")
            for n, p in zip(names, ims):
                self._paths[(f, n)] = p
        sizes = []
        for n in names:
            p = root / self._paths[(0, n)]
            if not p.is_file():
                raise DataError(f"camera {n}'s first image is missing", p, "copy the camera folders next to annots.npy")
            sizes.append(encoded_size(p.read_bytes(), str(p)))
        cameras = _cameras(ann["cams"], names, folders, sizes, root / ANNOTS)
        self._mask_root = next((root / d for d in MASK_DIRS if (root / d).is_dir()), None)
        super().__init__(root, cameras, list(range(len(paths))), None, 30.0, cache_bytes)

    @property
    def has_masks(self) -> bool:
        return self._mask_root is not None

    def _read(self, p: Path) -> tuple[bytes, str]:
        from fourd.datasets.easyvolcap import _read

        return _read(p), str(p)

    def image_bytes(self, frame, cam):
        return self._read(self.path / self._paths[(frame, cam)])

    def mask_bytes(self, frame, cam):
        if self._mask_root is None:
            return None
        return self._read((self._mask_root / self._paths[(frame, cam)]).with_suffix(".png"))

    def info(self, coverage_frames: int = 3) -> dict:
        return {**super().info(coverage_frames), "calibration": ANNOTS,
                "masks_from": None if self._mask_root is None else f"{self._mask_root.name}/"}
