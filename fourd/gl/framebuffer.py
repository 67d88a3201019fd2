"""Offscreen framebuffers with float/integer attachments and read-back into numpy (top row first)."""

from __future__ import annotations

import numpy as np

# internal format → (format, type, numpy dtype, channels)
_FORMATS = {
    "rgba8": ("GL_RGBA8", "GL_RGBA", "GL_UNSIGNED_BYTE", np.uint8, 4),
    "rgba16f": ("GL_RGBA16F", "GL_RGBA", "GL_FLOAT", np.float32, 4),
    "rgba32f": ("GL_RGBA32F", "GL_RGBA", "GL_FLOAT", np.float32, 4),
    "r32f": ("GL_R32F", "GL_RED", "GL_FLOAT", np.float32, 1),
    "rg32f": ("GL_RG32F", "GL_RG", "GL_FLOAT", np.float32, 2),
    "r32i": ("GL_R32I", "GL_RED_INTEGER", "GL_INT", np.int32, 1),
}


class Framebuffer:
    """A framebuffer of size W×H with named colour attachments and a float depth buffer, or with
    ``stencil`` a 24-bit depth + 8-bit stencil buffer (the sorted renderer counts splats in it).

    ``attachments`` maps a name to a key of ``_FORMATS``; attachment i is ``layout(location = i)``.
    """

    def __init__(self, width: int, height: int, attachments: dict[str, str], depth_texture: bool = False,
                 stencil: bool = False):
        from OpenGL import GL

        self.width, self.height = int(width), int(height)
        self.names = list(attachments)
        self.formats = [attachments[n] for n in self.names]
        self.fbo = GL.glGenFramebuffers(1)
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, self.fbo)
        self.textures = []
        for i, fmt in enumerate(self.formats):
            ifmt, pfmt, ptype, _, _ = (getattr(GL, x) if isinstance(x, str) else x for x in _FORMATS[fmt])
            tex = GL.glGenTextures(1)
            GL.glBindTexture(GL.GL_TEXTURE_2D, tex)
            GL.glTexImage2D(GL.GL_TEXTURE_2D, 0, ifmt, self.width, self.height, 0, pfmt, ptype, None)
            for p in (GL.GL_TEXTURE_MIN_FILTER, GL.GL_TEXTURE_MAG_FILTER):
                GL.glTexParameteri(GL.GL_TEXTURE_2D, p, GL.GL_NEAREST)
            GL.glFramebufferTexture2D(GL.GL_FRAMEBUFFER, GL.GL_COLOR_ATTACHMENT0 + i, GL.GL_TEXTURE_2D, tex, 0)
            self.textures.append(tex)
        self.stencil = bool(stencil)
        self.renderbuffer = 0
        if self.stencil:  # a renderbuffer: nothing reads it back
            self.depth = 0
            self.renderbuffer = GL.glGenRenderbuffers(1)
            GL.glBindRenderbuffer(GL.GL_RENDERBUFFER, self.renderbuffer)
            GL.glRenderbufferStorage(GL.GL_RENDERBUFFER, GL.GL_DEPTH24_STENCIL8, self.width, self.height)
            GL.glFramebufferRenderbuffer(GL.GL_FRAMEBUFFER, GL.GL_DEPTH_STENCIL_ATTACHMENT, GL.GL_RENDERBUFFER,
                                         self.renderbuffer)
        else:
            self.depth = GL.glGenTextures(1)
            GL.glBindTexture(GL.GL_TEXTURE_2D, self.depth)
            GL.glTexImage2D(GL.GL_TEXTURE_2D, 0, GL.GL_DEPTH_COMPONENT32F, self.width, self.height, 0,
                            GL.GL_DEPTH_COMPONENT, GL.GL_FLOAT, None)
            for p in (GL.GL_TEXTURE_MIN_FILTER, GL.GL_TEXTURE_MAG_FILTER):
                GL.glTexParameteri(GL.GL_TEXTURE_2D, p, GL.GL_NEAREST)
            GL.glFramebufferTexture2D(GL.GL_FRAMEBUFFER, GL.GL_DEPTH_ATTACHMENT, GL.GL_TEXTURE_2D, self.depth, 0)
        GL.glDrawBuffers(len(self.textures), [GL.GL_COLOR_ATTACHMENT0 + i for i in range(len(self.textures))])
        status = GL.glCheckFramebufferStatus(GL.GL_FRAMEBUFFER)
        if status != GL.GL_FRAMEBUFFER_COMPLETE:
            raise RuntimeError(f"framebuffer incomplete (status 0x{int(status):x}) for {attachments}")
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, 0)

    def bind(self) -> None:
        from OpenGL import GL

        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, self.fbo)
        GL.glViewport(0, 0, self.width, self.height)

    def clear(self, values: dict[str, tuple] | None = None, depth: float = 1.0) -> None:
        """Clear each attachment to its value (default zeros) and the depth buffer."""
        from OpenGL import GL

        self.bind()
        values = values or {}
        for i, (name, fmt) in enumerate(zip(self.names, self.formats)):
            v = list(values.get(name, (0, 0, 0, 0))) + [0, 0, 0, 0]
            if fmt == "r32i":
                GL.glClearBufferiv(GL.GL_COLOR, i, np.asarray(v[:4], np.int32))
            else:
                GL.glClearBufferfv(GL.GL_COLOR, i, np.asarray(v[:4], np.float32))
        if self.stencil:
            GL.glClearBufferfi(GL.GL_DEPTH_STENCIL, 0, float(depth), 0)
        else:
            GL.glClearBufferfv(GL.GL_DEPTH, 0, np.asarray([depth], np.float32))

    def read(self, name: str) -> np.ndarray:
        """Read one attachment as [H, W, C] (C=1 squeezed), top image row first."""
        from OpenGL import GL

        i = self.names.index(name)
        _, pfmt, ptype, dtype, ch = _FORMATS[self.formats[i]]
        GL.glBindFramebuffer(GL.GL_READ_FRAMEBUFFER, self.fbo)
        GL.glReadBuffer(GL.GL_COLOR_ATTACHMENT0 + i)
        GL.glPixelStorei(GL.GL_PACK_ALIGNMENT, 1)
        buf = np.empty((self.height, self.width, ch), dtype)
        GL.glReadPixels(0, 0, self.width, self.height, getattr(GL, pfmt), getattr(GL, ptype), buf)
        out = buf[::-1]
        return np.ascontiguousarray(out[..., 0] if ch == 1 else out)

    def release(self) -> None:
        from OpenGL import GL

        GL.glDeleteTextures(self.textures + ([self.depth] if self.depth else []))
        if self.renderbuffer:
            GL.glDeleteRenderbuffers(1, [self.renderbuffer])
            self.renderbuffer = 0
        GL.glDeleteFramebuffers(1, [self.fbo])
        self.textures, self.fbo = [], 0
