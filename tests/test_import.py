"""Importing fourd does nothing heavy: no OpenGL, no CUDA initialization, no network."""

import subprocess
import sys

CODE = """
import sys, socket
def no_net(*a, **k):
    raise AssertionError("network touched at import")
socket.socket.connect = no_net
import fourd, fourd.cli, fourd.datasets, fourd.datasets.synth, fourd.structures.cameras, fourd.gl.context
import fourd.gl.mesh_renderer, fourd.datasets.preview
import torch
assert "OpenGL" not in sys.modules, "OpenGL imported"
assert not torch.cuda.is_initialized(), "CUDA initialized"
print("clean")
"""


def test_import_is_side_effect_free():
    r = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "clean" in r.stdout, r.stderr
