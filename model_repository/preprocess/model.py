"""Ensemble step 1: encoded image bytes -> upright BGR image + the detector's letterboxed uint8 canvas.

The canvas goes to the detector as it is ([1, H, W, 3] uint8 BGR): the detector's graph does the colour swap,
normalisation and NCHW layout (`onnx_tools.add_detector_preprocessing`), on the GPU on that target.
Bad bytes (corrupt, truncated, unsupported, too many pixels) fail only their own request, as INVALID_ARGUMENT
with a stable code in brackets at the start of the message.
"""

import numpy as np
import triton_python_backend_utils as pb_utils

from face_analysis.ops.image import ImageError, decode_image
from face_analysis.ops.scrfd import letterbox
from face_analysis.repository import params as P


class TritonPythonModel:
    def initialize(self, args):
        cfg = P.model_parameters(args)
        self.input_size = (int(cfg["input_width"]), int(cfg["input_height"]))
        self.max_pixels = int(cfg.get("max_pixels", 50_000_000))

    def execute(self, requests):
        responses = []
        for request in requests:
            data = pb_utils.get_input_tensor_by_name(request, "image").as_numpy()
            try:
                image = decode_image(data.tobytes(), self.max_pixels)
            except ImageError as exc:
                responses.append(P.invalid_argument(pb_utils, exc.code, exc.message))
                continue
            canvas, scale = letterbox(image, self.input_size)  # a fresh contiguous array
            responses.append(
                pb_utils.InferenceResponse(
                    [
                        pb_utils.Tensor(P.DET_INPUT, canvas[None]),
                        pb_utils.Tensor(P.DECODED, image),
                        pb_utils.Tensor(P.DET_SCALE, np.array([scale], dtype=np.float32)),
                    ]
                )
            )
        return responses
