"""Data structures shared by every layer: :class:`~fourd.structures.cameras.Cameras` (the one
camera convention and the only OpenCV↔OpenGL conversion). Point sequences, meshes and
fragments join here as their layers arrive."""
