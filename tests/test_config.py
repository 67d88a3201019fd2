"""Configs: unknown keys are errors wherever a config is read (JSON, presets, overrides, the
command line), presets are config instances from one registry, values round-trip through JSON."""

import json

import pytest

from fourd.cli import main
from fourd.config import CarveConfig, TrainConfig, apply_overrides, from_json, preset, to_json
from fourd.errors import FourdError


def test_unknown_keys_are_errors_at_every_depth():
    d = json.loads(to_json(TrainConfig()))
    d["stpes"] = 10
    with pytest.raises(FourdError, match=r"unknown TrainConfig keys \['stpes'\]") as e:
        from_json(TrainConfig, json.dumps(d), "run/config.json")
    assert "run/config.json" in e.value.one_line() and "steps" in e.value.one_line()  # says where and what is valid
    d = json.loads(to_json(TrainConfig()))
    d["model"]["grid"]["level"] = 2
    with pytest.raises(FourdError, match=r"unknown Grid4DConfig keys \['level'\]") as e:
        from_json(TrainConfig, json.dumps(d), "cfg.json")
    assert "cfg.json.model.grid" in e.value.one_line()
    with pytest.raises(FourdError, match="unknown CarveConfig keys"):
        apply_overrides(CarveConfig(), {"point": 5})


def test_json_round_trip_and_presets():
    cfg = preset("demo")
    assert from_json(TrainConfig, to_json(cfg)) == cfg
    assert cfg.steps == 1500 and cfg.carve.points == 32_768 and preset("demo", "carve") == cfg.carve
    assert preset("dna_rendering").K == 15 and preset("pytorch3d", "fit-mesh").optimizer == "sgd"
    with pytest.raises(FourdError, match="unknown train preset 'fast'"):
        preset("fast")


def test_unknown_options_are_refused_by_the_command_line(tmp_path, capsys):
    assert main(["train", "--dataset", str(tmp_path / "none"), "--stpes", "3"]) == 2
    assert "--stpes" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()


def test_a_run_saved_before_a_default_changed_keeps_the_old_value():
    """A run's config.json written before a setting existed resumes with what that fourd did (the
    checks added since with a new default on — the rig check, the surface alignment, the carve's
    outline fix — stay off for it); a config that names the setting keeps its own value."""
    d = json.loads(to_json(TrainConfig()))
    for k in ("refine_rig", "align_surface", "align_silhouettes", "repair_masks"):
        del d[k]
    del d["carve"]["fix_outlines"]
    old = from_json(TrainConfig, json.dumps(d))
    assert not old.refine_rig and not old.align_surface and not old.carve.fix_outlines and not old.repair_masks
    assert not old.align_silhouettes
    new = from_json(TrainConfig, to_json(TrainConfig()))
    assert new.refine_rig and new.align_surface and new.carve.fix_outlines and new.repair_masks
    assert new.align_silhouettes
    d = json.loads(to_json(TrainConfig()))
    d["repair_masks"] = False  # a run made when it was opt-in keeps it off
    assert not from_json(TrainConfig, json.dumps(d)).repair_masks
