"""A learned foreground segmenter from a LOCAL folder (nothing is downloaded): an ONNX model run
with onnxruntime, described by an optional ``segmenter.json`` beside it:

    {"model": "model.onnx",          # default: the folder's only .onnx file
     "input_size": [512, 512],       # H, W the model takes (null: the image's own size)
     "mean": [0.485, 0.456, 0.406],  # per-channel, after scaling to [0, 1]
     "std": [0.229, 0.224, 0.225],
     "channel_order": "rgb",         # or "bgr"
     "output": 0,                    # which model output
     "channel": -1,                  # which channel of it is the foreground
     "activation": "sigmoid",        # sigmoid | softmax (over channels) | none (already 0..1)
     "threshold": 0.5}

Matting and person/object segmentation models exported to ONNX (MODNet, U²-Net, RVM's
per-frame network, a torchvision DeepLab) fit this description; the model takes one image
[1, 3, H, W] float32 and returns [1, C, h, w] (or [1, h, w]) scores, resized back to the image.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fourd.errors import DataError

DEFAULTS = {"model": None, "input_size": None, "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0],
            "channel_order": "rgb", "output": 0, "channel": -1, "activation": "sigmoid", "threshold": 0.5}


class LocalSegmenter:
    def __init__(self, folder: str | Path, device: str = "cpu"):
        folder = Path(folder)
        if not folder.is_dir():
            raise DataError("not a folder", folder, "give the folder holding model.onnx (and segmenter.json)")
        cfg = dict(DEFAULTS)
        cp = folder / "segmenter.json"
        if cp.is_file():
            try:
                user = json.loads(cp.read_text())
            except json.JSONDecodeError as e:
                raise DataError(f"invalid JSON ({e})", cp, "fix the file") from None
            unknown = sorted(set(user) - set(DEFAULTS))
            if unknown:
                raise DataError(f"unknown keys {unknown}", cp, f"use only {', '.join(DEFAULTS)}")
            cfg.update(user)
        if cfg["model"]:
            model = folder / cfg["model"]
        else:
            found = sorted(folder.glob("*.onnx"))
            if len(found) != 1:
                raise DataError(f"{'no' if not found else len(found)} .onnx files", folder,
                                "put one ONNX model in the folder, or name it in segmenter.json (\"model\")")
            model = found[0]
        if not model.is_file():
            raise DataError("model file not found", model, "check segmenter.json's \"model\"")
        if cfg["activation"] not in ("sigmoid", "softmax", "none"):
            raise DataError(f"unknown activation '{cfg['activation']}'", cp, "use sigmoid, softmax or none")
        try:
            import onnxruntime as ort
        except ImportError:
            raise DataError("learned masks need onnxruntime, which is not installed", None,
                            "pip install 'fourd[rig]' (or pip install onnxruntime)") from None
        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self.session = ort.InferenceSession(str(model), providers=providers)
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own untyped errors
            raise DataError(f"cannot load the ONNX model ({type(e).__name__}: {str(e)[:200]})", model,
                            "check the file is an ONNX model onnxruntime supports") from None
        self.cfg, self.path = cfg, model
        self.input = self.session.get_inputs()[0].name

    def scores(self, rgb: np.ndarray) -> np.ndarray:
        """Foreground probability [H, W] in 0..1 for an RGB uint8 image."""
        import cv2

        c = self.cfg
        H, W = rgb.shape[:2]
        x = rgb if c["channel_order"] == "rgb" else rgb[..., ::-1]
        if c["input_size"]:
            h, w = c["input_size"]
            x = cv2.resize(x, (int(w), int(h)), interpolation=cv2.INTER_AREA)
        x = (x.astype(np.float32) / 255.0 - np.asarray(c["mean"], np.float32)) / np.asarray(c["std"], np.float32)
        x = np.ascontiguousarray(x.transpose(2, 0, 1)[None])
        try:
            outs = self.session.run(None, {self.input: x})
        except Exception as e:  # noqa: BLE001
            raise DataError(f"the model failed on a {x.shape[3]}×{x.shape[2]} image ({str(e)[:200]})", self.path,
                            "set input_size in segmenter.json to the size the model takes") from None
        if not -len(outs) <= int(c["output"]) < len(outs):
            raise DataError(f"the model has {len(outs)} output(s); segmenter.json asks for output {c['output']}",
                            self.path, "fix \"output\" in segmenter.json")
        y = np.asarray(outs[int(c["output"])], np.float32)
        if y.ndim == 4:
            y = y[0]
        elif y.ndim == 3 and y.shape[0] == 1:
            pass
        elif y.ndim == 2:
            y = y[None]
        else:
            raise DataError(f"model output of shape {y.shape} is not [1, C, h, w]", self.path,
                            "choose the mask output with \"output\" in segmenter.json")
        if c["activation"] == "softmax":
            y = np.exp(y - y.max(0, keepdims=True))
            y = y / y.sum(0, keepdims=True)
        y = y[int(c["channel"])]
        if c["activation"] == "sigmoid":
            y = 1 / (1 + np.exp(-y))
        return cv2.resize(y, (W, H), interpolation=cv2.INTER_LINEAR)

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        return self.scores(rgb) > float(self.cfg["threshold"])
