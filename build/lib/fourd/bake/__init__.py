"""Baking: a trained run → a compact, checksummed, streaming ``.fourd`` file (``format.py`` is the
contract), and rendering of baked frames (``render.py``). Owns nothing of training or the UI."""
