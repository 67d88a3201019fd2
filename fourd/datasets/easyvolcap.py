"""EasyVolcap / EasyMocap capture layout.

```
root/
  intri.yml            names, K_<cam>, D_<cam> (or dist_<cam>), H_<cam>, W_<cam>
  extri.yml            names, R_<cam> (Rodrigues), Rot_<cam> (3×3), T_<cam> (3×1)
  images/<cam>/<frame:06d>.jpg
  masks/<cam>/<frame:06d>.png     (optional, or mask/, bgmtv2/, mask_cihp/, or fourd.json's "masks";
                                   without any, RGBA images' alpha is the mask)
  optimized/{intri,extri}.yml     (optional: refined cameras, used instead of the root's when present)
  bkgd/<cam>.jpg                  (optional: the empty scene behind the subject, 4K4D's layout)
  fourd.json           (optional: held-out cameras, fps, calibration choice, mask folder)
```

Calibration files are read and written through OpenCV's FileStorage. OpenCV 5 writes a
``%YAML 1.2`` header; EasyVolcap's files and older OpenCV use ``%YAML:1.0``, which every version
reads, so that is what is written. Intrinsics in the files use OpenCV's integer pixel centres.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np

from fourd.datasets.base import MultiViewVideo, plan_frames
from fourd.datasets.codecs import IMAGE_EXTS, decode_image, image_ext, png_has_alpha
from fourd.errors import DataError
from fourd.io import atomic_write_bytes
from fourd.structures.cameras import Cameras, K_from_opencv, K_to_opencv, check_distortion

_TRAILING_NUMBER = re.compile(r"(\d+)$")
_LAST_NUMBER = re.compile(r"(\d+)\D*$")  # the last number in a name (followed by no digit)


def _open_fs(path: Path):
    import cv2

    if not path.is_file():
        raise DataError(f"{path.name} is missing", path,
                        "EasyVolcap captures need intri.yml and extri.yml in the capture root "
                        "(fourd data convert can write them from another layout)")
    try:
        fs = cv2.FileStorage(str(path), cv2.FILE_STORAGE_READ)
    except (cv2.error, SystemError, UnicodeDecodeError) as e:  # OpenCV's reader raises SystemError on some damage
        last = (str(e).strip().splitlines() or [type(e).__name__])[-1]
        raise DataError(f"not a readable OpenCV YAML file ({last})", path,
                        "check the file was written by cv2.FileStorage and is not truncated") from None
    if not fs.isOpened():
        raise DataError("cannot open as OpenCV YAML", path, "check the file")
    return fs


def _names(fs, path: Path) -> list[str]:
    node = fs.getNode("names")
    if node.empty() or not node.isSeq():
        raise DataError("has no 'names' list", path, "add a 'names' sequence listing the camera names")
    names = [node.at(i).string() or str(int(node.at(i).real())) for i in range(node.size())]
    if not names:
        raise DataError("the 'names' list is empty", path, "list the camera names under 'names'")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DataError(f"camera names listed more than once: {dup}", path, "give every camera one unique name")
    return names


def _mat(fs, key: str, path: Path, sizes: tuple[int, ...], required: bool = True) -> np.ndarray | None:
    """The numbers stored under ``key`` as a flat float64 array of one of ``sizes`` elements,
    finite — checked before anything reshapes or inverts them."""
    import cv2

    try:
        return _mat_node(fs, key, path, sizes, required)
    except (cv2.error, SystemError) as e:  # a damaged node (truncated file, broken matrix)
        last = (str(e).strip().splitlines() or [type(e).__name__])[-1]
        raise DataError(f"cannot read '{key}' ({last})", path, "the file is damaged or truncated; re-export it") from None


def _distortion(D: np.ndarray | None, key: str, path: Path) -> np.ndarray:
    """5 OpenCV terms (k1 k2 p1 p2 k3): fewer are padded with zeros; more must be zero beyond the 5th."""
    if D is None:
        return np.zeros(5)
    if D.size > 5 and np.any(D[5:] != 0):
        raise DataError(f"'{key}' has non-zero terms beyond the 5-term model (k1 k2 p1 p2 k3)", path,
                        "undistort the images first, or calibrate with the 5-term model")
    return np.pad(D[:5], (0, max(0, 5 - D.size)))


def _mat_node(fs, key: str, path: Path, sizes: tuple[int, ...], required: bool) -> np.ndarray | None:
    node = fs.getNode(key)
    if node.empty():
        if required:
            raise DataError(f"lacks '{key}'", path, f"add {key} for every camera in 'names'")
        return None
    if node.isReal() or node.isInt():
        a = np.array([node.real()])
    elif node.isString():
        raise DataError(f"'{key}' holds text ('{node.string()[:20]}'), not numbers", path,
                        f"write {key} as an OpenCV matrix (!!opencv-matrix) of numbers")
    else:
        m = node.mat()
        if m is None:
            raise DataError(f"'{key}' is not a matrix of numbers", path,
                            f"write {key} as an OpenCV matrix (!!opencv-matrix)")
        a = np.asarray(m, np.float64).reshape(-1)
    if a.size not in sizes:
        want = " or ".join(str(n) for n in sizes)
        raise DataError(f"'{key}' has {a.size} values, expected {want}", path, f"fix the shape of {key}")
    if not np.isfinite(a).all():
        raise DataError(f"'{key}' contains NaN or infinite values", path, f"fix {key}")
    return a


def read_easyvolcap_cameras(root: Path, images: Path | None = None) -> Cameras:
    """The cameras of ``root/intri.yml`` and ``root/extri.yml``; sizes missing from them are read
    from the first image of ``images/<cam>/`` (``images``: the capture root, by default ``root``)."""
    import cv2

    root = Path(root)
    ip, ep = root / "intri.yml", root / "extri.yml"
    fi, fe = _open_fs(ip), _open_fs(ep)
    ni, ne = _names(fi, ip), _names(fe, ep)
    if ni != ne:
        only_i, only_e = sorted(set(ni) - set(ne)), sorted(set(ne) - set(ni))
        detail = f"only in intri: {only_i}, only in extri: {only_e}" if (only_i or only_e) else "different order"
        raise DataError(f"camera names disagree between intri.yml and extri.yml ({detail})", ep,
                        "list the same cameras in the same order in both files")
    Ks, Rs, Ts, Ds, Hs, Ws = [], [], [], [], [], []
    for n in ni:
        K = _mat(fi, f"K_{n}", ip, (9,)).reshape(3, 3)
        if K[0, 0] <= 0 or K[1, 1] <= 0 or not np.allclose(K[2], [0, 0, 1]) or K[1, 0] != 0:
            raise DataError(f"K_{n} is not a camera matrix (focal lengths must be positive, last row 0 0 1)", ip,
                            f"fix K_{n}")
        Ks.append(K_from_opencv(K))
        D = _mat(fi, f"D_{n}", ip, (4, 5, 8, 12, 14), required=False)
        D = _mat(fi, f"dist_{n}", ip, (4, 5, 8, 12, 14), required=False) if D is None else D
        Ds.append(_distortion(D, f"D_{n}", ip))
        H, W = _mat(fi, f"H_{n}", ip, (1,), required=False), _mat(fi, f"W_{n}", ip, (1,), required=False)
        if H is None or W is None:
            H, W = _size_from_image(root if images is None else Path(images), n)
        H, W = float(np.asarray(H).reshape(-1)[0]), float(np.asarray(W).reshape(-1)[0])
        if not (H >= 1 and W >= 1 and H == int(H) and W == int(W)):
            raise DataError(f"H_{n}/W_{n} = {H:g}/{W:g} is not an image size", ip, "give positive whole pixel counts")
        Hs.append(int(H))
        Ws.append(int(W))
        R = _mat(fe, f"Rot_{n}", ep, (9,), required=False)
        R = R.reshape(3, 3) if R is not None else cv2.Rodrigues(_mat(fe, f"R_{n}", ep, (3,)).reshape(3, 1))[0]
        if abs(np.linalg.det(R) - 1) > 1e-3 or not np.allclose(R @ R.T, np.eye(3), atol=1e-3):
            raise DataError(f"the rotation of camera '{n}' is not a rotation matrix (orthonormal, det +1)", ep,
                            f"fix Rot_{n} / R_{n}")
        Rs.append(R)
        Ts.append(_mat(fe, f"T_{n}", ep, (3,)))
    try:
        cams = Cameras(np.stack(Ks), np.stack(Rs), np.stack(Ts), Hs, Ws, np.stack(Ds), ni)
    except ValueError as e:  # distortion terms beyond the 5-term model, for instance
        raise DataError(str(e), ip if "distortion" in str(e) or "K" in str(e) else ep,
                        "fix the calibration") from None
    check_distortion(cams, ip)
    return cams


def camera_folder(parent: Path, cam: str, names=()) -> Path:
    """``parent/cam``; or, when there is no such folder and the name is a number, the one folder whose
    name is the same number written otherwise (``1`` for camera ``01``, ``000001``) and is no
    camera's own name — a calibration and image folders numbered with different zero padding."""
    d = parent / cam
    if d.is_dir() or not cam.isdigit() or not parent.is_dir():
        return d
    same = [e for e in parent.iterdir() if e.is_dir() and e.name.isdigit() and int(e.name) == int(cam)
            and e.name not in names]
    return same[0] if len(same) == 1 else d


def _size_from_image(root: Path, cam: str) -> tuple[int, int]:
    from fourd.datasets.codecs import decode_image

    d = camera_folder(root / "images", cam)
    files = sorted(p for p in d.glob("*") if p.suffix.lower() in IMAGE_EXTS) if d.is_dir() else []
    if not files:
        raise DataError(f"no H_{cam}/W_{cam} in intri.yml and no images to read the size from", d,
                        f"add H_{cam} and W_{cam} to intri.yml")
    img = decode_image(files[0].read_bytes(), str(files[0]))
    return img.shape[0], img.shape[1]


def _frame_files(folder: Path) -> dict[int, Path]:
    """Frame number → file: the number a file's name ends in (``000012.jpg``, ``frame_000012.png``,
    ``img12.jpg``); files whose name ends in no number are not frames — unless no file of the folder
    ends in one, when each file's last number is its frame (``000012_mask.png``, ``12.alpha.png``)."""
    files = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS]
    rule = _TRAILING_NUMBER if any(_TRAILING_NUMBER.search(p.stem) for p in files) else _LAST_NUMBER
    out: dict[int, Path] = {}
    for p in files:
        m = rule.search(p.stem)
        if m is None:
            continue
        f = int(m.group(1))
        if f in out:
            a, b = sorted([out[f].name, p.name])
            raise DataError(f"two files are frame {f}: {a} and {b}", folder,
                            "keep one image per frame number in each camera's folder")
        out[f] = p
    return out


# where masks are looked for, in order: EasyVolcap's name, EasyMocap's / ZJU-MoCap's, ENeRF-Outdoor's
# background matting (BGMv2), ZJU-MoCap's human parsing (part ids: read as label images). Any other
# folder: "masks": "<folder>" in fourd.json.
MASK_DIRS = ("masks", "mask", "bgmtv2", "mask_cihp")


def mask_dir(root: Path, meta: dict) -> Path:
    """The capture's mask folder: fourd.json's ``"masks"`` when given (it must exist), else the
    first of MASK_DIRS there is (``masks/`` when none is: the capture then has no masks)."""
    named = meta.get("masks")
    if named is not None:
        d = root / str(named)
        if not d.is_dir():
            raise DataError(f"fourd.json names the mask folder '{named}', which is not there", root / "fourd.json",
                            f"make {d} hold masks/<camera>/ alike, or remove \"masks\" to use "
                            f"{' or '.join(f'{m}/' for m in MASK_DIRS)}")
        return d
    return next((root / d for d in MASK_DIRS if (root / d).is_dir()), root / MASK_DIRS[0])


def calibration_dir(root: Path, meta: dict) -> Path:
    """Where the capture's calibration is read from: ``optimized/`` when it holds intri.yml and
    extri.yml — the refined cameras 4K4D's users train on (EasyVolcap's camera optimisation writes
    them there; so can a fourd run's ``RUN/cameras``) — else the root. ``fourd.json`` may choose:
    ``"calibration": "root"`` or ``"optimized"``."""
    choice = meta.get("calibration", "auto")
    opt = root / "optimized"
    has_opt = (opt / "intri.yml").is_file() and (opt / "extri.yml").is_file()
    if choice not in ("auto", "root", "optimized"):
        raise DataError(f"calibration '{choice}' is not a choice", root / "fourd.json",
                        'set "calibration" to "auto", "root" or "optimized"')
    if choice == "optimized" and not has_opt:
        raise DataError("fourd.json asks for the optimized calibration but optimized/intri.yml and extri.yml "
                        "are not both there", opt, 'add them, or set "calibration" to "root"')
    return opt if has_opt and choice != "root" else root


class EasyVolcapCapture(MultiViewVideo):
    layout = "easyvolcap"

    def __init__(self, root: str | Path, cache_bytes: int = 512 << 20):
        root = Path(root)
        meta = _read_meta(root)
        self.calibration = calibration_dir(root, meta)
        cameras = read_easyvolcap_cameras(self.calibration, images=root)
        if self.calibration != root:
            from fourd.console import log

            log(f"{root.name}: cameras from optimized/intri.yml and extri.yml "
                '(set "calibration": "root" in fourd.json to use the root ones)')
        self._images: dict[str, dict[int, Path]] = {}
        self._masks: dict[str, dict[int, Path]] = {}
        self._renamed = renamed = {}  # camera → its image folder, where named otherwise (camera_folder)
        for n in cameras.names:
            d = camera_folder(root / "images", n, cameras.names)
            if not d.is_dir():
                from fourd.datasets import VIDEO_SUFFIXES

                vids = root / "videos"
                if not (root / "images").is_dir() and vids.is_dir() and any(
                        v.suffix.lower() in VIDEO_SUFFIXES for v in vids.iterdir()):
                    # EasyVolcap's video layout (videos/<camera>.mp4): frames are extracted before use
                    raise DataError("the capture holds videos/ but no images/ (EasyVolcap's video layout)", vids,
                                    f"extract the frames with `fourd data ingest {vids} OUT --calibration {root} "
                                    "--sync none --masks key` (or --masks none / plate / model), then train OUT")
                raise DataError(f"camera '{n}' is calibrated but has no image folder", root / "images" / n,
                                "add its images or remove it from intri.yml/extri.yml")
            if d.name != n:
                renamed[n] = d.name
            self._images[n] = _frame_files(d)
        used = set(cameras.names) | set(renamed.values())
        spare = sorted(p.name for p in (root / "images").iterdir() if p.is_dir() and p.name not in used)
        if spare:  # a camera left out of the calibration (or a folder of something else): not used, said
            from fourd.console import log

            log(f"[yellow]warning:[/] {root / 'images'}: folder(s) {', '.join(spare[:6])}{' …' if len(spare) > 6 else ''} "
                "name no calibrated camera — not used (add the camera to intri.yml/extri.yml to use it)")
        if renamed:
            from fourd.console import log

            shown = ", ".join(f"images/{d} → camera {n}" for n, d in list(renamed.items())[:3])
            log(f"{root.name}: image folders matched to the calibration's cameras by number ({shown}"
                f"{' …' if len(renamed) > 3 else ''})")
        cameras = self._match_image_sizes(root, cameras)
        mask_root = self._mask_root = mask_dir(root, meta)
        for n in cameras.names:
            md = camera_folder(mask_root, n, cameras.names)
            if md.is_dir():
                self._masks[n] = _frame_files(md)
        # a camera lacking some frames sits them out (or is left out, or cuts them for all: fourd.json)
        frame_sets = {n: set(v) for n, v in self._images.items()}
        cameras, held_out, self.left_out, frames, absent = plan_frames(
            frame_sets, cameras, meta.get("held_out"), root / "images", meta.get("incomplete_cameras", "skip"))
        for n in self.left_out:
            del self._images[n]
            self._masks.pop(n, None)
        super().__init__(root, cameras, frames, held_out, meta.get("fps", 30.0), cache_bytes, absent)
        missing_masks = [n for n in cameras.names if n not in self._masks]
        self._has_masks = bool(self._masks) and not missing_masks
        if self._masks and missing_masks:
            raise DataError(f"masks exist for some cameras but not for {missing_masks[:5]}", mask_root,
                            "provide masks for every camera or none")
        if self._has_masks:
            self._match_mask_numbers()
        # a renderer's cut-outs (RGBA PNGs, transparent around the subject) and no mask folder: the
        # images' alpha is the mask (read from the same file, through decode_image's alpha rule)
        self._alpha_masks = not self._masks and self._images_have_alpha()
        if self._alpha_masks:
            from fourd.console import log

            self._has_masks = True
            log(f"{root.name}: no masks/ folder — the images' alpha channel is used as the mask")

    def _match_mask_numbers(self) -> None:
        """Every frame's mask is looked for on load: a camera's frames without one are said then and
        sit out as frames it dropped (:meth:`sit_out`), not first met when training reaches them.
        When the masks are numbered one step off the images
        (``ffmpeg`` numbers extracted frames from 1, many tools from 0) — that step explains at least
        half of what is missing otherwise — each image takes the mask numbered so, said once."""
        from fourd.console import log

        want = set(self.frames)

        def lacking(d: int) -> dict[str, list[int]]:  # camera → frames without a mask numbered f + d
            out = {n: sorted(f for f in want - self.absent.get(n, frozenset()) if f + d not in m)
                   for n, m in self._masks.items()}
            return {n: v for n, v in out.items() if v}

        miss = {0: lacking(0)}
        if not miss[0]:
            return  # every frame has its mask (the usual capture: the steps are not looked at)
        miss.update({d: lacking(d) for d in (-1, 1)})
        total = {d: sum(map(len, v.values())) for d, v in miss.items()}
        d = min((-1, 1), key=total.get)
        step = ""
        if total[d] * 2 <= total[0]:
            self._masks = {n: {f - d: p for f, p in m.items()} for n, m in self._masks.items()}
            first = min(self.frames)
            step = f" (masks matched {d:+d} from their images)"
            log(f"{self.path.name}: the masks are numbered {d:+d} from the images (image {first:06d} ↔ mask "
                f"{first + d:06d}) — each image takes the mask numbered so")
        else:
            d = 0
        for n, frames in list(miss[d].items())[:3]:
            shown = ", ".join(map(str, frames[:6])) + (" …" if len(frames) > 6 else "")
            log(f"[yellow]warning:[/] {self._mask_root / n}: no mask for frame(s) {shown}{step} — the camera's "
                "views of them are skipped (as frames it dropped); add the masks to use them")
        if len(miss[d]) > 3:
            log(f"[yellow]warning:[/] {len(miss[d]) - 3} more cameras lack some masks (skipped alike)")
        self.sit_out(miss[d], self._mask_root)

    @property
    def has_masks(self) -> bool:
        return self._has_masks

    def image_bytes(self, frame, cam):
        return _read(self._images[cam][frame]), str(self._images[cam][frame])

    def _images_have_alpha(self) -> bool:
        """Whether the first camera's first image is a PNG whose alpha channel varies."""
        n = self.cameras.names[0]
        p = self._images[n].get(self.frames[0]) or next(iter(self._images[n].values()), None)
        if p is None:
            return False
        data = _read(p)
        if not png_has_alpha(data):
            return False
        arr = decode_image(data, str(p), grayscale=True)
        return bool(arr.min() < 128 <= arr.max())

    def _match_image_sizes(self, root: Path, cameras: Cameras) -> Cameras:
        """Cameras whose images are the calibrated size scaled alike on both axes (images
        downsampled after calibration, as EasyVolcap's ``ratio`` does) get their intrinsics scaled
        to the images, said once; any other mismatch is left for the per-image size check."""
        from fourd.datasets.codecs import encoded_size, header_size

        H, W = cameras.H.tolist(), cameras.W.tolist()
        scaled = []
        for i, n in enumerate(cameras.names):
            if not self._images[n]:
                continue
            p = self._images[n][min(self._images[n])]
            try:  # the header alone (every capture open does this, for every camera)
                with open(p, "rb") as fh:
                    got = header_size(fh.read(1 << 16))
            except OSError:
                got = None
            h, w = got if got is not None else encoded_size(_read(p), str(p))
            if (h, w) == (H[i], W[i]):
                continue
            s = w / W[i]
            if abs(h - H[i] * s) <= 1 and s < 1.0 + 1e-9 and min(h, w) >= 8:
                H[i], W[i] = h, w
                scaled.append(f"{n} ×{s:.3g}")
        if not scaled:
            return cameras
        from fourd.console import log

        shown = ", ".join(scaled[:4]) + (" …" if len(scaled) > 4 else "")
        log(f"{root.name}: the images of {len(scaled)} camera(s) are smaller than calibrated ({shown}); "
            "their intrinsics are scaled to the images")
        return cameras.resize(H, W)

    def info(self, coverage_frames: int = 3) -> dict:
        masks = "alpha of the images" if self._alpha_masks else (f"{self._mask_root.name}/" if self._has_masks else None)
        return {**super().info(coverage_frames), "calibration": str(self.calibration.relative_to(self.path) / "intri.yml"),
                "masks_from": masks}

    def _backdrop_file(self, cam: str) -> Path | None:
        stems = [cam] + ([self._renamed[cam]] if cam in self._renamed else [])  # (its image folder's number)
        return next((p for stem in stems for ext in IMAGE_EXTS if (p := self.path / "bkgd" / f"{stem}{ext}").is_file()),
                    None)

    def has_backdrop(self, cam):
        return self._backdrop_file(cam) is not None

    def backdrop_bytes(self, cam):
        p = self._backdrop_file(cam)
        return None if p is None else (_read(p), str(p))

    def mask_bytes(self, frame, cam):
        if not self._has_masks:
            return None
        if self._alpha_masks:
            return self.image_bytes(frame, cam)
        p = self._masks[cam].get(frame)
        if p is None:
            raise DataError(f"mask for frame {frame} is missing", self._mask_root / cam,
                            "provide a mask for every image")
        return _read(p), str(p)


def _read(p: Path) -> bytes:
    try:
        return p.read_bytes()
    except IsADirectoryError:
        raise DataError("a folder stands where an image file should be", p, "replace it with the image") from None
    except OSError as e:
        raise DataError(f"cannot read the file ({e.strerror})", p, "check the file and its permissions") from None


def _read_meta(root: Path) -> dict:
    p = root / "fourd.json"
    if not p.is_file():
        return {}
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise DataError(f"invalid JSON ({e})", p, "fix or delete this file") from None


def _write_yaml_atomic(path: Path, items: list[tuple[str, object]], names: list[str]) -> None:
    import cv2

    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    fs = cv2.FileStorage(str(tmp), cv2.FILE_STORAGE_WRITE)
    fs.startWriteStruct("names", cv2.FileNode_SEQ)
    for n in names:
        fs.write("", n)
    fs.endWriteStruct()
    for key, val in items:
        fs.write(key, val)
    fs.release()
    text = tmp.read_text()
    if text.startswith("%YAML 1.2"):  # OpenCV ≥ 5; EasyVolcap and OpenCV 4 expect %YAML:1.0
        text = "%YAML:1.0" + text[len("%YAML 1.2"):]
    tmp.write_text(text)
    os.replace(tmp, path)


def write_easyvolcap_cameras(root: Path, cams: Cameras) -> None:
    import cv2

    from fourd.structures.cameras import file_safe_name, yaml_key_safe

    bad = [n for n in cams.names if not yaml_key_safe(n)]
    if bad:  # OpenCV's YAML writer would stop with a bare cv2.error half-way
        raise DataError(f"camera name(s) {bad[:4]} cannot be keys of intri.yml/extri.yml (letters, digits, '-', '_' "
                        "and spaces only)", root, f"rename the cameras (e.g. {file_safe_name(bad[0])!r})")
    intri, extri = [], []
    for i, n in enumerate(cams.names):
        intri += [(f"K_{n}", K_to_opencv(cams.K[i].double().cpu().numpy())),
                  (f"D_{n}", cams.D[i].double().cpu().numpy().reshape(5, 1)),
                  (f"H_{n}", int(cams.H[i])), (f"W_{n}", int(cams.W[i]))]
        R = cams.R[i].double().cpu().numpy()
        extri += [(f"R_{n}", cv2.Rodrigues(R)[0]), (f"Rot_{n}", R),
                  (f"T_{n}", cams.T[i].double().cpu().numpy().reshape(3, 1))]
    _write_yaml_atomic(root / "intri.yml", intri, cams.names)
    _write_yaml_atomic(root / "extri.yml", extri, cams.names)


def write_easyvolcap(video: MultiViewVideo, root: str | Path, progress=None) -> Path:
    """Write any capture in the EasyVolcap layout, copying encoded images byte for byte."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    write_easyvolcap_cameras(root, video.cameras)
    has_masks = video.has_masks
    for n in video.camera_names:
        (root / "images" / n).mkdir(parents=True, exist_ok=True)
        if has_masks:
            (root / "masks" / n).mkdir(parents=True, exist_ok=True)
    for f in video.frames:
        for n in video.cameras_at(f):  # (a frame a camera dropped stays missing: read so again)
            data, _ = video.image_bytes(f, n)
            atomic_write_bytes(root / "images" / n / f"{f:06d}{image_ext(data)}", data)
            if has_masks:
                mdata, _ = video.mask_bytes(f, n)
                atomic_write_bytes(root / "masks" / n / f"{f:06d}{image_ext(mdata)}", mdata)
        if progress is not None:
            progress()
    for n in video.camera_names:  # pictures of the empty scene (4K4D's bkgd/), where the capture has them
        got = video.backdrop_bytes(n)
        if got is not None:
            (root / "bkgd").mkdir(exist_ok=True)
            atomic_write_bytes(root / "bkgd" / f"{n}{image_ext(got[0])}", got[0])
    meta = {"held_out": video.held_out, "fps": video.fps}
    atomic_write_bytes(root / "fourd.json", json.dumps(meta, indent=2).encode())
    return root
