"""The local stack the measuring scripts start and stop (scripts/benchmark.py, scripts/reliability.py): the embedded
CPU Triton, a private `redis-server` and `face-api serve`, each its own process on free loopback ports.

    triton = TritonProcess(pack, models_dir, work).start()     # repository laid out from the pack under work/
    redis = RedisProcess(work / "redis").start()               # append-only file, fsync on every write
    api = ApiProcess(triton.grpc_url, work, settings={"REDIS_URL": redis.url}).start()
    secret = api.create_key("me", ["detect"], "standard")
    triton.kill(); triton.start()                              # a crash (SIGKILL) and a restart on the same ports

Every child asks Linux to stop it when the script dies (PR_SET_PDEATHSIG), so a killed script leaves no server
holding ports. Loopback addresses only.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from face_analysis.server import die_with_parent, free_port  # noqa: E402 - after the path set-up above

__all__ = [
    "ROOT",
    "ApiProcess",
    "RedisProcess",
    "TritonProcess",
    "check_loopback_host",
    "die_with_parent",
    "free_port",
    "http_json",
    "wait_until",
]

LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


def check_loopback_host(host: str) -> None:
    if host not in LOOPBACK:
        raise SystemExit(f"loopback addresses only (127.0.0.1, localhost, ::1); got {host!r}")


def http_json(url: str, body: dict | None = None, headers: dict | None = None, timeout: float = 10) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json", **(headers or {})})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll `check` until it is true (True) or `timeout` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def _stop(proc: subprocess.Popen, timeout: float) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --------------------------------------------------------------------------------------------- Triton


class TritonProcess:
    """The embedded CPU Triton (`face_analysis.server.EmbeddedTriton`) on a repository laid out from `pack`, on free
    ports chosen once: a restart after `kill()` or `stop()` serves on the same ones."""

    def __init__(self, pack, models_dir: Path, work: Path):
        from face_analysis.server import EmbeddedTriton

        self.pack, self.models_dir, self.work = pack, Path(models_dir), Path(work)
        self.repository: Path | None = None
        self.server = EmbeddedTriton(
            self.work / "model_repository",
            free_port(),
            free_port(),
            free_port(),
            config_name="cpu",
            work_dir=self.work / "triton",
        )

    @property
    def grpc_url(self) -> str:
        return self.server.grpc_url

    @property
    def pid(self) -> int | None:
        proc = self.server._proc
        return None if proc is None else proc.pid

    @property
    def log_path(self) -> Path:
        return self.server.log_path

    def start(self) -> "TritonProcess":
        if self.repository is None:
            from face_analysis.repository.build import build_repository

            self.repository = build_repository(self.pack, self.models_dir, self.work / "model_repository")
            self.server.repository = self.repository
        self.server.start()
        return self

    def running(self) -> bool:
        return self.server.running()

    def kill(self) -> list[str]:
        """A crash: SIGKILL the server and its Python-backend stubs (one process group) at once. The shared-memory
        regions they had mapped (which only a clean exit removes) are unlinked; returns their names."""
        pid = self.pid
        if pid is None:
            return []
        pids = _group_members(pid)
        regions = sorted({r for p in pids for r in _shm_regions(p)})
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.server.stop()  # reaps the killed process and forgets it; start() may follow
        removed = []
        for region in regions:
            try:
                os.unlink(region)
                removed.append(region)
            except OSError:
                pass
        return removed

    def stop(self) -> None:
        self.server.stop()


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == pgid:
                    members.append(int(entry.name))
            except (ProcessLookupError, PermissionError):
                continue
    return members


def _shm_regions(pid: int) -> set[str]:
    """/dev/shm files a process has mapped or open."""
    found = set()
    try:
        with open(f"/proc/{pid}/maps") as f:
            for line in f:
                parts = line.split(maxsplit=5)
                path = parts[5].strip() if len(parts) == 6 else ""
                if path.startswith("/dev/shm/"):
                    found.add(path.removesuffix(" (deleted)"))
    except OSError:
        pass
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("/dev/shm/"):
                found.add(target.removesuffix(" (deleted)"))
    except OSError:
        pass
    return found


# --------------------------------------------------------------------------------------------- Redis


class RedisProcess:
    """A private `redis-server` on a free loopback port keeping its data in `directory`: with `appendonly` every
    write goes to an append-only file fsynced before the reply (`appendfsync always`), so `kill()` (SIGKILL, a
    crash) loses nothing acknowledged and `start()` brings the data back on the same port."""

    def __init__(self, directory: Path, port: int | None = None, appendonly: bool = True):
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            raise RuntimeError("redis-server is not installed (it must be on the PATH)")
        self.directory = Path(directory)
        self.port = port or free_port()
        self.appendonly = appendonly
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def command(self) -> list[str]:
        cmd = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory)]
        cmd += ["--save", "", "--logfile", str(self.directory / "redis.log")]
        if self.appendonly:
            return cmd + ["--appendonly", "yes", "--appendfsync", "always"]
        return cmd + ["--appendonly", "no"]

    def ping(self, timeout: float = 0.2) -> bool:
        """Answers PING (False while down or still loading its append-only file)."""
        import redis

        client = redis.Redis(port=self.port, socket_connect_timeout=timeout, socket_timeout=timeout)
        try:
            return bool(client.ping())
        except (redis.exceptions.RedisError, OSError):
            return False
        finally:
            client.close()

    def start(self, timeout: float = 30) -> "RedisProcess":
        if self.proc is not None and self.proc.poll() is None:
            return self
        self.directory.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=die_with_parent
        )
        if not wait_until(lambda: self.ping() or self.proc.poll() is not None, timeout) or self.proc.poll() is not None:
            self.stop()
            raise RuntimeError(f"redis-server did not start on port {self.port} (see {self.directory / 'redis.log'})")
        return self

    def kill(self) -> None:
        """A crash: SIGKILL, nothing flushed beyond what each reply already waited for."""
        proc, self.proc = self.proc, None
        if proc is not None:
            proc.kill()
            proc.wait(timeout=10)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            _stop(proc, 10)

    def __enter__(self) -> "RedisProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# --------------------------------------------------------------------------------------------- the REST API


class ApiProcess:
    """`face-api serve` in its own process. `settings` are FACE_API_* variables without the prefix (the environment's
    own FACE_API_* are dropped); HOST, PORT, TRITON_URL and ADMIN_TOKEN are set here. stdout and stderr go to `log`.
    """

    def __init__(
        self,
        triton_url: str,
        work: Path,
        settings: Mapping[str, str] | None = None,
        *,
        log_name: str = "face-api.log",
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
    ):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.admin = secrets.token_urlsafe(24)
        self.log = Path(work) / log_name
        self.triton_url = triton_url
        self.settings = dict(settings or {})
        self.cwd = Path(cwd) if cwd is not None else ROOT
        self.extra_env = dict(env or {})
        self.proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def command(self) -> list[str]:
        binary = Path(sys.executable).parent / "face-api"
        return [str(binary), "serve"] if binary.exists() else [sys.executable, "-m", "control_plane.cli", "serve"]

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FACE_API_")}
        env.update(self.extra_env)
        env.update({f"FACE_API_{k}": v for k, v in self.settings.items()})
        env.update(
            FACE_API_HOST="127.0.0.1",
            FACE_API_PORT=str(self.port),
            FACE_API_TRITON_URL=self.triton_url,
            FACE_API_ADMIN_TOKEN=self.admin,
        )
        return env

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/health/ready", timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def start(self, timeout: float = 120) -> "ApiProcess":
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                self.command(),
                cwd=self.cwd,
                env=self.environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,
            )
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = self.log.read_text(errors="replace")[-3000:]
                self.stop()
                raise SystemExit(f"face-api did not become ready; its log ({self.log}):\n{tail}")
            time.sleep(0.3)
        return self

    def create_key(self, name: str, scopes: Sequence[str], tier: str) -> str:
        """A new key's secret (name the tier: the default one may not be among the API's FACE_API_RATE_TIERS)."""
        body = {"name": name, "scopes": list(scopes), "tier": tier}
        created = http_json(f"{self.url}/v1/admin/keys", body, {"Authorization": f"Bearer {self.admin}"})
        return created["secret"]

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM: a graceful shutdown (pending usage counts are flushed)."""
        proc, self.proc = self.proc, None
        if proc is not None:
            _stop(proc, timeout)
