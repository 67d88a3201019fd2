"""A corpus of damaged inputs, made from the tiny test captures: calibration YAML, DNA-Rendering
SMC files, images and masks, PLY / npz / safetensors point files, .fourd files, camera paths,
command-line values and output paths. Each case states what must happen — refused with exit 2
and one line naming the offending file or option and a fix, or accepted (exit 0, sometimes with
a warning) — and builds the command that meets it. ``tests/test_bad_input.py`` runs them all.

    python tests/bad_input_corpus.py      # list the cases
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np


@dataclass
class Ctx:
    """What a case may start from (made once per test session) and its own empty folder."""

    ev: Path  # tiny EasyVolcap capture
    smc: Path  # tiny SMC capture
    run: Path  # tiny trained run
    scene: Path  # a valid .fourd
    points: Path  # a valid points.safetensors
    tmp: Path  # this case's own folder

    def copy_ev(self) -> Path:
        return Path(shutil.copytree(self.ev, self.tmp / "cap"))

    def copy_smc(self) -> Path:
        return Path(shutil.copytree(self.smc, self.tmp / "cap"))


@dataclass
class Case:
    name: str
    build: Callable[[Ctx], list[str]]  # makes the damaged input, returns the fourd command line
    code: int  # 2: refused as bad input; 0: accepted
    names: list[str] = field(default_factory=list)  # what the one line must name (file or option)


CASES: list[Case] = []


def case(name: str, code: int = 2, *names: str):
    def register(fn):
        CASES.append(Case(name, fn, code, list(names)))
        return fn
    return register


# --------------------------------------------------------------------------- calibration YAML
def _entries(path: Path) -> tuple[list[str], list[tuple[str, object]]]:
    import cv2

    fs = cv2.FileStorage(str(path), cv2.FILE_STORAGE_READ)
    names = [fs.getNode("names").at(i).string() for i in range(fs.getNode("names").size())]
    items = []
    for n in names:
        for k in ("K", "D", "H", "W", "R", "Rot", "T"):
            node = fs.getNode(f"{k}_{n}")
            if not node.empty():
                items.append((f"{k}_{n}", int(node.real()) if node.isInt() else node.mat()))
    fs.release()
    return names, items


def _edit_yml(cap: Path, which: str, key: str, value, names: list[str] | None = None) -> None:
    """Rewrite intri.yml or extri.yml with ``key`` set to ``value`` (None removes it)."""
    from fourd.datasets.easyvolcap import _write_yaml_atomic

    path = cap / which
    old_names, items = _entries(path)
    items = [(k, value if k == key else v) for k, v in items if not (k == key and value is None)]
    _write_yaml_atomic(path, items, old_names if names is None else names)


def _info(cap: Path) -> list[str]:
    return ["data", "info", str(cap), "--json"]


def _yml_case(name: str, which: str, key: str, value, names=None):
    @case(f"YAML: {name}", 2, which)
    def build(c: Ctx) -> list[str]:
        cap = c.copy_ev()
        _edit_yml(cap, which, key, value(cap) if callable(value) else value, names)
        return _info(cap)


K = np.array([[110.0, 0, 47.5], [0, 110.0, 39.5], [0, 0, 1]])
_yml_case("K is 2×3", "intri.yml", "K_03", K[:2])
_yml_case("K is text", "intri.yml", "K_03", "one two three")
_yml_case("K has NaN", "intri.yml", "K_03", np.where(np.eye(3) > 0, np.nan, K))
_yml_case("K has a negative focal length", "intri.yml", "K_03", K * np.array([[-1, 1, 1], [1, 1, 1], [1, 1, 1]]))
_yml_case("K's last row is not 0 0 1", "intri.yml", "K_03", K + np.array([[0, 0, 0], [0, 0, 0], [0, 1, 0]]))
_yml_case("K missing for a camera", "intri.yml", "K_03", None)
_yml_case("H is 0", "intri.yml", "H_03", 0)
_yml_case("W is negative", "intri.yml", "W_03", -96)
_yml_case("H is not whole", "intri.yml", "H_03", np.array([[80.5]]))
_yml_case("D has 3 values", "intri.yml", "D_03", np.zeros((3, 1)))
_yml_case("D has terms beyond the 5-term model", "intri.yml", "D_03", np.full((8, 1), 0.01))
_yml_case("D has NaN", "intri.yml", "D_03", np.full((5, 1), np.nan))
_yml_case("Rot is 2×3", "extri.yml", "Rot_03", np.eye(3)[:2])
_yml_case("Rot is scaled", "extri.yml", "Rot_03", 2 * np.eye(3))
_yml_case("Rot is a reflection", "extri.yml", "Rot_03", np.diag([1.0, 1.0, -1.0]))
_yml_case("Rot has NaN", "extri.yml", "Rot_03", np.full((3, 3), np.nan))
_yml_case("T is 4×1", "extri.yml", "T_03", np.zeros((4, 1)))
_yml_case("T has inf", "extri.yml", "T_03", np.array([[0.0], [np.inf], [0.0]]))
_yml_case("T is text", "extri.yml", "T_03", "far away")
_yml_case("T missing", "extri.yml", "T_03", None)
_yml_case("names duplicated", "intri.yml", "K_00", lambda cap: _entries(cap / "intri.yml")[1][0][1],
          names=["00", "01", "02", "03", "03", "05", "06", "07"])
_yml_case("names disagree between the files", "extri.yml", "T_00", lambda cap: _entries(cap / "extri.yml")[1][2][1],
          names=["00", "01", "02", "03", "04", "05", "06", "99"])


@case("Rodrigues R with 2 values and no Rot", 2, "extri.yml")
def _(c):
    cap = c.copy_ev()
    _edit_yml(cap, "extri.yml", "Rot_03", None)
    _edit_yml(cap, "extri.yml", "R_03", np.zeros((2, 1)))
    return _info(cap)


@case("names list empty", 2, "intri.yml")
def _(c):
    cap = c.copy_ev()
    (cap / "intri.yml").write_text("%YAML:1.0\n---\nnames: []\n")
    return _info(cap)


def _damaged_file(name: str, which: str, damage: Callable[[bytes], bytes]):
    @case(name, 2, which)
    def build(c: Ctx) -> list[str]:
        cap = c.copy_ev()
        p = cap / which
        p.write_bytes(damage(p.read_bytes()))
        return _info(cap)


_damaged_file("intri.yml truncated mid-matrix", "intri.yml", lambda b: b[: len(b) // 2])
_damaged_file("intri.yml is binary garbage", "intri.yml", lambda b: bytes(range(256)) * 8)
_damaged_file("extri.yml is empty", "extri.yml", lambda b: b"")
_damaged_file("extri.yml names unquoted with a colon", "extri.yml",
              lambda b: b.replace(b'- "03"', b"- 03: x"))
_damaged_file("intri.yml is not YAML at all", "intri.yml", lambda b: b"{{{{ not yaml ]]]]\n" * 20)


@case("intri.yml missing", 2, "intri.yml")
def _(c):
    cap = c.copy_ev()
    (cap / "intri.yml").unlink()
    return _info(cap)


@case("extri.yml is a folder", 2, "extri.yml")
def _(c):
    cap = c.copy_ev()
    (cap / "extri.yml").unlink()
    (cap / "extri.yml").mkdir()
    return _info(cap)


@case("a folder of videos given as a capture: ingest it", 2, "fourd data ingest")
def _(c):
    vids = c.tmp / "videos"
    vids.mkdir()
    for n in ("cam00", "cam01", "cam02"):
        (vids / f"{n}.mp4").write_bytes(b"\x00" * 64)
    return ["train", "--dataset", str(vids), "--out", str(c.tmp / "run")]


@case("camera folders of images without a calibration", 2, "intri.yml/extri.yml")
def _(c):
    cap = c.copy_ev()
    for d in (cap / "images").iterdir():
        d.rename(cap / d.name)
    (cap / "images").rmdir()
    for f in ("intri.yml", "extri.yml"):
        (cap / f).unlink()
    return _info(cap)


@case("fourd.json is not JSON", 2, "fourd.json")
def _(c):
    cap = c.copy_ev()
    (cap / "fourd.json").write_text("{held_out: [}")
    return _info(cap)


@case("fourd.json holds out an unknown camera", 2, "held-out")
def _(c):
    cap = c.copy_ev()
    meta = json.loads((cap / "fourd.json").read_text())
    meta["held_out"] = ["42"]
    (cap / "fourd.json").write_text(json.dumps(meta))
    return _info(cap)


@case("fourd.json: incomplete_cameras is not a choice", 2, "fourd.json", "incomplete_cameras")
def _(c):
    cap = c.copy_ev()
    meta = json.loads((cap / "fourd.json").read_text())
    meta["incomplete_cameras"] = "drop"
    (cap / "fourd.json").write_text(json.dumps(meta))
    return _info(cap)


@case("image folders numbered otherwise than the calibration (1 for 01): matched, said", 0, "by number")
def _(c):
    cap = c.copy_ev()
    for sub in ("images", "masks"):
        for d in sorted((cap / sub).iterdir()):
            d.rename(d.with_name(str(int(d.name))))
    return _info(cap)


@case("16-bit PNG images holding 12-bit samples: read with 4095 as white, said", 0, "12-bit")
def _(c):
    import cv2

    cap = c.copy_ev()
    for p in sorted((cap / "images").rglob("*.jpg")):
        img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        cv2.imwrite(str(p.with_suffix(".png")), (img.astype(np.int32) * 4095 // 255).astype(np.uint16))
        p.unlink()
    return ["data", "preview", str(cap), "--out", str(c.tmp / "sheet.png")]


@case("EasyVolcap's video layout (videos/<camera>.mp4, no images/): pointed to ingest", 2, "videos",
      "fourd data ingest", "--calibration")
def _(c):
    cap = c.copy_ev()
    (cap / "videos").mkdir()
    for d in sorted((cap / "images").iterdir()):
        (cap / "videos" / f"{d.name}.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")  # (never opened)
    shutil.rmtree(cap / "images")
    return _info(cap)


@case("masks numbered from 1 beside images from 0: matched, said", 0, "numbered +1")
def _(c):
    cap = c.copy_ev()
    for d in sorted((cap / "masks").iterdir()):
        for p in sorted(d.iterdir(), reverse=True):
            p.rename(p.with_name(f"{int(p.stem) + 1:06d}{p.suffix}"))
    return _info(cap)


@case("an image folder no calibrated camera names: not used, said", 0, "calibrated")
def _(c):
    cap = c.copy_ev()
    shutil.copytree(cap / "images" / "03", cap / "images" / "99")
    return _info(cap)


@case("one mask file missing: said on load, its view skipped by carving", 0, "frame(s) 1", "skipped")
def _(c):
    cap = c.copy_ev()
    (cap / "masks" / "03" / "000001.png").unlink()
    return ["carve", "--dataset", str(cap), "--out", str(c.tmp / "carve")]


@case("one camera's mask folder empty: refused, naming it", 2, "masks/03", "no usable view")
def _(c):
    cap = c.copy_ev()
    for p in (cap / "masks" / "03").iterdir():
        p.unlink()
    return _info(cap)


@case("clean EasyVolcap capture", 0)
def _(c):
    return _info(c.copy_ev())


# --------------------------------------------------------------------------- images and masks
def _convert(c: Ctx, cap: Path) -> list[str]:
    return ["data", "convert", str(cap), str(c.tmp / "out")]


def _image_case(name: str, rel: str, damage: Callable[[Path], None], code: int = 2, token: str | None = None):
    @case(name, code, *([token or rel.split("/")[-1]] if code else ([token] if token else [])))
    def build(c: Ctx) -> list[str]:
        cap = c.copy_ev()
        damage(cap / rel)
        return _convert(c, cap)


def _rewrite(fn):
    return lambda p: p.write_bytes(fn(p.read_bytes()))


def _corrupt_scan(b: bytes) -> bytes:
    rng = np.random.default_rng(7)
    i = len(b) // 2
    junk = bytearray(rng.integers(0, 256, 600, dtype=np.uint8).tobytes())
    junk[100:102] = b"\xff\x47"  # a marker byte where none may stand
    return b[:i] + bytes(junk) + b[i + 600:]


def _resized(p: Path, w: int = 48, h: int = 40) -> None:
    import cv2

    img = cv2.imdecode(np.frombuffer(p.read_bytes(), np.uint8), cv2.IMREAD_UNCHANGED)
    p.write_bytes(cv2.imencode(p.suffix, cv2.resize(img, (w, h)))[1].tobytes())


def _folder_instead(p: Path) -> None:
    p.unlink()
    p.mkdir()


_image_case("JPEG truncated", "images/03/000001.jpg", _rewrite(lambda b: b[: len(b) * 2 // 3]))
_image_case("JPEG with a corrupt middle", "images/03/000001.jpg", _rewrite(_corrupt_scan))
_image_case("image file empty", "images/03/000001.jpg", _rewrite(lambda b: b""))
_image_case("text saved as .jpg", "images/03/000001.jpg", _rewrite(lambda b: b"this is not an image\n" * 30))
_image_case("image at the wrong size", "images/03/000001.jpg", _resized)
_image_case("a folder where an image should be", "images/03/000001.jpg", _folder_instead)
_image_case("mask PNG truncated", "masks/03/000001.png", _rewrite(lambda b: b[: len(b) // 2]))
_image_case("mask at the wrong size", "masks/03/000001.png", lambda p: _resized(p, 48, 44))
_image_case("mask at half the image size: read resized", "masks/03/000001.png", _resized, 0)
_image_case("mask is garbage bytes", "masks/03/000001.png", _rewrite(lambda b: b"\x89PNG\r\n\x1a\n" + b"\x00" * 64))
_image_case("a camera lacks one frame of three: its view of it skipped, with a warning", "images/03/000002.jpg",
            lambda p: p.unlink(), 0, "skipped")


@case("a frame three cameras of eight lack: left out for every camera, with a warning", 0, "more than a quarter")
def _(c):
    cap = c.copy_ev()
    for n in ("01", "03", "05"):
        (cap / "images" / n / "000002.jpg").unlink()
    return _convert(c, cap)


_image_case("masks missing for one camera", "masks/03", lambda p: shutil.rmtree(p), 2, "masks")
_image_case("a calibrated camera has no image folder", "images/03", lambda p: shutil.rmtree(p), 2, "images/03")


@case("one camera's image folder is empty: no common frame", 2, "images")
def _(c):
    cap = c.copy_ev()
    for p in (cap / "images" / "03").iterdir():
        p.unlink()
    return _convert(c, cap)


@case("preview decodes a JPEG with a corrupt middle", 2, "000000.jpg")
def _(c):
    cap = c.copy_ev()
    p = cap / "images" / "00" / "000000.jpg"
    p.write_bytes(_corrupt_scan(p.read_bytes()))
    return ["data", "preview", str(cap), "--out", str(c.tmp / "sheet.png")]


@case("clean capture converts", 0)
def _(c):
    return _convert(c, c.copy_ev())


@case("convert onto its own input", 2, "same as an input")
def _(c):
    cap = c.copy_ev()
    return ["data", "convert", str(cap), str(cap)]


@case("convert onto its input through ..", 2, "same as an input")
def _(c):
    cap = c.copy_ev()
    return ["data", "convert", str(cap), str(cap / "images" / "..")]


@case("convert into the folder that holds the input", 2, "holds the input")
def _(c):
    cap = c.copy_ev()
    return ["data", "convert", str(cap / "images" / ".." / ".." / "cap"), str(c.tmp)]


# --------------------------------------------------------------------------- SMC
def _edit_h5(path: Path, fn) -> None:
    import h5py

    with h5py.File(path, "r+") as f:
        fn(f)


def _smc_files(cap: Path) -> tuple[Path, Path]:
    main = next((cap / "main").glob("*.smc"))
    return main, cap / "annotations" / f"{main.stem}_annots.smc"


def _smc_case(name: str, which: str, fn, code: int = 2, token: str | None = None):
    @case(f"SMC: {name}", code, *([token] if token else ([which] if code else [])))
    def build(c: Ctx) -> list[str]:
        cap = c.copy_smc()
        main, annots = _smc_files(cap)
        target = main if which == "main" else annots
        if callable(fn):
            fn(target)
        return _info(cap)


def _set(group: str, key: str, value):
    def fn(path):
        def edit(f):
            g = f[group]
            del g[key]
            g[key] = value
        _edit_h5(path, edit)
    return fn


def _drop(path_in_file: str):
    return lambda path: _edit_h5(path, lambda f: f.__delitem__(path_in_file))


_smc_case("RT is singular", "annots", _set("Camera_Parameter/03", "RT", np.zeros((4, 4))), token="RT")
_smc_case("RT is 3×4", "annots", _set("Camera_Parameter/03", "RT", np.eye(4)[:3]), token="RT")
_smc_case("RT has NaN", "annots", _set("Camera_Parameter/03", "RT", np.full((4, 4), np.nan)), token="RT")
_smc_case("RT is a reflection", "annots", _set("Camera_Parameter/03", "RT", np.diag([1.0, 1, -1, 1])),
          token="rigid")
_smc_case("K stored as strings", "annots", _set("Camera_Parameter/03", "K", np.array([b"a", b"b", b"c"])), token="K")
_smc_case("K is 2×3", "annots", _set("Camera_Parameter/03", "K", np.eye(3)[:2]), token="K")
_smc_case("K has a negative focal length", "annots", _set("Camera_Parameter/03", "K", -np.eye(3)), token="K")
_smc_case("D has 3 values", "annots", _set("Camera_Parameter/03", "D", np.zeros(3)), token="D")
_smc_case("Camera_Parameter of a camera missing", "annots", _drop("Camera_Parameter/03"), token="Camera_Parameter")
_smc_case("no Camera_Parameter at all", "annots", _drop("Camera_Parameter"), token="Camera_Parameter")
_smc_case("annotations truncated", "annots", _rewrite(lambda b: b[: len(b) // 3]), token="annots.smc")
_smc_case("main SMC truncated", "main", _rewrite(lambda b: b[: len(b) // 3]), token=".smc")
_smc_case("annotations file missing", "annots", lambda p: p.unlink(), token="annots.smc")
_smc_case("a camera id that is not a number", "main",
          lambda p: _edit_h5(p, lambda f: f.move(f"{next(iter(f))}/3", f"{next(iter(f))}/cam3")), token="not numbers")
_smc_case("a frame key that is not a number", "main",
          lambda p: _edit_h5(p, lambda f: f.move(f"{next(iter(f))}/3/color/1", f"{next(iter(f))}/3/color/one")),
          token="not numbers")
_smc_case("no camera groups", "main", lambda p: _edit_h5(p, lambda f: [f.__delitem__(k) for k in list(f)]),
          token="no cameras")
_smc_case("a camera lacks one frame of three: its view of it skipped, with a warning", "main",
          lambda p: _edit_h5(p, lambda f: f.__delitem__(f"{next(iter(f))}/3/color/2")), 0, "skipped")
_smc_case("a camera's mask of one frame missing: its view skipped, with a warning", "annots",
          _drop("Mask/3/mask/1"), 0, "skipped")
_smc_case("a camera's masks all missing: refused, naming it", "annots", _drop("Mask/3/mask"), 2, "no usable view")
_smc_case("clean SMC capture", "main", None, 0)


# --------------------------------------------------------------------------- ZJU-MoCap folders
def _zju_case(name: str, damage, token: str = "annots.npy"):
    @case(f"ZJU-MoCap: {name}", 2, token)
    def build(c: Ctx) -> list[str]:
        from zju_capture import write_zju

        from fourd.datasets.easyvolcap import EasyVolcapCapture

        cap = c.tmp / "CoreView_000"
        names = write_zju(EasyVolcapCapture(c.ev), cap)
        p = cap / "annots.npy"
        ann = np.load(p, allow_pickle=True).item()  # the corpus's own file
        if damage(c, cap, p, ann, names) is not False:
            np.save(p, np.array(ann, dtype=object), allow_pickle=True)
        return _info(cap)


def _code(c, cap, p, ann, n):
    from zju_capture import RunsCode

    ann["x"] = RunsCode(c.tmp / "ran")


_zju_case("annots.npy asks to run code", _code)
_zju_case("annots.npy truncated", lambda c, cap, p, ann, n: p.write_bytes(p.read_bytes()[:300]) and False)
_zju_case("annots.npy without cams", lambda c, cap, p, ann, n: ann.pop("cams"))
_zju_case("a NaN rotation", lambda c, cap, p, ann, n: ann["cams"]["R"].__setitem__(2, ann["cams"]["R"][2] * np.nan))
_zju_case("a frame lists too few images", lambda c, cap, p, ann, n: ann["ims"][1]["ims"].pop())
_zju_case("a camera's images are missing", lambda c, cap, p, ann, n: shutil.rmtree(cap / n[0]), "Camera_B1")


# --------------------------------------------------------------------------- point files
def _ply(c: Ctx, name: str, n: int = 200, nan: bool = False, attrs: bool = True) -> Path:
    import torch

    from fourd.structures.points import write_ply

    g = torch.Generator().manual_seed(0)
    xyz = torch.rand(n, 3, generator=g)
    if nan:
        xyz[5, 1] = float("nan")
    a = {"colors": torch.rand(n, 3, generator=g)} if attrs else None
    return write_ply(c.tmp / name, xyz, a)


def _import(src: Path, c: Ctx, *extra: str) -> list[str]:
    return ["import", str(src), "--out", str(c.tmp / "imported"), *extra]


@case("PLY truncated", 2, "cloud.ply")
def _(c):
    p = _ply(c, "cloud.ply")
    p.write_bytes(p.read_bytes()[:-500])
    return _import(p, c)


@case("PLY with NaN coordinates", 2, "cloud.ply")
def _(c):
    return _import(_ply(c, "cloud.ply", nan=True), c)


@case("PLY header claims 10⁹ points", 2, "cloud.ply")
def _(c):
    p = _ply(c, "cloud.ply")
    p.write_bytes(p.read_bytes().replace(b"element vertex 200", b"element vertex 1000000000"))
    return _import(p, c)


@case("PLY without a header", 2, "cloud.ply")
def _(c):
    p = c.tmp / "cloud.ply"
    p.write_bytes(np.random.default_rng(0).random(300).astype(np.float32).tobytes())
    return _import(p, c)


@case("PLY with an unknown format", 2, "cloud.ply")
def _(c):
    p = _ply(c, "cloud.ply")
    p.write_bytes(p.read_bytes().replace(b"binary_little_endian", b"binary_middle_endian"))
    return _import(p, c)


@case("PLY with vertex count 0", 2, "cloud.ply")
def _(c):
    p = c.tmp / "cloud.ply"
    p.write_text("ply\nformat ascii 1.0\nelement vertex 0\nproperty float x\nproperty float y\nproperty float z\n"
                 "end_header\n")
    return _import(p, c)


@case("ASCII PLY with too few rows", 2, "cloud.ply")
def _(c):
    p = c.tmp / "cloud.ply"
    p.write_text("ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\n"
                 "end_header\n0 0 0\n1 1 1\n")
    return _import(p, c)


@case("big-endian PLY imports", 0)
def _(c):
    p = c.tmp / "cloud.ply"
    xyz = np.random.default_rng(0).random((50, 3)).astype(">f4")
    p.write_bytes(b"ply\nformat binary_big_endian 1.0\nelement vertex 50\nproperty float x\nproperty float y\n"
                  b"property float z\nend_header\n" + xyz.tobytes())
    return _import(p, c)


@case("valid PLY imports", 0)
def _(c):
    return _import(_ply(c, "cloud.ply"), c)


def _npz(c: Ctx, **arrays) -> Path:
    p = c.tmp / "cloud.npz"
    np.savez(p, **arrays)
    return p


@case("npz truncated", 2, "cloud.npz")
def _(c):
    p = _npz(c, coords=np.random.rand(100, 3).astype(np.float32))
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    return _import(p, c)


@case("npz without coords", 2, "cloud.npz")
def _(c):
    return _import(_npz(c, points=np.zeros((10, 3))), c)


@case("npz with NaN coords", 2, "cloud.npz")
def _(c):
    a = np.random.rand(10, 3)
    a[2, 2] = np.nan
    return _import(_npz(c, coords=a), c)


@case("npz coords of shape [N, 2]", 2, "cloud.npz")
def _(c):
    return _import(_npz(c, coords=np.zeros((10, 2))), c)


@case("import a missing file", 2, "missing.glb")
def _(c):
    return _import(c.tmp / "missing.glb", c)


@case("import an unsupported file type", 2, "notes.txt")
def _(c):
    p = c.tmp / "notes.txt"
    p.write_text("hello")
    return _import(p, c)


@case("import --points 0", 2, "--points")
def _(c):
    return _import(_ply(c, "cloud.ply"), c, "--points", "0")


def _points_file(c: Ctx, edit) -> Path:
    import torch

    from fourd.structures.points import PointSequence

    g = torch.Generator().manual_seed(0)
    pts = [torch.rand(100, 3, generator=g) for _ in range(3)]
    cols = [torch.rand(100, 3, generator=g) for _ in range(3)]
    pts, cols = edit(pts, cols)
    seq = PointSequence.from_list(pts, [0, 1, 2], {"colors": cols}, {"bounds": [[0, 0, 0], [1, 1, 1]]})
    return seq.save(c.tmp / "points.safetensors")


def _bake(src: Path, c: Ctx) -> list[str]:
    return ["bake", str(src), "--out", str(c.tmp / "s.fourd")]


@case("points.safetensors with NaN", 2, "points.safetensors")
def _(c):
    def edit(p, col):
        p[1][7, 0] = float("nan")
        return p, col
    return _bake(_points_file(c, edit), c)


@case("points.safetensors with an empty frame", 2, "points.safetensors")
def _(c):
    import torch

    return _bake(_points_file(c, lambda p, col: ([p[0], torch.zeros(0, 3), p[2]],
                                                 [col[0], torch.zeros(0, 3), col[2]])), c)


@case("points.safetensors with NaN colours", 2, "points.safetensors")
def _(c):
    def edit(p, col):
        col[0][3] = float("nan")
        return p, col
    return _bake(_points_file(c, edit), c)


@case("points.safetensors truncated", 2, "points.safetensors")
def _(c):
    p = _points_file(c, lambda p, col: (p, col))
    p.write_bytes(p.read_bytes()[:-300])
    return _bake(p, c)


@case("points.safetensors that is a PLY inside", 2, "points.safetensors")
def _(c):
    src = _ply(c, "cloud.ply")
    p = c.tmp / "points.safetensors"
    p.write_bytes(src.read_bytes())
    return _bake(p, c)


@case("valid points.safetensors bakes", 0)
def _(c):
    return _bake(_points_file(c, lambda p, col: (p, col)), c)


@case("PLY frame folder with a NaN frame", 2, "000001.ply")
def _(c):
    d = c.tmp / "frames"
    d.mkdir()
    for i in range(3):
        _ply(c, f"frames/{i:06d}.ply", nan=i == 1)
    return _bake(d, c)


@case("PLY frame folder with a truncated frame, viewed", 2, "000002.ply")
def _(c):
    d = c.tmp / "frames"
    d.mkdir()
    for i in range(3):
        p = _ply(c, f"frames/{i:06d}.ply")
    p.write_bytes(p.read_bytes()[:100])
    return ["view", str(d), "--headless", "--frame", "2", "--screenshot", str(c.tmp / "shot.png")]


# --------------------------------------------------------------------------- .fourd files
def _fourd_header(path: Path) -> tuple[dict, bytes]:
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def _write_fourd(path: Path, header: dict, body: bytes) -> Path:
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    path.write_bytes(len(h).to_bytes(8, "little") + h + body)
    return path


def _fourd_case(name: str, edit, code: int = 2):
    @case(name, code, *(["s.fourd"] if code else []))
    def build(c: Ctx) -> list[str]:
        header, body = _fourd_header(c.scene)
        p = c.tmp / "s.fourd"
        out = edit(header, body)
        if isinstance(out, bytes):
            p.write_bytes(out)
        else:
            _write_fourd(p, *out)
        return ["view", str(p), "--headless", "--screenshot", str(c.tmp / "shot.png"), "--size", "64x48"]


def _meta(key, value):
    def edit(h, b):
        h["__metadata__"][key] = value
        return h, b
    return edit


def _drop_meta(key):
    def edit(h, b):
        del h["__metadata__"][key]
        return h, b
    return edit


def _first_entry(fn):
    def edit(h, b):
        k = next(k for k in h if k != "__metadata__")
        fn(h[k])
        return h, b
    return edit


_fourd_case("truncated .fourd", lambda h, b: _write_fourd_bytes(h, b[: len(b) // 2]))
_fourd_case("header claims 10⁹ points", _meta("counts", json.dumps([10**9])))
_fourd_case("non-numeric version", _meta("version", "two"))
_fourd_case("version from the future", _meta("version", "99"))
_fourd_case("missing fps", _drop_meta("fps"))
_fourd_case("fps of 0", _meta("fps", "0"))
_fourd_case("frames list shorter than counts", _meta("frames", "[]"))
_fourd_case("bounds with NaN", _meta("bounds", "[[NaN, 0, 0], [1, 1, 1]]"))
_fourd_case("an entry with an unknown dtype", _first_entry(lambda e: e.__setitem__("dtype", "F64")))
_fourd_case("an entry whose shape does not match its bytes", _first_entry(lambda e: e.__setitem__(
    "shape", [e["shape"][0]] + [d * 2 for d in e["shape"][1:]] if len(e["shape"]) > 1 else [e["shape"][0], 2])))
_fourd_case("not a fourd file (random bytes)", lambda h, b: np.random.default_rng(0).bytes(4096))
_fourd_case("header length beyond the file", lambda h, b: (10**12).to_bytes(8, "little") + b"{}")
_fourd_case("a flipped data byte (checksum)", lambda h, b: (h, b[:100] + bytes([b[100] ^ 0xFF]) + b[101:]))
_fourd_case("valid .fourd", lambda h, b: (h, b), 0)


def _write_fourd_bytes(h: dict, body: bytes) -> bytes:
    hb = json.dumps(h).encode()
    hb += b" " * (-len(hb) % 8)
    return len(hb).to_bytes(8, "little") + hb + body


# --------------------------------------------------------------------------- camera paths
def _path_json(c: Ctx, edit) -> Path:
    from fourd.offline.paths import default_orbit

    d = default_orbit(c.scene, 10, False, 30.0, (64, 48)).to_json()
    d = edit(d)
    p = c.tmp / "path.json"
    p.write_text(d if isinstance(d, str) else json.dumps(d))
    return p


def _render_path(c: Ctx, p: Path) -> list[str]:
    return ["render", str(c.scene), "--path", str(p), "--out", str(c.tmp / "frames")]


def _path_case(name: str, edit, code: int = 2):
    @case(name, code, *(["path.json"] if code else []))
    def build(c: Ctx) -> list[str]:
        return _render_path(c, _path_json(c, edit))


def _kf(fn):
    def edit(d):
        fn(d["keyframes"])
        return d
    return edit


_path_case("path fps 0", lambda d: {**d, "fps": 0})
_path_case("path fps negative", lambda d: {**d, "fps": -5})
_path_case("path with one keyframe", _kf(lambda k: k.__delitem__(slice(1, None))))
_path_case("path not JSON", lambda d: "{ keyframes: [")
_path_case("keyframe without K", _kf(lambda k: k[1].pop("K")))
_path_case("keyframe K with NaN", _kf(lambda k: k[1].__setitem__("K", [[float("nan")] * 3] * 3)))
_path_case("keyframe times not increasing", _kf(lambda k: k[2].__setitem__("time", k[1]["time"])))
_path_case("unknown interpolation", lambda d: {**d, "interpolation": "bezier"})
_path_case("unknown time mode", lambda d: {**d, "time_mode": "backwards"})
_path_case("keyframe R not a rotation", _kf(lambda k: k[1].__setitem__("R", [[2, 0, 0], [0, 2, 0], [0, 0, 2]])))
_path_case("valid path renders", lambda d: d, 0)


@case("path file missing", 2, "nowhere.json")
def _(c):
    return _render_path(c, c.tmp / "nowhere.json")


# --------------------------------------------------------------------------- command-line values
def _cli(name: str, option: str, build: Callable[[Ctx], list[str]]):
    CASES.append(Case(name, build, 2, [option]))


_cli("data masks --key purple", "--key", lambda c: ["data", "masks", str(c.ev), "--key", "purple"])
_cli("carve --points 0", "--points", lambda c: ["carve", "--dataset", str(c.ev), "--points", "0", "--out", str(c.tmp / "o")])
_cli("carve --points -5", "--points", lambda c: ["carve", "--dataset", str(c.ev), "--points", "-5", "--out", str(c.tmp / "o")])
_cli("carve --points abc", "--points", lambda c: ["carve", "--dataset", str(c.ev), "--points", "abc"])
_cli("carve --resolution 0", "--resolution", lambda c: ["carve", "--dataset", str(c.ev), "--resolution", "0",
                                                        "--out", str(c.tmp / "o")])
_cli("carve --vote 1.5", "--vote", lambda c: ["carve", "--dataset", str(c.ev), "--vote", "1.5", "--out", str(c.tmp / "o")])
_cli("carve --vote 0", "--vote", lambda c: ["carve", "--dataset", str(c.ev), "--vote", "0", "--out", str(c.tmp / "o")])
_cli("carve --bounds inside out", "--bounds", lambda c: ["carve", "--dataset", str(c.ev), "--bounds", "1", "1", "1",
                                                         "0", "0", "0", "--out", str(c.tmp / "o")])
_cli("carve --frames 7:9 (not in the capture)", "--frames", lambda c: ["carve", "--dataset", str(c.ev), "--frames", "7:9",
                                                                        "--out", str(c.tmp / "o")])
_cli("carve --frames x", "--frames", lambda c: ["carve", "--dataset", str(c.ev), "--frames", "x", "--out", str(c.tmp / "o")])
_cli("carve --device not-a-device", "--device", lambda c: ["carve", "--dataset", str(c.ev), "--device", "gpu0",
                                                           "--out", str(c.tmp / "o")])
_cli("view --size 0x0", "--size", lambda c: ["view", str(c.scene), "--headless", "--size", "0x0"])
_cli("view --size abc", "--size", lambda c: ["view", str(c.scene), "--headless", "--size", "abc"])
_cli("view --K 0", "--K", lambda c: ["view", str(c.scene), "--headless", "--K", "0"])
_cli("view --frame 99", "frame 99", lambda c: ["view", str(c.scene), "--headless", "--frame", "99"])
_cli("view --camera unknown", "'nope'", lambda c: ["view", str(c.scene), "--headless", "--camera", "nope"])
_cli("view --mode sparkle", "--mode", lambda c: ["view", str(c.scene), "--headless", "--mode", "sparkle"])
_cli("render --size 0x10", "--size", lambda c: ["render", str(c.scene), "--orbit", "--size", "0x10",
                                                "--out", str(c.tmp / "f")])
_cli("render --size 100000x100000", "--size", lambda c: ["render", str(c.scene), "--orbit", "--size", "100000x100000",
                                                         "--out", str(c.tmp / "f")])
_cli("render --frames 0", "--frames", lambda c: ["render", str(c.scene), "--orbit", "--frames", "0", "--out", str(c.tmp / "f")])
_cli("render --fps 0", "--fps", lambda c: ["render", str(c.scene), "--orbit", "--fps", "0", "--out", str(c.tmp / "f")])
_cli("render --fps -3", "--fps", lambda c: ["render", str(c.scene), "--orbit", "--fps", "-3", "--out", str(c.tmp / "f")])
_cli("render --K 0", "--K", lambda c: ["render", str(c.scene), "--orbit", "--K", "0", "--out", str(c.tmp / "f")])
_cli("render with no path choice", "--path", lambda c: ["render", str(c.scene), "--out", str(c.tmp / "f")])
_cli("render --orbit --spiral", "--path", lambda c: ["render", str(c.scene), "--orbit", "--spiral", "--out", str(c.tmp / "f")])
_cli("data synth --cameras 0", "--cameras", lambda c: ["data", "synth", str(c.tmp / "s"), "--cameras", "0"])
_cli("data synth --frames 0", "--frames", lambda c: ["data", "synth", str(c.tmp / "s"), "--frames", "0"])
_cli("data synth --size 0", "--size", lambda c: ["data", "synth", str(c.tmp / "s"), "--size", "0"])
_cli("data synth --fps 0", "--fps", lambda c: ["data", "synth", str(c.tmp / "s"), "--fps", "0"])
_cli("data synth --rings 0", "--rings", lambda c: ["data", "synth", str(c.tmp / "s"), "--rings", "0"])
_cli("data preview --cameras 0", "--cameras", lambda c: ["data", "preview", str(c.ev), "--cameras", "0",
                                                         "--out", str(c.tmp / "s.png")])
_cli("train --K 0", "--K", lambda c: ["train", "--dataset", str(c.ev), "--K", "0", "--out", str(c.tmp / "r")])
_cli("train --steps -1", "--steps", lambda c: ["train", "--dataset", str(c.ev), "--steps", "-1", "--out", str(c.tmp / "r")])
_cli("train --lr 0", "--lr", lambda c: ["train", "--dataset", str(c.ev), "--lr", "0", "--out", str(c.tmp / "r")])
_cli("train --carve.vote 2", "--carve.vote", lambda c: ["train", "--dataset", str(c.ev), "--carve.vote", "2",
                                                        "--out", str(c.tmp / "r")])
_cli("train --model.sh-degree 7", "--model.sh-degree", lambda c: ["train", "--dataset", str(c.ev), "--model.sh-degree",
                                                                  "7", "--out", str(c.tmp / "r")])
_cli("train --background 2 0 0", "--background", lambda c: ["train", "--dataset", str(c.ev), "--background", "2", "0",
                                                            "0", "--out", str(c.tmp / "r")])
_cli("train --rasterizer foo", "--rasterizer", lambda c: ["train", "--dataset", str(c.ev), "--rasterizer", "foo",
                                                          "--out", str(c.tmp / "r")])
_cli("train --device cuda:7", "--device", lambda c: ["train", "--dataset", str(c.ev), "--device", "cuda:7",
                                                     "--out", str(c.tmp / "r")])
_cli("train --eval-cams unknown", "--eval-cams", lambda c: ["train", "--dataset", str(c.ev), "--eval-cams", "zz",
                                                            "--out", str(c.tmp / "r")])
_cli("train --stpes 3 (unknown option)", "--stpes", lambda c: ["train", "--stpes", "3"])
_cli("eval --frames 0", "--frames", lambda c: ["eval", str(c.run), "--frames", "0", "--out", str(c.tmp / "e")])
_cli("bake --views 0", "--views", lambda c: ["bake", str(c.run), "--views", "0", "--out", str(c.tmp / "s.fourd")])
_cli("bake --frames 5:9", "--frames", lambda c: ["bake", str(c.run), "--frames", "5:9", "--out", str(c.tmp / "s.fourd")])
_cli("unknown command", "frobnicate", lambda c: ["frobnicate"])


# --------------------------------------------------------------------------- runs and outputs
@case("eval of a run whose config.json is broken", 2, "config.json")
def _(c):
    run = Path(shutil.copytree(c.run, c.tmp / "run"))
    (run / "config.json").write_text("{\"steps\": 10,")
    return ["eval", str(run), "--out", str(c.tmp / "e")]


@case("eval of a run whose config.json has an unknown key", 2, "config.json")
def _(c):
    run = Path(shutil.copytree(c.run, c.tmp / "run"))
    d = json.loads((run / "config.json").read_text())
    d["stpes"] = 3
    (run / "config.json").write_text(json.dumps(d))
    return ["eval", str(run), "--out", str(c.tmp / "e")]


@case("eval of a folder that is not a run", 2, "config.json")
def _(c):
    return ["eval", str(c.tmp), "--out", str(c.tmp / "e")]


@case("bake of a run without checkpoints", 2, "checkpoints")
def _(c):
    run = Path(shutil.copytree(c.run, c.tmp / "run"))
    shutil.rmtree(run / "checkpoints")
    return ["bake", str(run), "--out", str(c.tmp / "s.fourd")]


@case("bake of a run with a truncated checkpoint", 2, ".pt")
def _(c):
    run = Path(shutil.copytree(c.run, c.tmp / "run"))
    ck = run / "checkpoints" / (run / "checkpoints" / "latest.txt").read_text().strip()
    ck.write_bytes(ck.read_bytes()[:1000])
    return ["bake", str(run), "--out", str(c.tmp / "s.fourd")]


@case("bake --out an existing folder", 2, "existing folder")
def _(c):
    (c.tmp / "o").mkdir()
    return ["bake", str(c.points), "--out", str(c.tmp / "o")]


@case("bake --out onto its own input", 2, "same as an input")
def _(c):
    p = Path(shutil.copy(c.points, c.tmp / "points.safetensors"))
    return ["bake", str(p), "--out", str(p)]


@case("carve --out an existing file", 2, "existing file")
def _(c):
    (c.tmp / "o").write_text("x")
    return ["carve", "--dataset", str(c.ev), "--out", str(c.tmp / "o")]


@case("render --out below a file", 2, "not a folder")
def _(c):
    (c.tmp / "f").write_text("x")
    return ["render", str(c.scene), "--orbit", "--frames", "2", "--out", str(c.tmp / "f" / "v.mp4")]


@case("view --screenshot an existing folder", 2, "existing folder")
def _(c):
    (c.tmp / "shot").mkdir()
    return ["view", str(c.scene), "--headless", "--screenshot", str(c.tmp / "shot")]


@case("import --out its own source file", 2, "existing file")
def _(c):
    p = _ply(c, "cloud.ply")
    return ["import", str(p), "--out", str(p)]


@case("data preview --out an existing folder", 2, "existing folder")
def _(c):
    (c.tmp / "sheet").mkdir()
    return ["data", "preview", str(c.ev), "--out", str(c.tmp / "sheet")]


@case("data synth into an existing file", 2, "existing file")
def _(c):
    (c.tmp / "s").write_text("x")
    return ["data", "synth", str(c.tmp / "s"), "--frames", "1", "--cameras", "4", "--size", "32"]


@case("scene that does not exist", 2, "missing.fourd")
def _(c):
    return ["view", str(c.tmp / "missing.fourd"), "--headless"]


if __name__ == "__main__":
    for i, k in enumerate(CASES):
        print(f"{i:3d}  {'refuse' if k.code else 'accept'}  {k.name}")
    print(f"{len(CASES)} cases")
