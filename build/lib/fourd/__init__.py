"""fourd: multi-view video → 4D points → real-time playback and camera-path videos.

Importing this package does nothing heavy: no GL context, no CUDA probing, no network.
"""

__version__ = "0.1.0"
