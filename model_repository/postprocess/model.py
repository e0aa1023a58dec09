"""Ensemble step 6: drops the padding crop of zero-face images, L2-normalises embeddings and decodes the
genderage head into InsightFace's coding (gender 0 female / 1 male, age in years)."""

import triton_python_backend_utils as pb_utils

from face_analysis.ops.normalize import decode_genderage, l2_normalize
from face_analysis.repository import params as P


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            n = int(pb_utils.get_input_tensor_by_name(request, P.FACE_COUNT).as_numpy().reshape(-1)[0])
            raw = pb_utils.get_input_tensor_by_name(request, P.RAW_EMBEDDINGS).as_numpy()[:n]
            tensors = [pb_utils.Tensor("embeddings", l2_normalize(raw))]
            attrs = pb_utils.get_input_tensor_by_name(request, P.RAW_ATTRIBUTES)
            if attrs is not None:
                gender, age = decode_genderage(attrs.as_numpy()[:n])
                tensors += [pb_utils.Tensor("gender", gender), pb_utils.Tensor("age", age)]
            responses.append(pb_utils.InferenceResponse(tensors))
        return responses
