"""Listening sockets of a process tree, read from /proc (no psutil in the venv).

A process's sockets are the ``socket:[inode]`` links under ``/proc/<pid>/fd``; their
addresses are in ``/proc/<pid>/net/{tcp,tcp6,udp,udp6}`` (hex, little-endian words).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

TCP_LISTEN = "0A"
LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}


@dataclass(frozen=True)
class Listener:
    proto: str
    ip: str
    port: int
    pid: int
    cmd: str

    @property
    def loopback(self) -> bool:
        return self.ip in LOOPBACK or self.ip.startswith("127.")


def descendants(root: int) -> list[int]:
    """Every process whose parent chain reaches ``root`` (not ``root`` itself)."""
    parent: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:  # gone meanwhile
                continue
            parent[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    out, frontier = [], [root]
    while frontier:
        pid = frontier.pop()
        kids = [p for p, pp in parent.items() if pp == pid]
        out += kids
        frontier += kids
    return out


def listeners(pids: list[int]) -> list[Listener]:
    """TCP sockets in LISTEN and bound UDP sockets of ``pids``."""
    found: set[Listener] = set()
    for pid in pids:
        inodes = _socket_inodes(pid)
        if not inodes:
            continue
        cmd = _cmdline(pid)
        for proto in ("tcp", "tcp6", "udp", "udp6"):
            for inode, (ip, port, state) in _table(pid, proto).items():
                if inode in inodes and (state == TCP_LISTEN or proto.startswith("udp")):
                    found.add(Listener(proto, ip, port, pid, cmd))
    return sorted(found, key=lambda x: (x.pid, x.port))


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _cmdline(pid: int) -> str:
    return " ".join(cmdline(pid))[:120]


def _socket_inodes(pid: int) -> set[str]:
    out: set[str] = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return out
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            out.add(target[8:-1])
    return out


def _table(pid: int, proto: str) -> dict[str, tuple[str, int, str]]:
    try:
        lines = Path(f"/proc/{pid}/net/{proto}").read_text().splitlines()[1:]
    except OSError:
        return {}
    rows = {}
    for line in lines:
        f = line.split()
        ip, port = f[1].split(":")
        rows[f[9]] = (_ip(ip), int(port, 16), f[3])
    return rows


def _ip(hexaddr: str) -> str:
    raw = bytes.fromhex(hexaddr)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1])
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
    return socket.inet_ntop(socket.AF_INET6, words)
