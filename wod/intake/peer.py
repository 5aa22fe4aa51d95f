"""Who is at the other end of a TCP connection made from this host.

The SMTP listener accepts command mail from this host only from some local users (an
unprivileged user could otherwise forge the api-db's envelope sender over loopback).  For a
TCP connection between two sockets of this host, the kernel's socket table
(``/proc/net/tcp`` and ``/proc/net/tcp6`` of this network namespace, what ``ss -e`` shows)
lists the client's socket too, with the uid that created it and its inode.  We find the
client's socket by its two ends (local = the peer address we see, remote = our address).

psutil (``net_connections``) would give the same table through the owning processes only:
it walks every process's descriptors (slow per connection) and gives a pid, not the socket's
uid.  The table is read directly instead.

Limit: a client that closed its socket before we look (it cannot have read our greeting
yet) has no inode any more; it is reported as local with an unknown user.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from pathlib import Path

TABLES = (Path("/proc/net/tcp"), Path("/proc/net/tcp6"))


@dataclass(frozen=True)
class LocalPeer:
    """The client's socket found in this host's table: its creator's uid, or None when the
    socket has no owner any more (closed by its process)."""

    uid: int | None


def _hex_forms(ip: str) -> list[str]:
    """How the kernel table prints ``ip`` (IPv4 in tcp; IPv6 and v4-mapped in tcp6)."""
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        addr = addr.ipv4_mapped
    if isinstance(addr, ipaddress.IPv4Address):
        mapped = ipaddress.IPv6Address("::ffff:" + str(addr)).packed
        return [_words(addr.packed), _words(mapped)]
    return [_words(addr.packed)]


def _words(packed: bytes) -> str:
    """Address bytes as the kernel prints them: 32-bit words in host order, hex."""
    return "".join(f"{w:08X}" for w in struct.unpack(f"={len(packed) // 4}I", packed))


def local_peer(peer: tuple[str, int], ours: tuple[str, int]) -> LocalPeer | None:
    """The client at ``peer`` connected to our ``ours`` end, if its socket is on this host;
    None when it is not (a remote client) or the table cannot be read."""
    keys = [
        f" {p}:{peer[1]:04X} {o}:{ours[1]:04X} ".encode()
        for p in _hex_forms(peer[0])
        for o in _hex_forms(ours[0])
        if len(p) == len(o)
    ]
    for table in TABLES:
        try:
            text = table.read_bytes()
        except OSError:
            continue
        for key in keys:
            at = text.find(key)
            if at < 0:
                continue
            line = text[at : text.find(b"\n", at)].split()
            # local rem st queues tr retrnsmt uid timeout inode
            uid, inode = int(line[6]), int(line[8])
            return LocalPeer(uid if inode else None)
    return None


def is_loopback(ip: str) -> bool:
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        addr = addr.ipv4_mapped
    return addr.is_loopback
