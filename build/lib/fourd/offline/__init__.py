"""Offline rendering: camera paths (``paths.py``, the one camera-path JSON writer, shared with the
viewer) and videos of them (``video.py``: MP4 or PNG frames, serially or as Ray tasks), of a baked
scene through the viewer's GL renderer or of a trained run through the model. Takes scenes and
loaded runs; never trains."""
