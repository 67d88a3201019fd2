"""Loading diffusers pipelines from LOCAL folders only (nothing is downloaded at run time)."""

from __future__ import annotations

from pathlib import Path

from fourd.errors import FourdError


def quiet_diffusers() -> None:
    """No download/loading progress bars from diffusers/transformers inside fourd's own."""
    try:
        import diffusers
        import transformers

        diffusers.utils.logging.disable_progress_bar()
        diffusers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
        transformers.utils.logging.set_verbosity_error()
    except ImportError:
        pass


def load_local_pipeline(path: str | Path | None, parts: list[str], what: str, fix: str,
                        pipeline: str = "DiffusionPipeline"):
    """``diffusers.<pipeline>.from_pretrained(path, local_files_only=True)`` after checking that the
    folder holds ``parts``; every failure is a one-line FourdError naming the folder and ``fix``."""
    if path is None:
        raise FourdError(f"{what} needs a local model folder", None, fix)
    path = Path(path)
    missing = [n for n in parts if not (path / n).exists()]
    if not path.is_dir() or missing:
        raise FourdError(f"not a diffusers {what} folder (missing: {', '.join(missing) or 'the folder'})", path, fix)
    try:
        import diffusers
    except ImportError:
        raise FourdError(f"{what} needs diffusers and transformers", None,
                         "bash scripts/install.sh --extras=gen") from None
    quiet_diffusers()
    try:
        pipe = getattr(diffusers, pipeline).from_pretrained(str(path), local_files_only=True)
    except Exception as e:  # noqa: BLE001 - a broken folder fails in many ways inside diffusers
        raise FourdError(f"cannot load the {what} ({type(e).__name__}: {e})", path, fix) from None
    if hasattr(pipe, "set_progress_bar_config"):
        pipe.set_progress_bar_config(disable=True)
    return pipe
