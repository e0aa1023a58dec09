"""Pack manifests: a JSON document per pack naming each role's file, input size, colour order and normalisation.

Built-in manifests live in `builtin/`; a user's own pack is a JSON file of the same shape (`load_manifest(path)`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

ROLES = ("detector", "recognizer", "attributes")


class ManifestError(ValueError):
    pass


@dataclass(frozen=True)
class ModelSpec:
    """One role's model file and how its input is prepared."""

    file: str
    input_size: tuple[int, int]  # (width, height)
    colour: str = "RGB"  # channel order the network takes; decoded images are BGR
    mean: tuple[float, float, float] = (127.5, 127.5, 127.5)  # in the network's channel order, 0..255 units
    std: tuple[float, float, float] = (128.0, 128.0, 128.0)
    sha256: str | None = None
    # detector only
    threshold: float = 0.5
    nms_threshold: float = 0.4
    # recognizer only
    embedding_size: int | None = None
    match_threshold: float | None = None

    @property
    def rgb(self) -> bool:
        return self.colour.upper() == "RGB"

    @classmethod
    def from_dict(cls, role: str, d: dict) -> "ModelSpec":
        try:
            spec = cls(
                file=str(d["file"]),
                input_size=tuple(int(v) for v in d["input_size"]),  # type: ignore[arg-type]
                colour=str(d.get("colour", "RGB")),
                mean=tuple(float(v) for v in d.get("mean", (127.5,) * 3)),  # type: ignore[arg-type]
                std=tuple(float(v) for v in d.get("std", (128.0,) * 3)),  # type: ignore[arg-type]
                sha256=d.get("sha256"),
                threshold=float(d.get("threshold", 0.5)),
                nms_threshold=float(d.get("nms_threshold", 0.4)),
                embedding_size=int(d["embedding_size"]) if d.get("embedding_size") is not None else None,
                match_threshold=float(d["match_threshold"]) if d.get("match_threshold") is not None else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestError(f"{role}: {exc!r}") from None
        if len(spec.input_size) != 2 or len(spec.mean) != 3 or len(spec.std) != 3:
            raise ManifestError(f"{role}: input_size needs 2 values, mean and std 3 each")
        if spec.colour.upper() not in ("RGB", "BGR"):
            raise ManifestError(f"{role}: colour must be RGB or BGR, got {spec.colour!r}")
        if role == "recognizer" and not spec.embedding_size:
            raise ManifestError("recognizer: embedding_size is required")
        return spec


@dataclass(frozen=True)
class PackManifest:
    name: str
    detector: ModelSpec
    recognizer: ModelSpec
    attributes: ModelSpec | None = None
    description: str = ""
    license: str = ""
    source: dict = field(default_factory=dict)  # {"url", "sha256"} or {"local_dir"}

    @property
    def roles(self) -> dict[str, ModelSpec]:
        return {r: s for r in ROLES if (s := getattr(self, r)) is not None}

    @classmethod
    def from_dict(cls, d: dict) -> "PackManifest":
        for role in ("detector", "recognizer"):
            if not d.get(role):
                raise ManifestError(f"pack {d.get('name')!r} has no {role}")
        return cls(
            name=str(d["name"]),
            detector=ModelSpec.from_dict("detector", d["detector"]),
            recognizer=ModelSpec.from_dict("recognizer", d["recognizer"]),
            attributes=ModelSpec.from_dict("attributes", d["attributes"]) if d.get("attributes") else None,
            description=d.get("description", ""),
            license=d.get("license", ""),
            source=dict(d.get("source") or {}),
        )


def builtin_packs() -> dict[str, PackManifest]:
    folder = resources.files("face_analysis.packs") / "builtin"
    packs = {}
    for entry in folder.iterdir():
        if entry.name.endswith(".json"):
            m = PackManifest.from_dict(json.loads(entry.read_text()))
            packs[m.name] = m
    return dict(sorted(packs.items()))


def load_manifest(name_or_path: str | Path) -> PackManifest:
    """A built-in pack by name, or a manifest JSON file by path."""
    path = Path(name_or_path)
    if path.suffix == ".json" and path.is_file():
        return PackManifest.from_dict(json.loads(path.read_text()))
    packs = builtin_packs()
    if str(name_or_path) not in packs:
        raise ManifestError(f"unknown pack {name_or_path!r}; built-in packs: {', '.join(packs)}")
    return packs[str(name_or_path)]
