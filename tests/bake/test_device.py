"""Device is a setting: baking and rendering a loaded run build every tensor on the device of
the data they meet. Without a GPU, the CPU-only habit this guards against — a tensor made with
no device (``torch.zeros(n)``, ``torch.as_tensor(x)``) then mixed with the run's tensors — is
caught by making the *default* device one no run lives on (``meta``): such a tensor lands there
and the first operation mixing it with the run's CPU tensors fails."""

import pytest
import torch


@pytest.fixture
def default_device_meta():
    torch.set_default_device("meta")
    try:
        yield
    finally:
        torch.set_default_device(None)


@pytest.fixture(scope="module")
def loaded(tiny_run):
    from fourd.train.run import load_run

    run = load_run(tiny_run)  # built before the trap: loading files is host work
    target = run.sampler.target(1, run.eval_cams[0], crop=False, scale=1.0)
    yield run, target
    run.release()


def test_render_and_bake_make_no_tensor_off_the_run_device(loaded, default_device_meta):
    from fourd.bake.bake import bake_frame, bake_frame_views
    from fourd.bake.render import render_baked

    run, target = loaded
    img = run.render(1, target.camera).image.rgb
    assert img.device == run.device and img.isfinite().all() and img.max() > 0.05
    compact = bake_frame(run, 1, run.train_cams[:3], sh=True)  # per-point estimate + image-space fit
    views = bake_frame_views(run, 1)
    for f in (compact, views):
        assert f.xyz.device.type == "cpu" and f.rgb.isfinite().all()
    baked = render_baked(compact, target.camera, K=6, near=run.settings.near, far=run.settings.far)
    assert baked.device.type == "cpu" and baked.max() > 0.05


def test_the_trap_catches_a_tensor_made_without_a_device(loaded, default_device_meta):
    run, _ = loaded
    xyz = run.model.frame_points(0).detach()
    acc = torch.zeros(xyz.shape[0], 3)  # the habit: no device given
    acc[torch.arange(3, device=xyz.device)] += xyz[:3]
    with pytest.raises(NotImplementedError, match="meta"):  # its result cannot reach the run or a file
        acc.cpu()


@pytest.mark.skipif(not torch.cuda.is_available(),
                    reason="no CUDA device here; the two tests above run the same bake and render with the default "
                           "device set to meta, which catches the same CPU-only assumptions")
def test_bake_and_render_a_run_on_cuda(tiny_run, tmp_path):
    from fourd.bake.bake import bake_run
    from fourd.offline.paths import default_orbit
    from fourd.offline.video import RenderJob, render_run_chunk
    from fourd.train.run import load_run

    run = load_run(tiny_run, device="cuda")
    assert next(run.model.parameters()).is_cuda
    bake_run(run, tmp_path / "s.fourd", frames=[0])
    path = default_orbit(tiny_run, 2, False, 30.0, (48, 40))
    frames = render_run_chunk(RenderJob(str(tiny_run), path.to_json(), 2), [0, 1])
    assert frames[0].shape == (40, 48, 3)
