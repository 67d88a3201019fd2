"""The package as a user gets it: every subpackage is listed for the wheel, and a built wheel,
installed (not editable) into a fresh virtual environment, runs `fourd doctor` and the demo from an
empty folder, writing nothing outside that folder and the cache folder."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_every_subpackage_is_in_the_wheel_list():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {".".join(p.relative_to(ROOT).parts) for p in (ROOT / "fourd").rglob("*")
               if p.is_dir() and p.name != "__pycache__" and any(p.glob("*.py"))} | {"fourd"}
    assert on_disk <= listed, f"add to pyproject.toml [tool.setuptools] packages: {sorted(on_disk - listed)}"
    assert {"fourd.shaders", "fourd.assets"} <= listed
    assert all((ROOT / "fourd" / Path(*p.split(".")[1:]) / "__init__.py").is_file()
               for p in on_disk if p != "fourd"), "every subpackage needs an __init__.py"


def test_every_shader_file_is_package_data():
    """A new kind of shader file (e.g. compute shaders, .comp) must travel in the wheel too."""
    from fnmatch import fnmatch

    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["fourd.shaders"]
    missing = [p.name for p in (ROOT / "shaders").iterdir() if p.is_file() and not any(fnmatch(p.name, g) for g in patterns)]
    assert not missing, f"add their suffixes to pyproject.toml package-data for fourd.shaders: {missing}"


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


@pytest.mark.slow
def test_wheel_in_a_fresh_venv_runs_doctor_and_the_demo(tmp_path):
    wheels, venv, work, home = tmp_path / "wheels", tmp_path / "venv", tmp_path / "work", tmp_path / "home"
    for d in (work, home):
        d.mkdir()
    src_before = subprocess.run(["git", "status", "--porcelain", "--ignored"], cwd=ROOT, capture_output=True,
                                text=True).stdout
    import shutil

    # build from a copy: setuptools writes build/ and *.egg-info beside the sources it builds
    src = Path(shutil.copytree(ROOT, tmp_path / "src", ignore=shutil.ignore_patterns(
        ".git", ".venv", "outputs", "build", "*.egg-info", "__pycache__", ".pytest_cache", ".ruff_cache")))
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "-q", "-w", str(wheels)],
                   check=True, timeout=600, cwd=tmp_path)
    wheel = next(wheels.glob("fourd-*.whl"))
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py = venv / ("Scripts" if os.name == "nt" else "bin") / "python"
    pip = [str(py), "-m", "pip", "--disable-pip-version-check", "-q", "install"]
    subprocess.run(pip + ["torch==2.13.0"], check=True, timeout=1200)  # the machine's torch build first
    subprocess.run(pip + [str(wheel)], check=True, timeout=1800)
    site = Path(subprocess.run([str(py), "-c", "import fourd, os; print(os.path.dirname(fourd.__file__))"],
                               capture_output=True, text=True, check=True, cwd=work).stdout.strip())
    assert "site-packages" in str(site)  # the wheel, not the checkout
    installed_before = _files(site)
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYOPENGL_PLATFORM", "FOURD_GL", "FOURD_CACHE", "XDG_CACHE_HOME", "PYTHONPATH")}
    env.update(HOME=str(home), TMPDIR=str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    fourd = [str(py), "-m", "fourd.cli"]
    r = subprocess.run(fourd + ["doctor", "--json"], cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    import json

    report = json.loads(r.stdout)
    assert report["ok"] and str(site) in next(c["detail"] for c in report["checks"] if c["name"] == "package data")
    r = subprocess.run(fourd + ["demo", "--steps", "5", "--appearance", "views"], cwd=work, env=env,
                       capture_output=True, text=True, timeout=2400)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    for k in ("scene", "screenshot", "video"):
        assert (work / out[k]).is_file(), k
    # nothing outside the work folder and the cache folder (~/.cache/fourd): not the home folder,
    # not the installed package, not the source tree
    cache = home / ".cache" / "fourd"
    assert (cache / "captures" / "demo").is_dir()
    stray = {f for f in _files(home) if not f.startswith(".cache/fourd/")}
    assert not stray, stray
    assert _files(site) == installed_before
    assert subprocess.run(["git", "status", "--porcelain", "--ignored"], cwd=ROOT, capture_output=True,
                          text=True).stdout == src_before
