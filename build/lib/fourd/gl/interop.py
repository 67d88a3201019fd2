"""CUDA↔GL interop: copy a GL texture straight into a CUDA torch tensor (no host round trip).

Used only when a CUDA device, a GL context on that GPU and cuda-python are all present; callers
fall back to ``glReadPixels`` otherwise. This machine has no GPU, so this path is not exercised by
the tests; it is kept small: register once, then map → copy → unmap per read.
"""

from __future__ import annotations

import functools

import torch

from fourd.console import log


@functools.lru_cache(maxsize=1)
def cuda_gl_available() -> bool:
    if not torch.cuda.is_available():
        return False
    try:
        from cuda.bindings import runtime
    except ImportError:
        return False
    err, n = runtime.cudaGetDeviceCount()
    return err == runtime.cudaError_t.cudaSuccess and n > 0


def _check(result):
    err, *rest = result if isinstance(result, tuple) else (result,)
    from cuda.bindings import runtime

    if err != runtime.cudaError_t.cudaSuccess:
        raise RuntimeError(f"CUDA-GL interop failed: {err}")
    return rest[0] if len(rest) == 1 else rest


class TextureReader:
    """Reads one GL texture (R32I, R32F or RG32F) into a CUDA tensor, top row first."""

    def __init__(self, texture: int, height: int, width: int, channels: int, dtype: torch.dtype):
        from cuda.bindings import runtime
        from OpenGL import GL

        self.shape = (height, width, channels)
        self.dtype = dtype
        flags = runtime.cudaGraphicsRegisterFlags.cudaGraphicsRegisterFlagsReadOnly
        self.resource = _check(runtime.cudaGraphicsGLRegisterImage(texture, GL.GL_TEXTURE_2D, flags))
        log(f"[dim]CUDA-GL interop: texture {texture} registered ({width}×{height}×{channels} {dtype})[/]")

    def read(self) -> torch.Tensor:
        from cuda.bindings import runtime

        out = torch.empty(self.shape, dtype=self.dtype, device="cuda")
        stream = torch.cuda.current_stream().cuda_stream
        _check(runtime.cudaGraphicsMapResources(1, self.resource, stream))
        try:
            array = _check(runtime.cudaGraphicsSubResourceGetMappedArray(self.resource, 0, 0))
            row = self.shape[1] * self.shape[2] * out.element_size()
            _check(runtime.cudaMemcpy2DFromArrayAsync(out.data_ptr(), row, array, 0, 0, row, self.shape[0],
                                                      runtime.cudaMemcpyKind.cudaMemcpyDeviceToDevice, stream))
        finally:
            _check(runtime.cudaGraphicsUnmapResources(1, self.resource, stream))
        return out.flip(0)  # GL rows are bottom-up

    def release(self) -> None:
        from cuda.bindings import runtime

        runtime.cudaGraphicsUnregisterResource(self.resource)
