"""POSIX ACLs read and changed in-process, through the ``system.posix_acl_*`` extended
attributes the kernel keeps them in (the format of ``linux/posix_acl_xattr.h``).

:func:`grant_tree` does what ``setfacl -R -m user:<uid>:rwx,default:user:<uid>:rwx`` does
(the admin's access to every deployed workshop, SPEC 4.3 rule 7) without a process per
deployment: the same entries, the same recomputed mask, the same default ACL started from
the folder's base entries, symbolic links below the top skipped.  ``tests/test_acl.py``
compares the bytes with the real ``setfacl``.
"""

from __future__ import annotations

import errno
import functools
import operator
import os
import stat
import struct
from pathlib import Path

ACCESS = "system.posix_acl_access"
DEFAULT = "system.posix_acl_default"

USER_OBJ, USER, GROUP_OBJ, GROUP, MASK, OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
VERSION = 2
UNDEFINED_ID = 0xFFFFFFFF
_NAMED = (USER, GROUP)
_GROUP_CLASS = (USER, GROUP_OBJ, GROUP)  # the entries the mask limits
_HEADER = struct.Struct("<I")
_ENTRY = struct.Struct("<HHI")

#: An ACL: ``(tag, id) -> permission bits`` (id ``UNDEFINED_ID`` for unnamed entries).
Acl = dict[tuple[int, int], int]


def decode(data: bytes) -> Acl:
    """The entries of an ACL extended attribute's value."""
    if len(data) < _HEADER.size or (len(data) - _HEADER.size) % _ENTRY.size:
        raise ValueError("not a POSIX ACL attribute (bad length)")
    (version,) = _HEADER.unpack_from(data)
    if version != VERSION:
        raise ValueError(f"POSIX ACL attribute version {version}, expected {VERSION}")
    return {
        (tag, ident if tag in _NAMED else UNDEFINED_ID): perm
        for tag, perm, ident in _ENTRY.iter_unpack(data[_HEADER.size :])
    }


def encode(acl: Acl) -> bytes:
    """The attribute value of ``acl``, entries in the order the kernel requires."""
    return _HEADER.pack(VERSION) + b"".join(
        _ENTRY.pack(tag, perm, ident) for (tag, ident), perm in sorted(acl.items())
    )


def from_mode(mode: int) -> Acl:
    """The minimal ACL the permission bits of ``mode`` stand for."""
    return {
        (USER_OBJ, UNDEFINED_ID): (mode >> 6) & 7,
        (GROUP_OBJ, UNDEFINED_ID): (mode >> 3) & 7,
        (OTHER, UNDEFINED_ID): mode & 7,
    }


def read(path: str | Path, attr: str = ACCESS) -> Acl:
    """The ACL ``attr`` of ``path`` (not following a symbolic link); {} when it has none."""
    try:
        return decode(os.getxattr(path, attr, follow_symlinks=False))
    except OSError as exc:
        if exc.errno in (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP):
            return {}
        raise


def with_mask(acl: Acl) -> Acl:
    """``acl`` with its mask recomputed as ``setfacl`` does: the union of the entries it
    limits (owning group, named users and groups)."""
    limited = (p for (tag, _), p in acl.items() if tag in _GROUP_CLASS)
    return {**acl, (MASK, UNDEFINED_ID): functools.reduce(operator.or_, limited, 0)}


def grant(path: str | Path, uid: int, perm: int = 7, *, info: os.stat_result | None = None) -> None:
    """``setfacl -m user:<uid>:<perm>`` on ``path``, plus ``default:user:<uid>:<perm>``
    when it is a folder.  A folder with no default ACL gets one started from its access
    ACL's base entries (owner, owning group, others), as ``setfacl`` starts it."""
    info = info or os.lstat(path)
    access = read(path, ACCESS) or from_mode(info.st_mode)
    changed = dict(access)
    changed[(USER, uid)] = perm
    os.setxattr(path, ACCESS, encode(with_mask(changed)), follow_symlinks=False)
    if stat.S_ISDIR(info.st_mode):
        default = read(path, DEFAULT) or {
            key: p for key, p in access.items() if key[0] in (USER_OBJ, GROUP_OBJ, OTHER)
        }
        default[(USER, uid)] = perm
        os.setxattr(path, DEFAULT, encode(with_mask(default)), follow_symlinks=False)


def grant_tree(root: str | Path, uid: int, perm: int = 7) -> None:
    """:func:`grant` on ``root`` and everything below it; symbolic links below ``root``
    are skipped, never followed (``setfacl -R``'s default walk)."""
    root = os.path.realpath(root)  # a link given as the top is followed, as setfacl does
    grant(root, uid, perm)
    for folder, dirs, files in os.walk(root):
        for name in (*dirs, *files):
            path = os.path.join(folder, name)
            info = os.lstat(path)
            if not stat.S_ISLNK(info.st_mode):
                grant(path, uid, perm, info=info)
