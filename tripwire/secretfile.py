"""Owner-only files and directories for secrets (tokens) and for private runtime state.

A secret that must outlive one process (the operator's API token, Ray's cluster token) is
kept in a file only its owner can read, and what travels between processes is the file's
*path*, never its content: a path in a runtime env, a log line or a dashboard gives nothing
away. Reading refuses a file that group or others could read, so a secret copied with the
wrong mode fails closed instead of being used.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> p = write_secret(d / "secrets" / "t", "s3cret")
>>> oct(p.stat().st_mode & 0o777), oct(p.parent.stat().st_mode & 0o777), read_secret(p)
('0o600', '0o700', 's3cret')
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

MAX_SECRET_BYTES = 4096  # a token, not a document: a bigger file is the wrong file


class SecretFileError(ValueError):
    """A secret file is missing, empty, too big, not a regular file or readable by others."""


def private_dir(path: Path | str) -> Path:
    """``path`` as a directory only its owner can enter (created 0700, tightened if it was
    looser and is ours). Raises :class:`SecretFileError` if it is another user's."""
    path = Path(path)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = path.stat()
    if st.st_uid != os.geteuid():
        raise SecretFileError(f"{path} belongs to uid {st.st_uid}, not to this user "
                              f"({os.geteuid()}); refusing to keep private files there")
    if stat.S_IMODE(st.st_mode) & 0o077:
        path.chmod(0o700)
    return path


def write_secret(path: Path | str, value: str) -> Path:
    """Write ``value`` to ``path`` with mode 0600 in a 0700 directory, atomically (a reader
    never sees a half-written or briefly world-readable file)."""
    if not value or not value.strip() or "\n" in value or len(value) > MAX_SECRET_BYTES:
        raise SecretFileError("a secret must be one non-empty line of at most "
                              f"{MAX_SECRET_BYTES} bytes")
    path = Path(path)
    private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(value + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def read_secret(path: Path | str) -> str:
    """The secret in ``path`` (one line, stripped). Fails closed, naming the file, when it
    is missing, empty, oversized, not a regular file, or readable by group or others."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise SecretFileError(f"secret file {path} does not exist") from None
    except OSError as exc:
        raise SecretFileError(f"secret file {path} cannot be opened: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise SecretFileError(f"secret file {path} is not a regular file")
        if stat.S_IMODE(st.st_mode) & 0o077:
            raise SecretFileError(f"secret file {path} has mode "
                                  f"{stat.S_IMODE(st.st_mode):04o}; it must be readable by "
                                  "its owner only (chmod 600)")
        raw = f.read(MAX_SECRET_BYTES + 1)
    if len(raw) > MAX_SECRET_BYTES:
        raise SecretFileError(f"secret file {path} is larger than {MAX_SECRET_BYTES} bytes")
    try:
        value = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise SecretFileError(f"secret file {path} is not UTF-8 text") from None
    if not value:
        raise SecretFileError(f"secret file {path} is empty")
    return value


def ensure_secret(path: Path | str, nbytes: int = 32) -> str:
    """The secret in ``path``, made (``secrets.token_urlsafe(nbytes)``) if there is none."""
    path = Path(path)
    if not path.exists():
        write_secret(path, secrets.token_urlsafe(nbytes))
    return read_secret(path)
