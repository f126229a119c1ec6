"""PostgreSQL for tripwire: a private cluster started under the data directory, or a server.

With ``TRIPWIRE_PG_DSN`` set, tripwire uses that server. Otherwise :class:`PrivateCluster`
runs the system's own ``initdb``/``pg_ctl`` on a directory tripwire owns: trust
authentication, reachable only on 127.0.0.1 (a free port chosen at each start) and on a unix
socket inside the directory, stopped again when the context exits (or at interpreter exit).
PostgreSQL refuses to run as root, so as root the server runs as the ``postgres`` system user
and the directory is handed to that user.

Layout of a cluster directory::

    <root>/pgdata/      the PGDATA directory (initdb'd once, reused on later starts)
    <root>/sock/        the unix socket directory
    <root>/server.log   the server's log (read it when start-up fails)

>>> dsn_for(port=5433, user="tripwire", database="postgres")
'postgresql://tripwire@127.0.0.1:5433/postgres'
>>> resolve_dsn(env={"TRIPWIRE_PG_DSN": "postgresql://u@db:5432/t"})
'postgresql://u@db:5432/t'
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import re
import shlex
import shutil
import socket
import subprocess
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit, urlunsplit

DSN_ENV = "TRIPWIRE_PG_DSN"
SUPERUSER = "tripwire"  # the cluster's superuser role (initdb -U)
DATABASE = "postgres"  # the database the DSN names (initdb creates it)
SERVICE_USER = "postgres"  # the system user the server runs as when tripwire runs as root
BINARIES = ("initdb", "pg_ctl", "postgres")
# Where Debian/Ubuntu (postgresql-NN), source builds and Docker images put the binaries;
# /usr/lib/postgresql/<version>/bin is searched newest version first.
DEFAULT_SEARCH = ("/usr/lib/postgresql/*/bin", "/usr/local/bin", "/usr/local/pgsql/bin")
START_TIMEOUT_S = 60
# Unix socket paths are limited to 107 bytes (sun_path); a longer one makes postgres refuse to
# start, so a deep directory gets TCP only.
MAX_SOCKET_PATH = 100

INSTALL_HINT = (
    "PostgreSQL is not installed (need initdb, pg_ctl and postgres). "
    "Install it (Debian/Ubuntu: sudo apt-get install -y postgresql; scripts/bootstrap.sh does "
    f"this as root), or point tripwire at a running server with {DSN_ENV}=postgresql://..."
)


class PgError(RuntimeError):
    """The private cluster could not be created, started or stopped (the message says why)."""


class PgNotInstalledError(PgError):
    """No PostgreSQL server binaries were found; the message says how to install them."""


def dsn_for(port: int, user: str = SUPERUSER, database: str = DATABASE) -> str:
    """The DSN of a trust-authenticated server on 127.0.0.1."""
    return f"postgresql://{user}@127.0.0.1:{port}/{database}"


def resolve_dsn(env: Mapping[str, str] | None = None) -> str | None:
    """The configured server's DSN (``TRIPWIRE_PG_DSN``), or None for the private cluster."""
    value = (os.environ if env is None else env).get(DSN_ENV, "").strip()
    return value or None


def redact_dsn(dsn: str) -> str:
    """The DSN with its password hidden, for messages and logs.

    >>> redact_dsn("postgresql://trader:s3cret@db:5432/tw")
    'postgresql://trader:***@db:5432/tw'
    >>> redact_dsn("postgresql://tripwire@127.0.0.1:5433/postgres")
    'postgresql://tripwire@127.0.0.1:5433/postgres'
    """
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def _version_key(bindir: Path) -> tuple[int, ...]:
    """Sort key so /usr/lib/postgresql/16/bin comes before .../15/bin."""
    return tuple(int(n) for n in re.findall(r"\d+", bindir.parent.name)) or (0,)


def _candidate_dirs(path: str | None, search: Iterable[str]) -> Iterator[Path]:
    """PATH entries first (the operator's choice), then the usual install locations."""
    path = os.environ.get("PATH", "") if path is None else path
    for entry in path.split(os.pathsep):
        if entry:
            yield Path(entry)
    for pattern in search:
        if any(ch in pattern for ch in "*?["):
            matches = sorted(Path("/").glob(pattern.lstrip("/")), key=_version_key, reverse=True)
            yield from matches
        else:
            yield Path(pattern)


def find_bindir(path: str | None = None, search: Iterable[str] | None = None) -> Path:
    """The directory holding initdb, pg_ctl and postgres together (symlinks resolved).

    ``path`` defaults to $PATH and ``search`` to :data:`DEFAULT_SEARCH` (globs allowed).

    Resolving matters: /usr/local/bin/pg_ctl may be a link into /usr/lib/postgresql/15/bin,
    and pg_ctl starts the ``postgres`` that sits next to its real file.

    >>> find_bindir(path="", search=())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tripwire.store.pg.PgNotInstalledError: PostgreSQL is not installed ...
    """
    search = DEFAULT_SEARCH if search is None else search
    for directory in _candidate_dirs(path, search):
        real = _complete_bindir(directory / "pg_ctl")
        if real is not None:
            return real
    raise PgNotInstalledError(INSTALL_HINT)


def _complete_bindir(pg_ctl: Path) -> Path | None:
    """pg_ctl's real directory if it holds all of :data:`BINARIES`; None otherwise."""
    try:
        # An unreadable PATH entry (another user's ~/bin) raises instead of answering False.
        if not (pg_ctl.is_file() and os.access(pg_ctl, os.X_OK)):
            return None
        real = pg_ctl.resolve().parent
    except OSError:
        return None
    return real if all(os.access(real / name, os.X_OK) for name in BINARIES) else None


def _free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _service_account() -> pwd.struct_passwd | None:
    """The account to run the server as: None when not root (run as ourselves)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVICE_USER)
    except KeyError:
        raise PgError(
            f"running as root, and PostgreSQL refuses root, but there is no {SERVICE_USER!r} "
            "system user to run it as (installing the postgresql package creates it: "
            "apt-get install -y postgresql)"
        ) from None


def _can_traverse(directory: Path, account: pwd.struct_passwd) -> bool:
    """Whether ``account`` may enter ``directory`` (the search bit for its owner/group/other)."""
    st = directory.stat()
    if st.st_uid == account.pw_uid:
        return bool(st.st_mode & 0o100)
    groups = {account.pw_gid, *os.getgrouplist(account.pw_name, account.pw_gid)}
    if st.st_gid in groups:
        return bool(st.st_mode & 0o010)
    return bool(st.st_mode & 0o001)


def _check_reachable(root: Path, account: pwd.struct_passwd) -> None:
    """Fail with the fix when the service user cannot reach ``root`` (e.g. under /root, 0700)."""
    for ancestor in reversed(root.parents):
        if not _can_traverse(ancestor, account):
            raise PgError(
                f"the {account.pw_name!r} user (which runs PostgreSQL when tripwire runs as "
                f"root) cannot enter {ancestor}; put the data directory elsewhere or allow it: "
                f"chmod o+x {shlex.quote(str(ancestor))}"
            )


def _read_port(pid_file: Path) -> int:
    """The port from postmaster.pid (line 4 by PostgreSQL's documented layout)."""
    lines = pid_file.read_text().splitlines()
    return int(lines[3])


class PrivateCluster:
    """A PostgreSQL cluster in ``root`` that this process starts, and stops when it started it.

    A second PrivateCluster on a directory whose server is already running reuses that server
    (same DSN) and leaves it running when it exits: only the starter stops it.

    Use as a context manager (``with PrivateCluster(path) as dsn: ...``) or call
    :meth:`start` / :meth:`stop`. ``durable=False`` turns off fsync for tests and benchmarks,
    where a power cut losing the last transactions does not matter.
    """

    def __init__(
        self, root: Path | str, *, bindir: Path | None = None, durable: bool = True
    ) -> None:
        self.root = Path(root).absolute()
        self.pgdata = self.root / "pgdata"
        self.sockdir = self.root / "sock"
        self.log_file = self.root / "server.log"
        self._bindir = bindir
        self._durable = durable
        self._account = _service_account()
        self.port: int | None = None
        self.owned = False  # True when this object started the server (and so stops it)

    @property
    def dsn(self) -> str:
        if self.port is None:
            raise PgError("the cluster is not running (call start() first)")
        return dsn_for(self.port)

    def __enter__(self) -> str:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> str:
        """Initialise the cluster if needed, start it (or reuse a running one); the DSN."""
        self._tool("pg_ctl")  # find the installation before creating anything
        self._prepare_dirs()
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb()
        if self.is_running():
            self.port = _read_port(self.pgdata / "postmaster.pid")
            self.owned = False
            return self.dsn
        port = _free_port()
        self._pg_ctl("start", "-w", "-t", str(START_TIMEOUT_S), "-l", str(self.log_file),
                     "-o", self._server_options(port))
        self.port = port
        self.owned = True
        atexit.register(self.stop)
        return self.dsn

    def stop(self) -> None:
        """Stop the server if this object started it (fast shutdown: sessions are cut)."""
        if not self.owned:
            self.port = None
            return
        self.owned = False
        self.port = None
        atexit.unregister(self.stop)
        if self.is_running():
            self._pg_ctl("stop", "-w", "-m", "fast", "-t", str(START_TIMEOUT_S))

    def is_running(self) -> bool:
        """Whether a server is running on this cluster directory (pg_ctl status)."""
        if not (self.pgdata / "PG_VERSION").exists():
            return False
        result = self._run([self._tool("pg_ctl"), "-D", str(self.pgdata), "status"], check=False)
        return result.returncode == 0

    # -- helpers -------------------------------------------------------------------------

    def _tool(self, name: str) -> str:
        if self._bindir is None:
            self._bindir = find_bindir()
        return str(self._bindir / name)

    def _prepare_dirs(self) -> None:
        """Create root, sock and pgdata; as root hand them to the service user."""
        for directory in (self.root, self.sockdir, self.pgdata):
            directory.mkdir(parents=True, exist_ok=True)
        # initdb insists on 0700 (or 0750) for PGDATA; the socket dir needs no wider access.
        self.pgdata.chmod(0o700)
        if self._account is not None:
            _check_reachable(self.root, self._account)
            for path in (self.root, self.sockdir, self.pgdata):
                os.chown(path, self._account.pw_uid, self._account.pw_gid)
            if self.log_file.exists():
                os.chown(self.log_file, self._account.pw_uid, self._account.pw_gid)

    def _initdb(self) -> None:
        self._run([
            self._tool("initdb"), "-D", str(self.pgdata), "-U", SUPERUSER, "--auth=trust",
            "--encoding=UTF8", "--locale=C", "--no-instructions",
        ])

    def _server_options(self, port: int) -> str:
        """postgres options for pg_ctl -o (pg_ctl runs them through a shell, hence quoting)."""
        sockdir = str(self.sockdir)
        if len(sockdir) + len("/.s.PGSQL.65535") > MAX_SOCKET_PATH:
            sockdir = ""  # too deep for a unix socket: TCP on 127.0.0.1 only
        settings = [f"port={port}", "listen_addresses=127.0.0.1",
                    f"unix_socket_directories={sockdir}", "max_connections=200"]
        if not self._durable:
            settings += ["fsync=off", "synchronous_commit=off", "full_page_writes=off"]
        return " ".join(f"-c {shlex.quote(s)}" for s in settings)

    def _pg_ctl(self, *args: str) -> None:
        self._run([self._tool("pg_ctl"), "-D", str(self.pgdata), *args])

    def _run(self, argv: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a PostgreSQL tool, as the service user when we are root."""
        if self._account is not None:
            argv = self._as_service_user(argv)
        result = subprocess.run(argv, capture_output=True, text=True, check=False,
                                stdin=subprocess.DEVNULL)
        if check and result.returncode != 0:
            raise PgError(self._failure_message(argv, result))
        return result

    def _as_service_user(self, argv: Sequence[str]) -> list[str]:
        assert self._account is not None
        if shutil.which("runuser"):
            return ["runuser", "-u", self._account.pw_name, "--", *argv]
        return ["su", self._account.pw_name, "-s", "/bin/sh", "-c", shlex.join(argv)]

    def _failure_message(self, argv: Sequence[str], result: subprocess.CompletedProcess) -> str:
        tail = ""
        with contextlib.suppress(OSError):
            tail = "\n".join(self.log_file.read_text().splitlines()[-10:])
        output = (result.stderr or result.stdout).strip()
        return (f"{shlex.join(argv)} failed (exit {result.returncode}): {output}"
                + (f"\nserver.log (last lines):\n{tail}" if tail else ""))


@contextlib.contextmanager
def database(data_dir: Path | str, env: Mapping[str, str] | None = None) -> Iterator[str]:
    """The DSN to use for the life of the block: ``TRIPWIRE_PG_DSN`` or a private cluster.

    The private cluster lives in ``<data_dir>/postgres`` and is stopped when the block ends
    (unless another process had already started it).
    """
    configured = resolve_dsn(env)
    if configured is not None:
        yield configured
        return
    with PrivateCluster(Path(data_dir) / "postgres") as dsn:
        yield dsn
