"""The embedded CPU Triton: the `tritonserver` binary shipped in the `nvidia-pytriton` wheel, run as a child
process on a laid-out repository, with its Python-backend stub matched to the running Python.

    with EmbeddedTriton(repository) as triton:
        triton.grpc_url  # "127.0.0.1:8001"

The server runs in its own process group so that stopping it also stops every Python-backend stub it spawned.
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from face_analysis.repository.configs import ENSEMBLE


class TritonStartError(RuntimeError):
    pass


def pytriton_dir() -> Path:
    try:
        import pytriton
    except ImportError:
        raise TritonStartError("nvidia-pytriton is not installed; it carries the tritonserver binary") from None
    return Path(pytriton.__file__).resolve().parent / "tritonserver"


def prepare_backends(target: Path) -> Path:
    """A backend directory whose python backend uses the stub built for this interpreter's version.

    Symlinks keep the stub's $ORIGIN-relative library path pointing into the wheel.
    """
    src = pytriton_dir()
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = src / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.exists():
        raise TritonStartError(f"nvidia-pytriton ships no Python-backend stub for Python {version}")
    python = target / "python"
    python.mkdir(parents=True, exist_ok=True)
    for link, dest in {
        "libtriton_python.so": src / "backends" / "python" / "libtriton_python.so",
        "triton_python_backend_utils.py": src / "backends" / "python" / "triton_python_backend_utils.py",
        "triton_python_backend_stub": stub,
    }.items():
        path = python / link
        if path.is_symlink() or path.exists():
            path.unlink()
        path.symlink_to(dest)
    return target


def die_with_parent() -> None:
    """In the child before exec: ask Linux to SIGTERM the server if the process that started it dies, so a killed
    parent leaves no orphan server holding the ports."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: atexit and stop() still apply
        pass


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class EmbeddedTriton:
    repository: Path
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002
    config_name: str | None = "cpu"  # the CPU target: configs/cpu.pbtxt
    work_dir: Path = Path("build/triton")
    log_verbose: int = 0
    startup_timeout: float = 180.0
    _proc: subprocess.Popen | None = field(default=None, init=False, repr=False)

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def log_path(self) -> Path:
        return Path(self.work_dir) / f"tritonserver-{self.grpc_port}.log"

    def command(self) -> list[str]:
        binary = pytriton_dir() / "bin" / "tritonserver"
        backends = prepare_backends(Path(self.work_dir).resolve() / "backends")
        cmd = [
            str(binary),
            f"--model-repository={Path(self.repository).resolve()}",
            f"--backend-directory={backends}",
            f"--http-port={self.http_port}",
            f"--grpc-port={self.grpc_port}",
            f"--metrics-port={self.metrics_port}",
            "--http-address=127.0.0.1",
            "--grpc-address=127.0.0.1",
            "--metrics-address=127.0.0.1",
            "--exit-on-error=true",
            "--strict-readiness=true",
            "--exit-timeout-secs=10",
            # big decoded images cross between steps in shared memory: grow it in large steps
            "--backend-config=python,shm-default-byte-size=33554432",
            "--backend-config=python,shm-growth-byte-size=33554432",
            f"--log-verbose={self.log_verbose}",
        ]
        if self.config_name:
            cmd.append(f"--model-config-name={self.config_name}")
        return cmd

    def _env(self) -> dict:
        env = dict(os.environ)
        # The stub finds this environment's packages (numpy, onnxruntime, face_analysis) only when its bin/
        # comes first on PATH; the project root on PYTHONPATH covers a checkout that is not pip-installed.
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        root = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(p for p in [root, env.get("PYTHONPATH", "")] if p)
        return env

    def start(self) -> "EmbeddedTriton":
        if self._proc is not None:
            return self
        taken = [p for p in (self.http_port, self.grpc_port, self.metrics_port) if not port_free(p)]
        if taken:
            raise TritonStartError(
                f"port(s) {', '.join(map(str, taken))} already in use; choose others (--http-port, --grpc-port, "
                "--metrics-port) or stop what holds them"
            )
        Path(self.work_dir).mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "wb")
        self._proc = subprocess.Popen(
            self.command(),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self._env(),
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        log.close()
        atexit.register(self.stop)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _ready(self) -> bool:
        url = f"http://{self.http_url}/v2/models/{ENSEMBLE}/ready"
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def load_failures(self) -> list[str]:
        """The 'failed to load' lines of the log, shortened to their first line (the cause, without traceback)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return []
        return [
            line.split('"', 1)[-1].split("\\n")[0]
            for line in text.splitlines()
            if line.startswith("E") and "failed to load" in line
        ]

    def _failure(self, what: str) -> TritonStartError:
        causes = self.load_failures()
        detail = "\n".join(f"  - {c}" for c in causes) if causes else self.log_tail()
        return TritonStartError(f"{what}. See {self.log_path}:\n{detail}")

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise self._failure(
                    f"tritonserver exited with code {self._proc.returncode} before `{ENSEMBLE}` was ready"
                )
            if self._ready():
                return
            time.sleep(0.25)
        raise self._failure(f"`{ENSEMBLE}` not ready after {self.startup_timeout:.0f}s")

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self, timeout: float = 20.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        atexit.unregister(self.stop)
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)  # the server and its Python-backend stubs
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            except ProcessLookupError:
                pass
        # Stubs left behind by a crashed server still belong to the process group.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:  # give the killed stubs a moment to go
            try:
                os.killpg(proc.pid, 0)
            except (ProcessLookupError, PermissionError):
                break
            time.sleep(0.05)

    def __enter__(self) -> "EmbeddedTriton":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
