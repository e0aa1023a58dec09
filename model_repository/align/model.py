"""Ensemble step 3: SCRFD heads -> faces (boxes, scores, landmarks in original pixels) and model crops.

Recognition crops (5-point similarity to the ArcFace template) and attribute crops (box-centred) are cut from the
full-resolution decoded image and normalised for their networks. Triton cannot pass a zero-size batch to the
next model, so with no face one blank crop is sent and `face_count` (0) tells the postprocess step to drop it.
"""

import numpy as np
import triton_python_backend_utils as pb_utils

from face_analysis.ops import align as A
from face_analysis.ops import scrfd
from face_analysis.ops.normalize import Normalizer
from face_analysis.repository import params as P


def _optional_scalar(request, name, cast):
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None:
        return None
    value = tensor.as_numpy().reshape(-1)
    return cast(value[0]) if value.size else None


class TritonPythonModel:
    def initialize(self, args):
        cfg = P.model_parameters(args)
        strides = tuple(int(s) for s in cfg["strides"].split(","))
        self.layout = scrfd.ScrfdLayout(strides, int(cfg["num_anchors"]), use_kps=True)  # the build insists
        self.det_size = (int(cfg["det_width"]), int(cfg["det_height"]))
        self.heads = [P.head_name(kind, stride) for kind, stride, _ in self.layout.heads(*self.det_size)]
        self.threshold = float(cfg["threshold"])
        self.nms_threshold = float(cfg["nms_threshold"])
        self.face_cap = int(cfg["max_faces"])
        self.rec_size = int(cfg["rec_size"])
        self.rec_norm = Normalizer(P.floats(cfg["rec_mean"]), P.floats(cfg["rec_std"]), cfg["rec_colour"] == "RGB")
        self.attr_size = int(cfg["attr_size"]) if cfg.get("attr_size") else None
        if self.attr_size:
            self.attr_norm = Normalizer(
                P.floats(cfg["attr_mean"]), P.floats(cfg["attr_std"]), cfg["attr_colour"] == "RGB"
            )

    @staticmethod
    def _batch(crops: list, size: int, normalize) -> np.ndarray:
        if not crops:  # Triton cannot pass an empty batch on: one blank crop, dropped again by postprocess
            crops = [np.zeros((size, size, 3), dtype=np.uint8)]
        return normalize(crops)

    def _one(self, request):
        threshold = _optional_scalar(request, "threshold", float)
        if threshold is None:
            threshold = self.threshold
        elif not 0.0 < threshold <= 1.0:
            return P.invalid_argument(pb_utils, "invalid_argument", f"threshold must be in (0, 1], got {threshold}")
        max_faces = _optional_scalar(request, "max_faces", int)
        if max_faces is not None and max_faces < 0:
            return P.invalid_argument(pb_utils, "invalid_argument", f"max_faces must be >= 0, got {max_faces}")
        cap = min(max_faces, self.face_cap) if max_faces else self.face_cap

        def get(name):
            return pb_utils.get_input_tensor_by_name(request, name).as_numpy()

        n = len(self.layout.strides)
        outs = [get(name)[0] for name in self.heads]  # [1, anchors, values]: this image's detector output
        heads = [(outs[i], outs[n + i], outs[2 * n + i]) for i in range(n)]
        image = get(P.DECODED)
        det = scrfd.postprocess(
            heads,
            self.layout,
            self.det_size,
            float(get(P.DET_SCALE).reshape(-1)[0]),
            image.shape,
            threshold,
            self.nms_threshold,
            cap,
        )
        rec = [A.norm_crop(image, lmk, self.rec_size) for lmk in det.landmarks]
        tensors = [
            pb_utils.Tensor("boxes", det.boxes),
            pb_utils.Tensor("scores", det.scores),
            pb_utils.Tensor("landmarks", det.landmarks),
            pb_utils.Tensor(P.FACE_COUNT, np.array([len(det)], dtype=np.int32)),
            pb_utils.Tensor(P.REC_CROPS, self._batch(rec, self.rec_size, self.rec_norm)),
        ]
        if self.attr_size:
            attr = [A.box_crop(image, box, self.attr_size) for box in det.boxes]
            tensors.append(pb_utils.Tensor(P.ATTR_CROPS, self._batch(attr, self.attr_size, self.attr_norm)))
        return pb_utils.InferenceResponse(tensors)

    def execute(self, requests):
        return [self._one(r) for r in requests]
