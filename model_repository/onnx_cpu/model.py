"""CPU target: runs an ONNX model with onnxruntime inside the Python backend.

The embedded tritonserver has no ONNX Runtime backend, so `configs/cpu.pbtxt` of the detector, embedder and
attribute models points here; the GPU `config.pbtxt` serves the same `model.onnx` with the ONNX Runtime backend.
Requests that the dynamic batcher groups are run as one onnxruntime call and split back.
"""

import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils

from face_analysis.repository.params import host_threads, model_parameters


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = model_parameters(args)
        path = os.path.join(args["model_repository"], args["model_version"], params.get("onnx_file", "model.onnx"))
        options = ort.SessionOptions()
        options.intra_op_num_threads = host_threads(params.get("intra_op_threads"))
        options.inter_op_num_threads = 1
        # Idle onnxruntime threads spin by default; here other steps' processes share the cores, so they yield.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.input_names = [i["name"] for i in config["input"]]
        self.output_names = [o["name"] for o in config["output"]]
        self.batching = config.get("max_batch_size", 0) > 0

    def _run(self, feeds):
        return self.session.run(self.output_names, feeds)

    def execute(self, requests):
        inputs = [
            {name: pb_utils.get_input_tensor_by_name(r, name).as_numpy() for name in self.input_names} for r in requests
        ]
        if self.batching and len(requests) > 1:
            sizes = [feeds[self.input_names[0]].shape[0] for feeds in inputs]
            merged = {n: np.concatenate([feeds[n] for feeds in inputs]) for n in self.input_names}
            outputs = self._run(merged)
            bounds = np.cumsum(sizes)[:-1]
            per_request = zip(*[np.split(o, bounds) for o in outputs])
        else:
            per_request = (self._run(feeds) for feeds in inputs)
        return [
            pb_utils.InferenceResponse(
                [pb_utils.Tensor(n, np.ascontiguousarray(o)) for n, o in zip(self.output_names, outs)]
            )
            for outs in per_request
        ]
