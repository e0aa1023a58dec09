"""Pure functions for the face pipeline: image decoding, SCRFD decoding and NMS, alignment, normalisation.

Everything here is numpy/OpenCV only so the Triton Python steps, the service and the tests share one copy.
"""
