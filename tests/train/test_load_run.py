"""load_run: a finished run is loaded for use without side effects, on any device."""

import json
from pathlib import Path

import pytest

from fourd.cli import main


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.stat().st_size)
            for p in sorted(folder.rglob("*"))}


def test_eval_bake_and_render_leave_the_run_untouched(tiny_run, tmp_path):
    from fourd.train.run import load_run

    before = snapshot(tiny_run)
    run = load_run(tiny_run)
    assert run.step == 10
    assert main(["--quiet", "eval", str(tiny_run), "--out", str(tmp_path / "eval"), "--frames", "1"]) == 0
    assert main(["--quiet", "bake", str(tiny_run), "--out", str(tmp_path / "s.fourd"), "--frames", "0:1",
                 "--no-fit"]) == 0
    assert main(["--quiet", "render", str(tiny_run), "--orbit", "--frames", "2", "--size", "48x40",
                 "--out", str(tmp_path / "frames")]) == 0
    assert snapshot(tiny_run) == before  # same files, same sizes, same modification times
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["step"] == 10
    assert len(list((tmp_path / "frames").glob("*.png"))) == 2


def test_load_run_refuses_what_is_not_a_trained_run(tiny_run, tmp_path):
    import shutil

    from fourd.errors import FourdError
    from fourd.train.run import load_run

    with pytest.raises(FourdError, match="no config.json"):
        load_run(tmp_path)
    broken = tmp_path / "broken"
    shutil.copytree(tiny_run, broken)
    (broken / "config.json").write_text("{not json")
    with pytest.raises(FourdError, match="not valid JSON"):
        load_run(broken)
    untrained = tmp_path / "untrained"
    shutil.copytree(tiny_run, untrained)
    shutil.rmtree(untrained / "checkpoints")
    with pytest.raises(FourdError, match="no checkpoint"):
        load_run(untrained)
    nopoints = tmp_path / "nopoints"
    shutil.copytree(tiny_run, nopoints)
    (nopoints / "carve" / "points.safetensors").unlink()
    before = snapshot(nopoints)
    with pytest.raises(FourdError, match="carved points are missing"):
        load_run(nopoints)  # refused, not carved again
    assert snapshot(nopoints) == before
