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
        self.layout = scrfd.ScrfdLayout(strides, int(cfg["num_anchors"]), cfg.get("use_kps", "1") == "1")
        self.heads = P.head_names(strides)
        self.det_size = (int(cfg["det_width"]), int(cfg["det_height"]))
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

    def _crops(self, image, det, size, normalize, crop):
        batch = np.zeros((max(len(det), 1), size, size, 3), dtype=np.uint8)
        for i in range(len(det)):
            batch[i] = crop(image, i)
        return normalize(batch)

    def _one(self, request):
        threshold = _optional_scalar(request, "threshold", float)
        if threshold is None or threshold <= 0:
            threshold = self.threshold
        elif threshold > 1:
            return P.invalid_argument(pb_utils, "invalid_argument", f"threshold must be in (0, 1], got {threshold}")
        max_faces = _optional_scalar(request, "max_faces", int)
        cap = self.face_cap if not max_faces or max_faces <= 0 else min(max_faces, self.face_cap)

        get = lambda name: pb_utils.get_input_tensor_by_name(request, name).as_numpy()  # noqa: E731
        n = len(self.layout.strides)
        outs = [get(name) for name in self.heads[: 3 * n]]
        heads = [(outs[i], outs[n + i], outs[2 * n + i] if self.layout.use_kps else None) for i in range(n)]
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
        tensors = [
            pb_utils.Tensor("boxes", det.boxes),
            pb_utils.Tensor("scores", det.scores),
            pb_utils.Tensor("landmarks", det.landmarks),
            pb_utils.Tensor(P.FACE_COUNT, np.array([len(det)], dtype=np.int32)),
            pb_utils.Tensor(
                P.REC_CROPS,
                self._crops(
                    image, det, self.rec_size, self.rec_norm,
                    lambda img, i: A.norm_crop(img, det.landmarks[i], self.rec_size),
                ),
            ),
        ]
        if self.attr_size:
            tensors.append(
                pb_utils.Tensor(
                    P.ATTR_CROPS,
                    self._crops(
                        image, det, self.attr_size, self.attr_norm,
                        lambda img, i: A.box_crop(img, det.boxes[i], self.attr_size),
                    ),
                )
            )
        return pb_utils.InferenceResponse(tensors)

    def execute(self, requests):
        return [self._one(r) for r in requests]
