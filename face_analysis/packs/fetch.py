"""Getting a pack's files onto disk: from InsightFace's release (zip, checksum verified) or a local folder.

A pack lives in `<models_dir>/<pack name>/` with the role files at its top level. Packs whose source is a local
folder (the test pack) are used in place after their checksums are verified.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from face_analysis.packs.manifest import PackManifest


class PackFetchError(RuntimeError):
    pass


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _verify_files(manifest: PackManifest, folder: Path) -> list[str]:
    """Problems with the role files in `folder` (missing, or a checksum that does not match)."""
    problems = []
    for role, spec in manifest.roles.items():
        path = folder / spec.file
        if not path.is_file():
            problems.append(f"{role} file {spec.file} is missing from {folder}")
        elif spec.sha256 and sha256_file(path) != spec.sha256:
            problems.append(f"{role} file {path} does not match its sha256 {spec.sha256}")
    return problems


PROJECT_ROOT = Path(__file__).resolve().parents[2]


def pack_dir(manifest: PackManifest, models_dir: Path, base: Path | None = None) -> Path:
    """Where the pack's files are expected: its local source folder (relative to the project root), or
    `<models_dir>/<name>`."""
    local = manifest.source.get("local_dir")
    if local:
        return (Path(base or PROJECT_ROOT) / local).resolve()
    return Path(models_dir) / manifest.name


def _download(url: str, dest: Path, expected_sha256: str | None, progress: bool) -> None:
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        tqdm = None
    h = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=30) as resp, open(dest, "wb") as out:
            total = int(resp.headers.get("Content-Length") or 0) or None
            bar = (
                tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, file=sys.stderr)
                if tqdm and progress
                else None
            )
            while block := resp.read(1 << 20):
                out.write(block)
                h.update(block)
                if bar:
                    bar.update(len(block))
            if bar:
                bar.close()
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise PackFetchError(
            f"could not download {url}: {getattr(exc, 'reason', exc)}. If this machine is offline, download the "
            "zip elsewhere and pass it with --from-zip."
        ) from None
    if expected_sha256 and h.hexdigest() != expected_sha256:
        raise PackFetchError(f"{url} has sha256 {h.hexdigest()}, expected {expected_sha256}; not using it")


def _extract_roles(manifest: PackManifest, archive: Path, folder: Path) -> None:
    """Copy each role's file out of the zip (found by file name at any depth) into `folder`."""
    wanted = {spec.file for spec in manifest.roles.values()}
    with zipfile.ZipFile(archive) as zf:
        members = {Path(n).name: n for n in zf.namelist() if not n.endswith("/")}
        missing = wanted - members.keys()
        if missing:
            raise PackFetchError(f"{archive.name} lacks {', '.join(sorted(missing))}")
        folder.mkdir(parents=True, exist_ok=True)
        for name in wanted:
            tmp = folder / (name + ".part")
            with zf.open(members[name]) as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            os.replace(tmp, folder / name)


def fetch_pack(
    manifest: PackManifest,
    models_dir: Path,
    from_zip: Path | None = None,
    progress: bool = True,
    base: Path | None = None,
) -> Path:
    """Make the pack's files present and verified; returns the folder holding them."""
    folder = pack_dir(manifest, models_dir, base)
    if manifest.source.get("local_dir") and from_zip is None:
        problems = _verify_files(manifest, folder)
        if problems:
            raise PackFetchError("; ".join(problems))
        return folder
    if not _verify_files(manifest, folder):
        return folder
    expected = manifest.source.get("sha256")
    if from_zip is not None:
        if expected and sha256_file(from_zip) != expected:
            raise PackFetchError(f"{from_zip} does not match the pack's sha256 {expected}")
        _extract_roles(manifest, Path(from_zip), folder)
    else:
        url = manifest.source.get("url")
        if not url:
            raise PackFetchError(f"pack {manifest.name} has no download URL; pass --from-zip")
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder) as tmp:
            archive = Path(tmp) / f"{manifest.name}.zip"
            _download(url, archive, expected, progress)
            _extract_roles(manifest, archive, folder)
    problems = _verify_files(manifest, folder)
    if problems:
        raise PackFetchError("; ".join(problems))
    return folder
