"""wod/acl.py against the real ``setfacl``: the same bytes in every ACL attribute and the
same modes, on a tree with the cases deployments meet (modes, inherited default ACLs,
existing named entries, links, a FIFO)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from wod import acl

pytestmark = pytest.mark.skipif(
    shutil.which("setfacl") is None, reason="setfacl (package acl) not installed"
)

ADMIN_UID = 4242  # setfacl takes numeric ids of users that need not exist


def _tree(root: Path) -> None:
    root.mkdir()
    (root / "nb.ipynb").write_text("{}")
    (root / "nb.ipynb").chmod(0o644)
    (root / "run.sh").write_text("#!/bin/sh\n")
    (root / "run.sh").chmod(0o755)
    (root / "secret").write_text("x")
    (root / "secret").chmod(0o600)
    sub = root / "sub" / "deeper"
    sub.mkdir(parents=True)
    (root / "sub").chmod(0o750)
    (sub / "data.csv").write_text("a,b\n")
    # A folder that already has a default ACL and a named group (inherited by new files).
    shared = root / "shared"
    shared.mkdir(mode=0o770)
    subprocess.run(["setfacl", "-m", "g:4343:r-x,d:g:4343:r-x,d:o::---", str(shared)], check=True)
    (shared / "inherited.txt").write_text("y")
    # A folder with a named entry in its access ACL only: its new default ACL starts from
    # the base entries, not the named ones.
    (root / "named").mkdir(mode=0o755)
    subprocess.run(["setfacl", "-m", "g:4343:rwx", str(root / "named")], check=True)
    # The admin already listed with fewer rights: replaced, not duplicated.
    (root / "partial").write_text("z")
    subprocess.run(["setfacl", "-m", f"u:{ADMIN_UID}:r--", str(root / "partial")], check=True)
    os.mkfifo(root / "pipe", 0o640)
    (root / "to-sub").symlink_to("sub")
    (root / "to-nb").symlink_to("nb.ipynb")
    (root / "dangling").symlink_to("missing")


def _snapshot(root: Path) -> dict[str, tuple[int, bytes | None, bytes | None]]:
    out = {}
    for folder, dirs, files in os.walk(root):
        for name in ["", *dirs, *files]:
            path = os.path.join(folder, name) if name else folder
            info = os.lstat(path)
            attrs = []
            for attr in (acl.ACCESS, acl.DEFAULT):
                try:
                    attrs.append(os.getxattr(path, attr, follow_symlinks=False))
                except OSError:
                    attrs.append(None)
            out[os.path.relpath(path, root)] = (info.st_mode, *attrs)
    return out


def test_grant_tree_writes_what_setfacl_writes(tmp_path):
    reference, ours = tmp_path / "setfacl", tmp_path / "ours"
    _tree(reference)
    _tree(ours)
    spec = f"user:{ADMIN_UID}:rwx,default:user:{ADMIN_UID}:rwx"
    subprocess.run(["setfacl", "-R", "-m", spec, str(reference)], check=True)

    acl.grant_tree(ours, ADMIN_UID)

    expected, got = _snapshot(reference), _snapshot(ours)
    assert got.keys() == expected.keys()
    for path in expected:
        assert got[path] == expected[path], path
    # What an admin relies on: full rights on every file and folder, kept by new files.
    sub = acl.read(ours / "sub", acl.DEFAULT)
    assert sub[(acl.USER, ADMIN_UID)] == 7
    assert acl.read(ours / "secret")[(acl.USER, ADMIN_UID)] == 7
    assert stat.S_IMODE(os.lstat(ours / "secret").st_mode) == 0o670  # mask rwx shows as g
    assert acl.read(ours / "to-nb") == {}  # the link itself has no ACL; its target has


def test_decode_refuses_what_is_not_an_acl():
    with pytest.raises(ValueError, match="bad length"):
        acl.decode(b"\x02\x00\x00\x00\x01")
    with pytest.raises(ValueError, match="version 3"):
        acl.decode(b"\x03\x00\x00\x00")


def test_encode_orders_entries_as_the_kernel_requires(tmp_path):
    path = tmp_path / "f"
    path.write_text("")
    entries = {
        (acl.OTHER, acl.UNDEFINED_ID): 0,
        (acl.USER, ADMIN_UID): 7,
        (acl.MASK, acl.UNDEFINED_ID): 7,
        (acl.USER_OBJ, acl.UNDEFINED_ID): 6,
        (acl.GROUP_OBJ, acl.UNDEFINED_ID): 4,
    }
    os.setxattr(path, acl.ACCESS, acl.encode(entries))  # EINVAL if out of order
    assert acl.read(path) == entries
    shown = subprocess.run(
        ["getfacl", "-cpn", str(path)], capture_output=True, text=True, check=True
    )
    assert f"user:{ADMIN_UID}:rwx" in shown.stdout.split()
