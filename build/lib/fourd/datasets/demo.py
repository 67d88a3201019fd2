"""The built-in demo capture: a fixed synthetic recipe on the Fox asset, generated on first use."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict
from pathlib import Path

from fourd.datasets.synth import SynthRecipe

DEMO_RECIPE = SynthRecipe(asset="Fox.glb", animation="Walk", rings=[(12, 5.0), (12, 35.0)], frames=30, fps=30.0,
                          width=512, height=512, held_out=4)
def default_root() -> Path:
    """The demo capture's folder in the cache (``FOURD_CACHE``; see :mod:`fourd.locations`)."""
    from fourd.locations import cache_dir

    return cache_dir() / "captures" / "demo"


def recipe_key(recipe: SynthRecipe) -> str:
    return hashlib.sha1(json.dumps(asdict(recipe), sort_keys=True).encode()).hexdigest()[:12]


def ensure_capture(recipe: SynthRecipe, root: str | Path, layout: str = "easyvolcap") -> Path:
    """Synthesize ``recipe`` into ``root`` unless an identical one is already there."""
    from fourd.datasets.synth import synthesize

    root = Path(root)
    stamp = root / ".recipe"
    key = f"{recipe_key(recipe)}-{layout}"
    if stamp.is_file() and stamp.read_text() == key:
        return root
    if root.exists():
        shutil.rmtree(root)
    synthesize(recipe, root, layout)
    stamp.write_text(key)
    return root


def ensure_demo(root: str | Path | None = None) -> Path:
    return ensure_capture(DEMO_RECIPE, root or default_root())
