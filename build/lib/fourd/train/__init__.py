"""Training: the trainer loop (``trainer.py``), samples (``data.py``), losses and metrics
(``losses.py``), checkpoints (``checkpoint.py``) and held-out evaluation (``evaluate.py``).
Owns the optimization; does not own the model's definition, the renderer or the data formats."""
