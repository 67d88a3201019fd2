"""Checkpoints: written atomically, loaded without unpickling arbitrary objects
(``torch.load(weights_only=True)``), and refused when they belong to another configuration."""

from __future__ import annotations

import io
import json
from pathlib import Path

import torch

from fourd.errors import FourdError
from fourd.io import atomic_write_bytes

FORMAT, VERSION = "fourd.checkpoint", 1
# settings that change the parameter layout or the data: a checkpoint is only valid with the same ones
COMPAT_KEYS = ("dataset", "model", "eval_cams", "frames")


def save_checkpoint(path: Path, step: int, model, optimizer, scheduler, generator: torch.Generator,
                    config_json: str, extra: dict | None = None) -> Path:
    state = {
        "format": FORMAT, "version": VERSION, "step": step, "config": config_json,
        "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
        "rng": generator.get_state(), "torch_rng": torch.get_rng_state(), "extra": json.dumps(extra or {}),
    }
    buf = io.BytesIO()
    torch.save(state, buf)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_bytes(path, buf.getvalue())


def _with_defaults(config_json: str) -> dict:
    """A saved config with settings added to fourd since it was written filled in by their
    defaults (so an older run still resumes when nothing it used has changed)."""
    from fourd.config import TrainConfig, from_json, to_json

    try:
        return json.loads(to_json(from_json(TrainConfig, config_json)))
    except Exception:  # a config this fourd cannot read: compare it as it is (and report the difference)
        return json.loads(config_json)


def load_checkpoint(path: Path, config_json: str) -> dict:
    if not path.is_file():
        raise FourdError("checkpoint not found", path, "train first, or drop --resume")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise FourdError(f"cannot read checkpoint ({type(e).__name__})", path,
                         "the file is truncated or not a fourd checkpoint; delete it to resume from an older one") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise FourdError("not a fourd checkpoint", path, "pass a run folder written by fourd train")
    if state["version"] > VERSION:
        raise FourdError(f"checkpoint format v{state['version']} is newer than this fourd", path, "upgrade fourd")
    check_compatible(state["config"], config_json, path)
    return state


def moved(dataset) -> bool:
    """Whether a run's capture path is not there any more (moved or renamed since training)."""
    return dataset not in (None, "demo", "dna_rendering") and not Path(str(dataset)).exists()


def check_compatible(saved_json: str, config_json: str, where) -> None:
    """Refuse a configuration a checkpoint was not made with (COMPAT_KEYS). A capture that moved
    since (its old path gone) may be given at its new place: the run's points and parameters then
    check it is the same capture (frames the points hold, training cameras)."""
    saved, now = _with_defaults(saved_json), json.loads(config_json)
    diff = [k for k in COMPAT_KEYS if saved.get(k) != now.get(k)]
    if "dataset" in diff and moved(saved.get("dataset")):
        diff.remove("dataset")
    if diff:
        raise FourdError(f"checkpoint was made with a different configuration (differs in: {', '.join(diff)})", where,
                         "resume with the run's own config (drop the changed options) or train into a new --out")


def checkpoint_config(path: Path) -> str | None:
    """The config JSON a checkpoint was saved with (None when it cannot be read)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        return state.get("config") if isinstance(state, dict) else None
    except Exception:
        return None
