"""Laying out a Triton model repository from a model pack (configs, model code, ONNX files)."""
