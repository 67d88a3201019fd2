"""The 4D model: feature grid (``grid4d.py``), geometry head (``geometry.py``), hybrid appearance
(``appearance.py``, ``sh.py``) composed in ``model.py``. No GL, no UI: a rasterizer is passed in."""
