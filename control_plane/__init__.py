"""The REST control plane over the `face_analysis` Triton ensemble: keys, limits, cache, comparison, metrics."""
