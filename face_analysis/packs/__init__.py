"""Model packs: which file plays each role (detector, recognizer, attributes) and how to feed it."""

from face_analysis.packs.manifest import ModelSpec, PackManifest, builtin_packs, load_manifest

__all__ = ["ModelSpec", "PackManifest", "builtin_packs", "load_manifest"]
