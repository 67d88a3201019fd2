"""Space carving: masks + cameras → visual hull per frame → a fixed number of surface points.

Owns: finding the working volume (``volume.py``), voting carve in torch (``hull.py``: dense
reference and coarse-to-fine), surface extraction and resampling (``surface.py``), quality
metrics (``metrics.py``) and the per-capture driver (``run.py``). Does not own cameras, masks
or file formats: those come from :mod:`fourd.datasets`; points leave as a ``PointSequence``.
"""
