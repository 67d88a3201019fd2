"""GL on Mesa llvmpipe through EGL: shader loading and the OpenCV↔GL convention, pixel for pixel."""

import numpy as np
import pytest
import torch

from fourd.structures.cameras import Cameras

pytestmark = pytest.mark.gl


@pytest.fixture(scope="module")
def ctx():
    from fourd.gl.context import headless_context

    return headless_context()


def test_context_is_core_profile(ctx):
    from OpenGL import GL

    ctx.make_current()
    assert ctx.version >= (3, 3)
    # the driver reports the version it created, at least the one asked for
    major, minor = int(GL.glGetIntegerv(GL.GL_MAJOR_VERSION)), int(GL.glGetIntegerv(GL.GL_MINOR_VERSION))
    assert (major, minor) >= ctx.version
    # a core profile: the profile bit says so, and a fixed-function call is an error there
    assert int(GL.glGetIntegerv(GL.GL_CONTEXT_PROFILE_MASK)) & GL.GL_CONTEXT_CORE_PROFILE_BIT
    from OpenGL.error import GLError

    with pytest.raises(GLError) as e:  # PyOpenGL checks glGetError after each call
        GL.glMatrixMode(GL.GL_MODELVIEW)
    assert e.value.err == GL.GL_INVALID_OPERATION


def test_include_errors_name_the_file_and_line(ctx, tmp_path):
    from fourd.gl.program import ShaderError, compile_program

    (tmp_path / "lib.glsl").write_text("float ok() { return 1.0; }\nfloat broken() { return undefined_thing; }\n")
    (tmp_path / "main.frag").write_text(
        '#version 330 core\n#include "lib.glsl"\nout vec4 c;\nvoid main() { c = vec4(ok()); }\n')
    (tmp_path / "main.vert").write_text("#version 330 core\nvoid main() { gl_Position = vec4(0.0); }\n")
    with pytest.raises(ShaderError) as e:
        compile_program({"vertex": tmp_path / "main.vert", "fragment": tmp_path / "main.frag"})
    assert "lib.glsl:2" in str(e.value)


def test_main_file_line_numbers_survive_includes(ctx, tmp_path):
    from fourd.gl.program import ShaderError, compile_program

    (tmp_path / "lib.glsl").write_text("float ok() { return 1.0; }\n\n\n")
    (tmp_path / "main.frag").write_text(
        '#version 330 core\n#include "lib.glsl"\nout vec4 c;\nvoid main() { c = vec4(nope); }\n')
    (tmp_path / "main.vert").write_text("#version 330 core\nvoid main() { gl_Position = vec4(0.0); }\n")
    with pytest.raises(ShaderError) as e:
        compile_program({"vertex": tmp_path / "main.vert", "fragment": tmp_path / "main.frag"}, {"UNUSED": 1})
    assert "main.frag:4" in str(e.value)


def test_point_projected_by_cameras_lands_on_the_gl_pixel(ctx):
    """Rasterize tiny triangles through the GL matrices; their coverage centroid sits where
    Cameras.project puts their centre (±0.5 px)."""
    from fourd.gl.mesh_renderer import MeshPart, MeshRenderer

    g = torch.Generator().manual_seed(3)
    cams = Cameras.look_at([[0.3, 0.4, -3.0]], [0, 0, 0], H=90, W=130)
    K = cams.K.clone()
    K[0, 0, 2] += 7.3  # off-centre principal point and unequal focal lengths
    K[0, 1, 1] *= 1.1
    cams = Cameras(K, cams.R, cams.T, cams.H, cams.W)
    errs = []
    for _ in range(12):
        c = (torch.rand(3, generator=g) - 0.5) * 0.8
        # an equilateral triangle facing the camera, about 30 px across
        right, down = cams.R[0, 0], cams.R[0, 1]
        s = 0.25
        ang = torch.tensor([0.0, 2.0944, 4.1888])
        verts = c + s * (torch.cos(ang)[:, None] * right + torch.sin(ang)[:, None] * down)
        r = MeshRenderer([MeshPart(np.array([[0, 1, 2]]))], [3])
        r.update([verts.numpy().astype(np.float32)])
        out = r.render(cams, 0.1, 10.0, lit=False)
        r.release()
        ys, xs = np.nonzero(out.mask)
        assert len(xs) > 3
        uv, _ = cams.project(verts)
        centroid = uv[0].mean(0).numpy()
        errs.append((xs.mean() + 0.5 - centroid[0], ys.mean() + 0.5 - centroid[1]))
    errs = np.asarray(errs)
    assert np.hypot(errs[:, 0], errs[:, 1]).max() <= 0.5, errs
    # no systematic offset (a half-pixel convention slip would show here as ~0.5)
    assert np.abs(errs.mean(0)).max() < 0.15, errs.mean(0)
