"""DNA-Rendering SMC captures (the public two-file HDF5 layout), read and written.

```
main/<seq>.smc                attrs actor_id, performance_part, capture_date
  Camera_5mp/<id>/color/<frame>    encoded image bytes (uint8), ids unpadded ("0".."47")
  Camera_12mp/<id>/color/<frame>   ("48".."59")
  (group attrs num_device, num_frame, resolution)
annotations/<seq>_annots.smc
  Camera_Parameter/<id:02d>/{K, D, RT, Color_Calibration}   RT: 4×4 camera→world
  Mask/<id>/mask/<frame>           encoded mask bytes; foreground = max over channels
```

This follows the structure the official DNA-Rendering ``SMCReader`` reads. Images may be
distorted (``D``); :meth:`MultiViewVideo.view` undistorts them. Intrinsics in the files use
OpenCV's integer pixel centres.

``Color_Calibration`` is a 3×3 matrix per camera, but not a colour matrix: row i holds the
coefficients (a, b, c) of a quadratic a·x² + b·x + c applied to channel i of the image in *BGR*
order, x in grey levels 0–255, the result clipped to 0–255. That is how the dataset's maintainers
say to apply it (DNA-Rendering/DNA-Rendering issue #8, their ``img_calib``; its final
``cv2.normalize(..., alpha=min, beta=max, NORM_MINMAX, CV_8U)`` maps the range onto itself, so it
only rounds and saturates). :class:`SMCCapture` applies it on load (``color_calibration=False``
reads the images as stored); the identity is ``[[0, 1, 0]] * 3``. Files written by fourd before
this carried ``eye(3)`` as a placeholder, which is read as the identity too.
"""

from __future__ import annotations

import errno
import json
from pathlib import Path

import numpy as np

from fourd.datasets.base import MultiViewVideo, plan_frames
from fourd.datasets.codecs import encoded_size
from fourd.errors import DataError
from fourd.structures.cameras import Cameras, K_from_opencv, K_to_opencv, check_distortion

GROUPS = ("Camera_5mp", "Camera_12mp")
IDENTITY_CC = np.array([[0.0, 1.0, 0.0]] * 3)  # Color_Calibration that leaves every channel as it is


def colour_lut(cc: np.ndarray) -> np.ndarray | None:
    """A [256, 1, 3] uint8 table (RGB order) applying a DNA-Rendering ``Color_Calibration`` ``cc``
    (rows: B, G, R quadratics in x), or None when it is the identity (or fourd's old eye(3))."""
    cc = np.asarray(cc, np.float64)
    if np.allclose(cc, IDENTITY_CC) or np.allclose(cc, np.eye(3)):
        return None
    x = np.arange(256, dtype=np.float64)
    bgr = [cc[i, 0] * x ** 2 + cc[i, 1] * x + cc[i, 2] for i in range(3)]
    rgb = np.stack(bgr[::-1], -1)  # the images here are RGB
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)[:, None, :]


def _open_h5(path: Path):
    import h5py

    if not path.is_file():
        raise DataError("SMC file not found", path,
                        "DNA-Rendering sequences need main/<seq>.smc and annotations/<seq>_annots.smc")
    try:
        return h5py.File(path, "r")
    except OSError as e:
        msg = str(e).split("(", 1)[-1].rstrip(")") if "(" in str(e) else str(e)
        raise DataError(f"cannot open as HDF5 ({msg})", path,
                        "the file is truncated or corrupt: download or copy it again") from None


def _numbers(group, key: str, sizes: tuple[int, ...], where: str) -> np.ndarray:
    """``group[key]`` as a flat float64 array of one of ``sizes`` elements, finite — checked before
    anything reshapes or inverts it."""
    if key not in group:
        raise DataError(f"no '{key}'", where, f"add {key} to every camera's Camera_Parameter")
    try:
        a = np.asarray(group[key][()], np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise DataError(f"'{key}' is not numeric", where, f"store {key} as numbers") from None
    if a.size not in sizes:
        raise DataError(f"'{key}' has {a.size} values, expected {' or '.join(map(str, sizes))}", where,
                        f"fix the shape of {key}")
    if not np.isfinite(a).all():
        raise DataError(f"'{key}' contains NaN or inf", where, "re-export the calibration")
    return a


def smc_pair(path: str | Path, sequence: str | None = None) -> tuple[Path, Path]:
    """Resolve (main, annotations) files from a .smc path or a folder holding main/ and annotations/."""
    path = Path(path)
    if path.is_file() or path.suffix == ".smc":
        main = path
        seq = main.stem
        annots = main.parent.parent / "annotations" / f"{seq}_annots.smc"
        if not annots.is_file():
            annots = main.with_name(f"{seq}_annots.smc")
        return main, annots
    mains = sorted((path / "main").glob("*.smc"))
    if sequence is not None:
        mains = [m for m in mains if m.stem == sequence]
    if not mains:
        want = f"main/{sequence}.smc" if sequence else "main/*.smc"
        raise DataError(f"no DNA-Rendering sequence ({want}) here", path,
                        "put the SMC files from DNA-Rendering under main/ and annotations/, "
                        "or create one with `fourd data convert SRC OUT --to smc`")
    main = mains[0]
    return main, path / "annotations" / f"{main.stem}_annots.smc"


class SMCCapture(MultiViewVideo):
    layout = "smc"

    def __init__(self, path: str | Path, sequence: str | None = None, groups: tuple[str, ...] = GROUPS,
                 cache_bytes: int = 512 << 20, color_calibration: bool = True):
        self.main_path, self.annots_path = smc_pair(path, sequence)
        self.smc = _open_h5(self.main_path)
        self.annots = _open_h5(self.annots_path)
        self._names_attr = json.loads(self.smc.attrs.get("fourd_camera_names", "{}"))
        self._group_of: dict[str, str] = {}
        for g in groups:
            if g in self.smc:
                bad = [k for k in self.smc[g].keys() if not k.isdigit()]
                if bad:
                    raise DataError(f"camera ids {bad[:4]} under {g} are not numbers", self.main_path,
                                    "DNA-Rendering names cameras by number (0, 1, ...); rename or remove those groups")
                for cid in sorted(self.smc[g].keys(), key=int):
                    self._group_of[cid] = g
        if not self._group_of:
            raise DataError(f"no cameras under {', '.join(groups)}", self.main_path, "is this a DNA-Rendering main SMC?")
        if "Camera_Parameter" not in self.annots:
            raise DataError("no Camera_Parameter group", self.annots_path, "use the sequence's *_annots.smc file")
        ids = list(self._group_of)
        Ks, Rs, Ts, Ds, Hs, Ws, self.color_calibration = [], [], [], [], [], [], {}
        self._luts: dict[str, np.ndarray] = {}
        frame_sets: dict[str, set[int]] = {}
        for cid in ids:
            key = f"{int(cid):02d}"
            if key not in self.annots["Camera_Parameter"]:
                raise DataError(f"camera {cid} has images but no Camera_Parameter/{key}", self.annots_path,
                                "use the annotations file of the same sequence")
            p = self.annots["Camera_Parameter"][key]
            where = f"{self.annots_path}:/Camera_Parameter/{key}"
            RT = _numbers(p, "RT", (16,), where).reshape(4, 4)
            R = RT[:3, :3]
            if not np.allclose(RT[3], [0, 0, 0, 1]) or abs(np.linalg.det(R) - 1) > 1e-3 \
                    or not np.allclose(R @ R.T, np.eye(3), atol=1e-3):
                raise DataError(f"camera {cid}: RT is not a rigid transform (rotation + translation, last row 0 0 0 1)",
                                where, "re-export the calibration")
            Rs.append(R.T)  # RT is camera → world: its inverse is (Rᵀ, −Rᵀ t)
            Ts.append(-R.T @ RT[:3, 3])
            K = _numbers(p, "K", (9,), where).reshape(3, 3)
            if K[0, 0] <= 0 or K[1, 1] <= 0 or not np.allclose(K[2], [0, 0, 1]):
                raise DataError(f"camera {cid}: K is not a camera matrix (positive focal lengths, last row 0 0 1)",
                                where, "re-export the calibration")
            Ks.append(K_from_opencv(K))
            D = _numbers(p, "D", (4, 5, 8, 12, 14), where) if "D" in p else np.zeros(5)
            if D.size > 5 and np.any(D[5:] != 0):
                raise DataError(f"camera {cid}: D has non-zero terms beyond the 5-term model", where,
                                "undistort the images first, or calibrate with the 5-term model")
            Ds.append(np.pad(D[:5], (0, max(0, 5 - D.size))))
            if "Color_Calibration" in p:
                try:
                    cc = np.asarray(p["Color_Calibration"][()], np.float64)
                except (TypeError, ValueError):
                    cc = np.zeros(0)
                if cc.shape != (3, 3) or not np.isfinite(cc).all():
                    raise DataError(f"camera {cid}: Color_Calibration has shape {cc.shape}"
                                    f"{'' if np.isfinite(cc).all() else ' and non-finite values'}; "
                                    "a 3×3 colour matrix is expected", self.annots_path,
                                    "re-export this camera's calibration, or delete its Color_Calibration")
                self.color_calibration[self._name(cid)] = cc
                lut = colour_lut(cc) if color_calibration else None
                if lut is not None:
                    self._luts[self._name(cid)] = lut
            color = self.smc[self._group_of[cid]][cid]["color"]
            bad = [f for f in color.keys() if not f.isdigit()]
            if bad:
                raise DataError(f"camera {cid}: frame keys {bad[:4]} are not numbers", self.main_path,
                                "frames are stored under their number (0, 1, ...)")
            frame_sets[self._name(cid)] = {int(f) for f in color.keys()}
            H, W = self._resolution(cid)
            Hs.append(H)
            Ws.append(W)
        names = [self._name(c) for c in ids]
        self._id_of = dict(zip(names, ids))
        try:
            cameras = Cameras(np.stack(Ks), np.stack(Rs), np.stack(Ts), Hs, Ws, np.stack(Ds), names)
        except ValueError as e:
            raise DataError(str(e), self.annots_path, "fix Camera_Parameter (RT must be a rigid transform)") from None
        check_distortion(cameras, self.annots_path)
        held = [self._name(c) for c in json.loads(self.smc.attrs.get("fourd_held_out", "[]"))]
        # a camera lacking some frames sits them out (fourd.json-free: the default of plan_frames)
        cameras, held, self.left_out, frames, absent = plan_frames(frame_sets, cameras, held, self.main_path)
        ids = [c for c in ids if self._name(c) not in self.left_out]
        fps = float(self.smc.attrs.get("fps", 30.0))
        super().__init__(self.main_path, cameras, frames, held, fps, cache_bytes, absent)
        self._has_masks = "Mask" in self.annots and all(c in self.annots["Mask"] for c in ids)
        if self._has_masks:  # a view whose mask is missing sits out as a dropped frame's, said on load
            from fourd.console import log

            lacking = {}
            for c in ids:
                name = self._name(c)
                g = self.annots["Mask"][c]
                have = {int(k) for k in (g["mask"].keys() if "mask" in g else ()) if k.isdigit()}
                miss = sorted(set(self.frames) - have - self.absent.get(name, frozenset()))
                if miss:
                    lacking[name] = miss
            for name, miss in list(lacking.items())[:3]:
                log(f"[yellow]warning:[/] {self.annots_path}: camera {name} has no mask of frame(s) "
                    f"{', '.join(map(str, miss[:6]))}{' …' if len(miss) > 6 else ''} — its views of them are skipped")
            if lacking:
                self.sit_out(lacking, self.annots_path)

    def correct_colours(self, image: np.ndarray, cam: str) -> np.ndarray:
        lut = self._luts.get(cam)
        if lut is None:
            return image
        import cv2

        return cv2.LUT(image, lut)

    def _name(self, cid: str) -> str:
        return self._names_attr.get(cid, cid)

    def _resolution(self, cid: str) -> tuple[int, int]:
        """Size from the first image's header (no decode; the group's resolution attr is not trusted)."""
        g = self.smc[self._group_of[cid]]
        first = sorted(g[cid]["color"].keys(), key=int)[0]
        return encoded_size(bytes(g[cid]["color"][first][()]), f"{self.main_path}:{g.name}/{cid}/color/{first}")

    @property
    def has_masks(self) -> bool:
        return self._has_masks

    @property
    def actor_info(self) -> dict:
        return {k: (v.decode() if isinstance(v, bytes) else v) for k, v in self.smc.attrs.items()}

    def image_bytes(self, frame, cam):
        cam = self._id_of[cam]
        g = self._group_of[cam]
        where = f"{self.main_path}:/{g}/{cam}/color/{frame}"
        try:
            return bytes(self.smc[g][cam]["color"][str(frame)][()]), where
        except KeyError:
            raise DataError("image is missing", where, "the SMC file is incomplete; download it again") from None

    def mask_bytes(self, frame, cam):
        if not self._has_masks:
            return None
        cam = self._id_of[cam]
        where = f"{self.annots_path}:/Mask/{cam}/mask/{frame}"
        try:
            return bytes(self.annots["Mask"][cam]["mask"][str(frame)][()]), where
        except KeyError:
            raise DataError("mask is missing", where, "the annotations file is incomplete; download it again") from None


def write_smc(video: MultiViewVideo, root: str | Path, sequence: str = "fourd_0000", progress=None) -> Path:
    """Write any capture as main/<seq>.smc + annotations/<seq>_annots.smc (bytes copied as stored).

    Camera names must be integers (DNA-Rendering ids); other names are numbered in order and the
    original names kept in the attribute ``fourd_camera_names``.
    """
    import h5py

    from fourd.datasets.codecs import decode_image

    root = Path(root)
    (root / "main").mkdir(parents=True, exist_ok=True)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    names = video.camera_names
    numeric = all(n.isdigit() and n == str(int(n)) for n in names)
    ids = [str(int(n)) for n in names] if numeric else [str(i) for i in range(len(names))]
    main_p, ann_p = root / "main" / f"{sequence}.smc", root / "annotations" / f"{sequence}_annots.smc"
    tmp_main, tmp_ann = main_p.with_suffix(".smc.tmp"), ann_p.with_suffix(".smc.tmp")
    cams = video.cameras
    try:
        with h5py.File(tmp_main, "w") as fm, h5py.File(tmp_ann, "w") as fa:
            fm.attrs["actor_id"] = sequence
            fm.attrs["performance_part"] = "fourd"
            fm.attrs["capture_date"] = "synthetic"
            fm.attrs["fps"] = video.fps
            fm.attrs["fourd_held_out"] = json.dumps([ids[names.index(h)] for h in video.held_out])
            if not numeric:
                fm.attrs["fourd_camera_names"] = json.dumps(dict(zip(ids, names)))
            # as DNA-Rendering: the 12-megapixel cameras (if the rig mixes sizes) in their own group
            mixed = len({(int(h), int(w)) for h, w in zip(cams.H, cams.W)}) > 1
            group_of = ["Camera_12mp" if mixed and int(cams.H[i]) * int(cams.W[i]) > 8_000_000 else "Camera_5mp"
                        for i in range(len(ids))]
            for gname in sorted(set(group_of)):
                g = fm.create_group(gname)
                members = [i for i in range(len(ids)) if group_of[i] == gname]
                g.attrs["num_device"] = len(members)
                g.attrs["num_frame"] = len(video.frames)
                sizes = {(int(cams.H[i]), int(cams.W[i])) for i in members}
                if len(sizes) == 1:
                    (H, W), = sizes
                    g.attrs["resolution"] = np.array([W, H])
            cp = fa.create_group("Camera_Parameter")
            mg = fa.create_group("Mask") if video.has_masks else None
            colour, masks = {}, {}
            for i, (cid, n) in enumerate(zip(ids, names)):
                p = cp.create_group(f"{int(cid):02d}")
                p["K"] = K_to_opencv(cams.K[i].double().cpu().numpy())
                p["D"] = cams.D[i].double().cpu().numpy()
                p["RT"] = cams.c2w[i].double().cpu().numpy()
                cc = getattr(video, "color_calibration", {}).get(n)
                p["Color_Calibration"] = IDENTITY_CC if cc is None else cc
                colour[n] = fm[group_of[i]].create_group(cid).create_group("color")
                masks[n] = mg.create_group(cid).create_group("mask") if mg is not None else None
            for f in video.frames:  # frame by frame: a capture rendered or degraded on the fly holds one frame
                for n in video.cameras_at(f, names):  # (a frame a camera dropped stays missing)
                    data, where = video.image_bytes(f, n)
                    decode_image(data, where)  # never copy a corrupt image into a new file
                    colour[n].create_dataset(str(f), data=np.frombuffer(data, np.uint8))
                    if masks[n] is not None:
                        mdata, _ = video.mask_bytes(f, n)
                        masks[n].create_dataset(str(f), data=np.frombuffer(mdata, np.uint8))
                if progress is not None:
                    progress()
    except BaseException as e:  # a full disk, a bad image, Ctrl-C: no half-written file is left behind
        tmp_main.unlink(missing_ok=True)
        tmp_ann.unlink(missing_ok=True)
        if isinstance(e, OSError) and (e.errno in (errno.ENOSPC, errno.EDQUOT) or "No space left" in str(e)):
            raise DataError("the disk filled while writing; the half-written files were removed", main_p.parent,
                            "free some space and write again") from None
        raise
    tmp_main.replace(main_p)
    tmp_ann.replace(ann_p)
    return main_p
