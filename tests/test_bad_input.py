"""Every case of the bad-input corpus (tests/bad_input_corpus.py) through the real command, in
process: a refusal is exit 2 and exactly one line on stderr that names the offending file or
option and a fix; accepted input exits 0; nothing prints a traceback or an internal error."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from bad_input_corpus import CASES, Ctx  # noqa: E402

from fourd.cli import main  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def base(tiny_ev, tiny_smc, tiny_run, tmp_path_factory):
    import torch

    from fourd.bake.bake import bake_scene
    from fourd.structures.points import PointSequence

    d = tmp_path_factory.mktemp("corpus_base")
    g = torch.Generator().manual_seed(0)
    seq = PointSequence.from_list([torch.rand(300, 3, generator=g) for _ in range(2)], [0, 1],
                                  {"colors": [torch.rand(300, 3, generator=g) for _ in range(2)]},
                                  {"bounds": [[0, 0, 0], [1, 1, 1]]})
    points = seq.save(d / "points.safetensors")
    scene = bake_scene(points, d / "scene.fourd")
    return tiny_ev, tiny_smc, tiny_run, scene, points


def test_the_corpus_is_large_and_names_its_expectations():
    assert len(CASES) >= 100
    assert len({c.name for c in CASES}) == len(CASES)
    assert all(c.code in (0, 2) and (c.names or c.code == 0) for c in CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_case(case, base, tmp_path, capsys):
    ev, smc, run, scene, points = base
    argv = case.build(Ctx(ev, smc, run, scene, points, tmp_path))
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    if case.code == 0:
        assert code == 0 and not lines, err
        for token in case.names:  # an accepted case may have to say something (a warning)
            assert token in err, err
        return
    assert code == 2, f"accepted (exit {code}) what should be refused; stderr:\n{err}"
    assert len(lines) == 1, err
    line = lines[0]
    assert "fix:" in line, line
    for token in case.names:
        assert token in line, f"the message does not name {token!r}: {line}"


@pytest.mark.parametrize("layout", ["ev", "smc"])
def test_convert_onto_its_input_leaves_every_file_byte_identical(layout, tiny_ev, tiny_smc, tmp_path):
    import shutil

    src = Path(shutil.copytree(tiny_ev if layout == "ev" else tiny_smc, tmp_path / "cap"))
    before = {p: p.read_bytes() for p in sorted(src.rglob("*")) if p.is_file()}
    for out in (src, src / "images" / ".." if layout == "ev" else src / "main" / ".."):
        for to in ("easyvolcap", "smc"):
            assert main(["--quiet", "data", "convert", str(src), str(out), "--to", to]) == 2
    after = {p: p.read_bytes() for p in sorted(src.rglob("*")) if p.is_file()}
    assert after == before  # same files, same bytes: nothing rewritten, nothing added
