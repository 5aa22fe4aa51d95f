"""Who is at the other end of a TCP connection made from this host.

The SMTP listener accepts command mail from this host only from some local users (an
unprivileged user could otherwise forge the api-db's envelope sender over loopback).  For a
TCP connection between two sockets of this host, the kernel knows the client's socket too:
the uid that created it and its inode.  We ask for that one socket by its two ends (its
local end = the peer address we see, its remote end = our address) with the kernel's
socket-diagnostics query (``sock_diag`` over netlink, what ``ss -e`` uses: ~0.1 ms), or,
where netlink is not available, by reading ``/proc/net/tcp`` and ``tcp6``.

psutil (``net_connections``) would give the same table only through the processes: it
walks every process's descriptors (~50 ms per connection on a quiet host) and yields a
pid, not the socket's uid.

Limit: a client that closed its socket before we look (it cannot have read our greeting
yet) has no inode any more; it is reported as local with an unknown user.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from dataclasses import dataclass
from pathlib import Path

TABLES = (Path("/proc/net/tcp"), Path("/proc/net/tcp6"))
NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST = 1
NLMSG_ERROR = 2
NO_COOKIE = 0xFFFFFFFF
ALL_STATES = 0xFFFFFFFF
#: In a reply: netlink header (16) + inet_diag_msg up to idiag_uid (64), then the inode.
UID_OFFSET = 16 + 64


@dataclass(frozen=True)
class LocalPeer:
    """The client's socket found on this host: its creator's uid, or None when the socket
    has no owner any more (closed by its process)."""

    uid: int | None


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    addr = ipaddress.ip_address(text.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        return addr.ipv4_mapped
    return addr


def _forms(ip: str) -> list[tuple[int, bytes]]:
    """(family, 16 address bytes) the client's socket may have: an IPv4 address may sit
    in an IPv4 socket or, v4-mapped, in an IPv6 one."""
    addr = _ip(ip)
    if isinstance(addr, ipaddress.IPv4Address):
        mapped = ipaddress.IPv6Address("::ffff:" + str(addr)).packed
        return [(socket.AF_INET, addr.packed + bytes(12)), (socket.AF_INET6, mapped)]
    return [(socket.AF_INET6, addr.packed)]


def _ask_kernel(peer: tuple[str, int], ours: tuple[str, int]) -> LocalPeer | None:
    """The sock_diag query for the one TCP socket going from ``peer`` to ``ours``."""
    ends = dict(_forms(ours[0]))
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG) as nl:
        nl.settimeout(1.0)
        for family, src in _forms(peer[0]):
            if family not in ends:
                continue
            sockid = struct.pack("!HH16s16s", peer[1], ours[1], src, ends[family])
            sockid += struct.pack("=III", 0, NO_COOKIE, NO_COOKIE)
            body = struct.pack("=BBBBI", family, socket.IPPROTO_TCP, 0, 0, ALL_STATES) + sockid
            head = struct.pack("=IHHII", 16 + len(body), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST, 1, 0)
            nl.send(head + body)
            reply = nl.recv(8192)
            if struct.unpack_from("=H", reply, 4)[0] == NLMSG_ERROR:
                continue  # no such socket in this family (ENOENT)
            uid, inode = struct.unpack_from("=II", reply, UID_OFFSET)
            return LocalPeer(uid if inode else None)
    return None


def _hex(packed: bytes) -> str:
    """Address bytes as /proc/net/tcp prints them: 32-bit words in host order, hex."""
    return "".join(f"{w:08X}" for w in struct.unpack(f"={len(packed) // 4}I", packed))


def _read_tables(peer: tuple[str, int], ours: tuple[str, int]) -> LocalPeer | None:
    """The same answer from ``/proc/net/tcp{,6}`` (slower: the whole table is printed)."""
    ends = dict(_forms(ours[0]))
    keys = []
    for family, src in _forms(peer[0]):
        if family in ends:
            size = 4 if family == socket.AF_INET else 16
            keys.append(
                f" {_hex(src[:size])}:{peer[1]:04X} {_hex(ends[family][:size])}:{ours[1]:04X} "
            )
    for table in TABLES:
        try:
            text = table.read_text()
        except OSError:
            continue
        for key in keys:
            at = text.find(key)
            if at >= 0:
                # sl local rem st queues tr retrnsmt uid timeout inode
                fields = text[at : text.find("\n", at)].split()
                uid, inode = int(fields[6]), int(fields[8])
                return LocalPeer(uid if inode else None)
    return None


def local_peer(peer: tuple[str, int], ours: tuple[str, int]) -> LocalPeer | None:
    """The client at ``peer`` connected to our ``ours`` end, if its socket is on this host;
    None when it is not (a remote client)."""
    try:
        return _ask_kernel(peer, ours)
    except (OSError, struct.error):
        return _read_tables(peer, ours)


def is_loopback(ip: str) -> bool:
    try:
        return _ip(ip).is_loopback
    except ValueError:
        return False
