"""Differentiable point rendering: K-layer depth peeling → :class:`Fragments` → compositing.

Owns the rasterizers (``rasterize_torch.py`` reference, the GL peeler behind ``rasterize.py``,
optional pytorch3d) and the differentiable compositor (``compositor.py``). Every rasterizer
returns the same Fragments for the same input; gradients flow only through the compositor.
Does not own models, cameras or GL contexts.
"""
