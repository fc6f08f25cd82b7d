"""The real Triton Inference Server (2.51, bundled in the ``nvidia-pytriton`` wheel) as a child process.

The wheel ships ``tritonserver``, the python backend library with its utils module, and one
python backend stub per Python version. ``backend_directory`` links the three for the running
interpreter into a folder Triton takes as ``--backend-directory``; the server runs with this
interpreter's ``bin`` first on ``PATH``, so the stub imports torch and numpy from the same
environment. Serve the committed repository until Ctrl-C with ``python -m embedded.triton``.
"""

from __future__ import annotations

import importlib.resources
import os
import sys
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated

import typer

from embedded.process import (
    DEFAULT_STATE_DIR,
    HOST,
    LOG_TAIL_LINES,
    ROOT,
    ChildServer,
    ServerStartError,
    free_port,
    search_path,
)
from embedded.serve import interrupt_on_stop_signals, serve_until_interrupted

#: the committed model repository (one folder per model: config.pbtxt + version folders)
DEFAULT_REPOSITORY = ROOT / "triton_models"
#: seconds to wait for ``/v2/health/ready`` (every model loaded) before giving up
DEFAULT_READY_TIMEOUT_S = 120.0
#: seconds between SIGTERM and SIGKILL when stopping
DEFAULT_STOP_TIMEOUT_S = 20.0

__all__ = ["HOST", "LOG_TAIL_LINES", "TritonServer", "TritonStartError", "backend_directory", "free_port"]


class TritonStartError(ServerStartError):
    """The server exited or did not become ready; the message carries the log's tail."""


def wheel_root() -> Path:
    """The ``tritonserver`` folder of the installed ``nvidia-pytriton`` wheel."""
    root = Path(str(importlib.resources.files("pytriton"))) / "tritonserver"
    if not (root / "bin" / "tritonserver").exists():
        raise FileNotFoundError(f"no tritonserver in {root}: install the 'triton' extra (nvidia-pytriton)")
    return root


def backend_directory(state_dir: Path = DEFAULT_STATE_DIR) -> Path:
    """Build (idempotently) ``state_dir/triton-backends/python3.X/python/`` and return its parent.

    The folder holds links to ``libtriton_python.so``, ``triton_python_backend_utils.py`` (without
    it a model fails with "No module named 'model'") and the stub for the running Python.
    """
    root = wheel_root()
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = root / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.exists():
        raise FileNotFoundError(f"the wheel has no python backend stub for Python {version}")
    targets = {
        "libtriton_python.so": root / "backends" / "python" / "libtriton_python.so",
        "triton_python_backend_utils.py": root / "backends" / "python" / "triton_python_backend_utils.py",
        "triton_python_backend_stub": stub,
    }
    directory = state_dir / "triton-backends" / f"python{version}"
    python_dir = directory / "python"
    python_dir.mkdir(parents=True, exist_ok=True)
    for name, target in targets.items():
        link = python_dir / name
        if link.is_symlink() and link.resolve() == target.resolve():
            continue
        temporary = python_dir / f".{name}.{os.getpid()}"
        temporary.unlink(missing_ok=True)
        temporary.symlink_to(target)
        os.replace(temporary, link)  # atomic: a concurrent start never sees a missing link
    return directory


class TritonServer(ChildServer):
    """``tritonserver`` serving one model repository; a context manager that starts and stops it.

    Parameters, all keyword-only but ``repository``:

    - ``repository`` (default ``triton_models/``): the model repository to serve
    - ``http_port``, ``grpc_port``, ``metrics_port`` (default: free ports picked at start)
    - ``state_dir`` (default ``.atelier/``): where the backend folder and the log go
    - ``log_path`` (default ``state_dir/logs/tritonserver-<http port>.log``): server output
    - ``ready_timeout_s`` (default 120): how long ``start`` waits for every model to be ready
    - ``stop_timeout_s`` (default 20): how long ``stop`` waits after SIGTERM before SIGKILL
    - ``extra_args`` (default none): more ``tritonserver`` flags, e.g. ``("--log-verbose=1",)``
    - ``extra_env`` (default none): more variables for the server and its backends, e.g. a forced
      kernel path (``{"MKL_CBWR": "COMPATIBLE"}``) for the determinism tests
    """

    label = "tritonserver"
    start_error = TritonStartError

    def __init__(
        self,
        repository: Path = DEFAULT_REPOSITORY,
        *,
        http_port: int | None = None,
        grpc_port: int | None = None,
        metrics_port: int | None = None,
        state_dir: Path = DEFAULT_STATE_DIR,
        log_path: Path | None = None,
        ready_timeout_s: float = DEFAULT_READY_TIMEOUT_S,
        stop_timeout_s: float = DEFAULT_STOP_TIMEOUT_S,
        extra_args: tuple[str, ...] = (),
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(log_path=log_path, ready_timeout_s=ready_timeout_s, stop_timeout_s=stop_timeout_s)
        self.repository = Path(repository).resolve()
        self.http_port = http_port
        self.grpc_port = grpc_port
        self.metrics_port = metrics_port
        self.state_dir = Path(state_dir)
        self.extra_args = extra_args
        self.extra_env = dict(extra_env or {})

    @property
    def grpc_url(self) -> str:
        """``host:port`` as ``tritonclient.grpc.InferenceServerClient(url=...)`` takes it."""
        return f"{HOST}:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        """``http://host:port``; ``tritonclient.http`` takes it without the scheme."""
        return f"http://{HOST}:{self.http_port}"

    @property
    def metrics_url(self) -> str:
        """The Prometheus endpoint, ``http://host:port/metrics``."""
        return f"http://{HOST}:{self.metrics_port}/metrics"

    def command(self, backends: Path | None = None) -> list[str]:
        """The ``tritonserver`` argv (``backends`` default: ``backend_directory(state_dir)``)."""
        if backends is None:
            backends = backend_directory(self.state_dir)
        return [
            str(wheel_root() / "bin" / "tritonserver"),
            f"--model-repository={self.repository}",
            f"--backend-directory={backends}",
            f"--http-port={self.http_port}",
            f"--grpc-port={self.grpc_port}",
            f"--metrics-port={self.metrics_port}",
            f"--exit-timeout-secs={max(1, int(self.stop_timeout_s) - 2)}",
            *self.extra_args,
        ]

    def environment(self) -> dict[str, str]:
        """This interpreter's ``bin`` first on ``PATH``, so the stub imports from this environment."""
        env = super().environment()
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        libs = wheel_root().parent.parent / "nvidia_pytriton.libs"
        env["LD_LIBRARY_PATH"] = search_path(env.get("LD_LIBRARY_PATH"), str(libs))
        return env | self.extra_env

    def _prepare(self) -> Path:
        if not self.repository.is_dir():
            raise FileNotFoundError(f"no model repository at {self.repository}")
        self.http_port = self.http_port or free_port()
        self.grpc_port = self.grpc_port or free_port()
        self.metrics_port = self.metrics_port or free_port()
        return self.log_path or self.state_dir / "logs" / f"tritonserver-{self.http_port}.log"

    def _readiness_probe(self) -> Callable[[], bool]:
        """Every model loaded: ``/v2/health/ready`` answers 200."""
        url = f"{self.http_url}/v2/health/ready"

        def ready() -> bool:
            with urllib.request.urlopen(url, timeout=1.0) as response:
                return bool(response.status == 200)

        return ready


def main() -> None:
    app = typer.Typer(add_completion=False)

    @app.command()
    def serve(
        repository: Annotated[Path, typer.Option(help="model repository to serve")] = DEFAULT_REPOSITORY,
        http_port: Annotated[int, typer.Option(help="HTTP/REST port")] = 8000,
        grpc_port: Annotated[int, typer.Option(help="gRPC port")] = 8001,
        metrics_port: Annotated[int, typer.Option(help="Prometheus metrics port")] = 8002,
        gpu: Annotated[bool, typer.Option(help="serve a copy with every instance group on KIND_GPU")] = False,
    ) -> None:
        """Serve REPOSITORY with the real Triton server until Ctrl-C (or SIGTERM)."""
        interrupt_on_stop_signals()
        if gpu:
            from training.export import gpu_repository  # torch is only needed here

            repository = gpu_repository(repository, DEFAULT_STATE_DIR / "triton-models-gpu")
        server = TritonServer(repository, http_port=http_port, grpc_port=grpc_port, metrics_port=metrics_port)
        with server:
            serve_until_interrupted(
                server,
                banner=f"ready in {server.startup_s:.1f} s: grpc {server.grpc_url}, http {server.http_url}, "
                f"metrics {server.metrics_url}; log {server.log_path}. Ctrl-C stops.",
            )

    app()


if __name__ == "__main__":
    main()
