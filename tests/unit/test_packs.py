import dataclasses
import hashlib
import urllib.error
import zipfile

import pytest

from face_analysis.packs import fetch as fetch_mod
from face_analysis.packs.fetch import PackFetchError, fetch_pack
from face_analysis.packs.manifest import ManifestError, PackManifest, load_manifest


def _pack(tmp_path, sha=None) -> PackManifest:
    return PackManifest.from_dict(
        {
            "name": "tiny",
            "source": {"url": "https://example.invalid/tiny.zip", "sha256": sha},
            "detector": {"file": "det.onnx", "input_size": [640, 640]},
            "recognizer": {"file": "rec.onnx", "input_size": [112, 112], "embedding_size": 512},
        }
    )


def _zip(tmp_path):
    path = tmp_path / "tiny.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("tiny/det.onnx", b"detector bytes")
        zf.writestr("tiny/rec.onnx", b"recognizer bytes")
        zf.writestr("tiny/other.onnx", b"not a role")
    return path


def test_test_pack_is_used_in_place_after_its_checksums(shared_models, tmp_path):
    manifest = load_manifest("test")
    assert fetch_pack(manifest, tmp_path) == shared_models.resolve()


def test_local_pack_with_a_wrong_file_is_refused(tmp_path):
    manifest = load_manifest("test")
    folder = tmp_path / "models"
    folder.mkdir()
    for role in manifest.roles.values():
        (folder / role.file).write_bytes(b"tampered")
    bad = dataclasses.replace(manifest, source={"local_dir": str(folder)})
    with pytest.raises(PackFetchError, match="does not match its sha256"):
        fetch_pack(bad, tmp_path)


def test_offline_download_says_what_to_do(tmp_path, monkeypatch):
    def offline(*a, **k):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(fetch_mod.urllib.request, "urlopen", offline)
    with pytest.raises(PackFetchError, match="--from-zip"):
        fetch_pack(_pack(tmp_path), tmp_path / "models", progress=False)


def test_from_zip_extracts_only_the_role_files(tmp_path):
    archive = _zip(tmp_path)
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    folder = fetch_pack(_pack(tmp_path, sha), tmp_path / "models", from_zip=archive)
    assert sorted(p.name for p in folder.iterdir()) == ["det.onnx", "rec.onnx"]
    assert (folder / "rec.onnx").read_bytes() == b"recognizer bytes"


def test_zip_with_the_wrong_checksum_is_refused(tmp_path):
    with pytest.raises(PackFetchError, match="does not match"):
        fetch_pack(_pack(tmp_path, "0" * 64), tmp_path / "models", from_zip=_zip(tmp_path))
    assert not (tmp_path / "models" / "tiny" / "det.onnx").exists()


def test_download_is_verified_against_the_pinned_checksum(tmp_path, monkeypatch):
    archive = _zip(tmp_path)

    class Resp:
        headers = {"Content-Length": str(archive.stat().st_size)}

        def __init__(self):
            self.f = open(archive, "rb")

        def read(self, n):
            return self.f.read(n)

        def __enter__(self):
            return self

        def __exit__(self, *a):
            self.f.close()

    monkeypatch.setattr(fetch_mod.urllib.request, "urlopen", lambda *a, **k: Resp())
    with pytest.raises(PackFetchError, match="expected"):
        fetch_pack(_pack(tmp_path, "f" * 64), tmp_path / "m1", progress=False)
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    folder = fetch_pack(_pack(tmp_path, sha), tmp_path / "m2", progress=False)
    assert (folder / "det.onnx").read_bytes() == b"detector bytes"


def test_unknown_pack_lists_the_known_ones():
    with pytest.raises(ManifestError, match="buffalo_l"):
        load_manifest("nope")


def test_manifest_validation():
    with pytest.raises(ManifestError, match="embedding_size"):
        PackManifest.from_dict(
            {
                "name": "x",
                "detector": {"file": "d", "input_size": [640, 640]},
                "recognizer": {"file": "r", "input_size": [112, 112]},
            }
        )
    with pytest.raises(ManifestError, match="colour"):
        PackManifest.from_dict(
            {
                "name": "x",
                "detector": {"file": "d", "input_size": [640, 640], "colour": "HSV"},
                "recognizer": {"file": "r", "input_size": [112, 112], "embedding_size": 4},
            }
        )
