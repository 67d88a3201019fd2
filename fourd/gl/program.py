"""Shader programs loaded from ``shaders/`` with ``#include "file"`` and ``#define`` injection.

Each included file gets its own GLSL source-string number through ``#line``; compile errors are
rewritten from ``<number>:<line>`` to ``<file>:<line>`` so they point at the real file and line.
"""

from __future__ import annotations

import re
from pathlib import Path

from fourd.errors import FourdError
from fourd.locations import shader_dir

_INCLUDE = re.compile(r'^\s*#include\s+"([^"]+)"\s*$')


class ShaderError(FourdError):
    pass


def preprocess(path: Path, defines: dict | None = None, _files: list[Path] | None = None,
               _stack: tuple = ()) -> tuple[str, list[Path]]:
    """Expand includes; returns (source, files) where files[i] is GLSL source-string number i."""
    files = [] if _files is None else _files
    path = Path(path)
    if not path.is_file():
        raise ShaderError("shader file not found", path, "check the name; shaders live in the repository's shaders/")
    if path in _stack:
        raise ShaderError("circular #include", path)
    num = len(files)
    files.append(path)
    out = []
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines, 1):
        m = _INCLUDE.match(line)
        if m:
            inc, _ = preprocess(path.parent / m.group(1), None, files, _stack + (path,))
            out.append(inc)
            out.append(f"#line {i + 1} {num}")
        elif line.startswith("#version") and _files is None:
            out.append(line)
            for k, v in (defines or {}).items():
                out.append(f"#define {k} {v}")
            out.append(f"#line {i + 1} {num}")
        else:
            out.append(line)
    src = "\n".join(out)
    if _files is not None:  # an included file: start it with its own source-string number
        src = f"#line 1 {num}\n" + src
    return src, files


def _rewrite_log(log: str, files: list[Path]) -> str:
    def sub(m):
        n = int(m.group(1))
        name = files[n].name if n < len(files) else f"<source {n}>"
        return f"{name}:{m.group(2)}"

    # Mesa: "0:12(5): error"; NVIDIA: "0(12) : error"
    log = re.sub(r"\b(\d+):(\d+)\(\d+\)", sub, log)
    return re.sub(r"\b(\d+)\((\d+)\)", sub, log)


def compile_program(stages: dict[str, str | Path], defines: dict | None = None) -> int:
    """Compile and link a program; ``stages`` maps 'vertex'/'fragment'/'geometry'/'compute' to files in shaders/."""
    from OpenGL import GL

    kinds = {"vertex": GL.GL_VERTEX_SHADER, "fragment": GL.GL_FRAGMENT_SHADER, "geometry": GL.GL_GEOMETRY_SHADER,
             "compute": GL.GL_COMPUTE_SHADER}
    shaders = []
    for stage, name in stages.items():
        path = Path(name) if Path(name).is_absolute() else shader_dir() / name
        src, files = preprocess(path, defines)
        sh = GL.glCreateShader(kinds[stage])
        GL.glShaderSource(sh, src)
        GL.glCompileShader(sh)
        if not GL.glGetShaderiv(sh, GL.GL_COMPILE_STATUS):
            log = GL.glGetShaderInfoLog(sh).decode(errors="replace")
            GL.glDeleteShader(sh)
            raise ShaderError(f"{stage} shader failed to compile:\n{_rewrite_log(log, files)}", path)
        shaders.append(sh)
    prog = GL.glCreateProgram()
    for sh in shaders:
        GL.glAttachShader(prog, sh)
    GL.glLinkProgram(prog)
    for sh in shaders:
        GL.glDeleteShader(sh)
    if not GL.glGetProgramiv(prog, GL.GL_LINK_STATUS):
        log = GL.glGetProgramInfoLog(prog).decode(errors="replace")
        raise ShaderError(f"program failed to link: {log}", ", ".join(str(s) for s in stages.values()))
    return prog
