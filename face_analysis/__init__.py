"""Face detection, recognition and attributes served by NVIDIA Triton.

`face_analysis.ops` holds the pure maths shared by the Triton Python steps and the tests; `packs` describes model
packs; `repository` lays a Triton model repository out of a pack; `server` runs the embedded CPU Triton;
`client` calls the `face_analysis` ensemble.
"""

__version__ = "0.1.0"
