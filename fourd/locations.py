"""Where fourd finds what it ships and puts what it makes.

* Shaders and the glTF assets travel inside the package (``fourd.shaders``, ``fourd.assets``;
  in a checkout they are ``shaders/`` and ``data/assets/``, mapped by ``pyproject.toml``) and are
  found through the import system (the package's spec) — never through the source tree.
* Generated captures (the demo, synthetic test captures) and other caches go to the cache folder:
  ``FOURD_CACHE`` if set, else the platform's user cache folder (``$XDG_CACHE_HOME/fourd`` or
  ``~/.cache/fourd`` on Linux, ``~/Library/Caches/fourd`` on macOS, ``%LOCALAPPDATA%\\fourd\\Cache``
  on Windows). Outputs go where the user says, relative to the current directory.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def _package_dir(package: str, checkout: str) -> Path:
    """A data package's folder: through importlib.resources (a wheel or an editable install), or
    the checkout's folder when fourd runs from a source tree that was never installed."""
    from importlib.util import find_spec

    try:  # a data package has no __init__.py: a namespace package, whose folder the spec knows
        spec = find_spec(package)
    except ModuleNotFoundError:
        spec = None
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        if Path(folder).is_dir():
            return Path(folder)
    return Path(__file__).resolve().parent.parent / checkout


def shader_dir() -> Path:
    return _package_dir("fourd.shaders", "shaders")


def asset_dir() -> Path:
    return _package_dir("fourd.assets", os.path.join("data", "assets"))


def cache_dir() -> Path:
    """The cache folder (not created here)."""
    env = os.environ.get("FOURD_CACHE")
    if env:
        return Path(env).expanduser()
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local") / "fourd" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "fourd"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fourd"
