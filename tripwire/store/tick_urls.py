"""Tick-store URLs: parse, check and redact them (no client is imported here).

* a ClickHouse server: ``http://user:password@host:8123/db`` (or ``https://``, default port
  8443); the database is the URL path (``tripwire`` when the path is empty);
* chdb, the ClickHouse engine embedded in the process: ``chdb:///abs/data/dir``
  (``chdb:relative/dir`` is resolved against the working directory when parsed; ``%xx``
  escapes are decoded); the database is always ``tripwire``.

A password never appears in ``repr``, logs or error messages (:func:`redact_url`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from urllib.parse import SplitResult, unquote, urlsplit

CHDB_DATABASE = "tripwire"

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PASSWORD_IN_URL = re.compile(r"(//[^/@:]*:)[^/@]*@")


@dataclass(frozen=True, slots=True)
class StoreURL:
    """A parsed, validated tick-store URL. ``password`` never appears in ``repr`` or logs."""

    scheme: str  # "http", "https" or "chdb"
    database: str
    host: str = ""
    port: int = 0
    user: str = ""
    password: str = field(default="", repr=False)
    path: str = ""  # chdb: the absolute data directory

    @property
    def redacted(self) -> str:
        """The URL as it is safe to print: the password is replaced by ``***``."""
        if self.scheme == "chdb":
            return f"chdb://{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        auth = f"{self.user}:***@" if self.password else f"{self.user}@"
        return f"{self.scheme}://{auth}{host}:{self.port}/{self.database}"


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (also for URLs that do not parse).

    >>> redact_url("http://tw:s3cret@db:8123/ticks")
    'http://tw:***@db:8123/ticks'
    """
    return _PASSWORD_IN_URL.sub(r"\1***@", url)


def parse_store_url(url: str) -> StoreURL:
    """Parse and check a store URL; a ValueError says what is wrong (without the password).

    >>> parse_store_url("https://tw:pw@ch.example:9443/market").redacted
    'https://tw:***@ch.example:9443/market'
    >>> parse_store_url("ftp://x/y")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: tick store URL 'ftp://x/y': scheme 'ftp' is not supported; use http://...
    """
    if not isinstance(url, str) or not url.strip():
        raise ValueError(f"tick store URL must be a non-empty string, got {url!r}")
    shown = redact_url(url)
    try:
        parts = urlsplit(url.strip())
    except ValueError as e:
        raise ValueError(f"tick store URL {shown!r} is malformed: {e}") from None
    scheme = parts.scheme.lower()
    if parts.query or parts.fragment:
        raise ValueError(f"tick store URL {shown!r}: query strings and fragments are not supported")
    if scheme in ("http", "https"):
        return _parse_http(parts, scheme, shown)
    if scheme == "chdb":
        return _parse_chdb(parts, shown)
    raise ValueError(
        f"tick store URL {shown!r}: scheme {scheme!r} is not supported; use "
        "http://user:password@host:8123/db, https://... or chdb:///absolute/data/dir"
    )


def _parse_http(parts: SplitResult, scheme: str, shown: str) -> StoreURL:
    if not parts.hostname:
        raise ValueError(f"tick store URL {shown!r} has no host")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"tick store URL {shown!r}: the port must be a number 1-65535") from None
    if port == 0:
        raise ValueError(f"tick store URL {shown!r}: the port must be a number 1-65535")
    database = unquote(parts.path.strip("/")) or CHDB_DATABASE
    if not _IDENTIFIER.match(database):
        raise ValueError(
            f"tick store URL {shown!r}: the path must be one database name (letters, digits, "
            f"underscore, not starting with a digit), got {database!r}"
        )
    return StoreURL(
        scheme=scheme,
        database=database,
        host=parts.hostname,
        port=port or (8443 if scheme == "https" else 8123),
        user=unquote(parts.username) if parts.username else "default",
        password=unquote(parts.password) if parts.password else "",
    )


def _parse_chdb(parts: SplitResult, shown: str) -> StoreURL:
    if parts.netloc:
        raise ValueError(
            f"tick store URL {shown!r}: chdb URLs take no host ({parts.netloc!r}); "
            "use chdb:///absolute/data/dir or chdb:relative/data/dir"
        )
    path = unquote(parts.path)
    if not path:
        raise ValueError(f"tick store URL {shown!r} names no data directory")
    return StoreURL(scheme="chdb", database=CHDB_DATABASE, path=os.path.abspath(path))
