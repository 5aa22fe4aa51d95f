"""Deployment into a home (SPEC 4.3): what is rendered, copied, generated, and never left half.

Uses the bundled samples (run anywhere), a hand-made workshop exercising every rule, and the
shared fixture workshops; as root, real accounts for ownership and the admin ACL.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import stat
import subprocess
from pathlib import Path

import pytest

from wod.content.deploy import WORKSPACE, plan
from wod.content.service import Content
from wod.content.templating import TemplateFailure
from wod.errors import Permanent, Rejected
from wod.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]


def make_settings(tmp: Path, notebooks: Path, **values):
    return load_settings(
        None,
        environ={},
        notebooks_dir=notebooks,
        ansible_dir=ROOT / "wod" / "samples" / "ansible",
        state_dir=tmp / "state",
        students_dir=tmp / "students",
        **values,
    )


@pytest.fixture
def content(tmp_path: Path, samples_dir: Path) -> Content:
    return Content(make_settings(tmp_path, samples_dir))


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "students" / "student3"
    path.mkdir(parents=True)
    return path


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_sample_deploy_personalises_notebooks(content: Content, home: Path) -> None:
    report = content.deploy("WKSHP-Sample101", 3, home, uid=None, gid=None, password="Pw-42")
    ws = home / "WKSHP-Sample101"
    nb = json.loads((ws / "1-Sample-Notebook.ipynb").read_text())
    text = "".join("".join(c["source"]) for c in nb["cells"])
    assert "student3" in text and "Pw-42" in text and "192.0.2.11:8888" in text
    assert "Hello {{ name }}!" in text  # the raw block reaches the student as written
    assert (ws / "NOTES.md").read_text().count("{{ STDID }}") == 1  # .md copied, not rendered
    assert (ws / "Pictures" / "sample-logo.svg").read_bytes() == (
        content.resolve("WKSHP-Sample101") / "Pictures" / "sample-logo.svg"
    ).read_bytes()
    checkpoint = ws / ".ipynb_checkpoints" / "0-ReadMeFirst-checkpoint.ipynb"
    assert checkpoint.read_bytes() == (ws / "0-ReadMeFirst.ipynb").read_bytes()
    assert mode(ws / "wod-generate-pdf.sh") == 0o755
    assert "nbconvert --to pdf" in (ws / "wod-generate-pdf.sh").read_text()
    workspace = json.loads((home / WORKSPACE).read_text())
    assert "WKSHP-Sample101/0-ReadMeFirst.ipynb" in json.dumps(workspace)
    assert (home / WORKSPACE).read_text().endswith("\n")
    assert mode(home / ".jupyter") == 0o751 and mode(home / WORKSPACE) == 0o644
    assert (report.rendered, report.copied) == (2, 3) and report.bytes > 0
    assert report.seconds < 1.0
    assert [p.name for p in home.iterdir() if p.name.startswith(".wod-")] == []


def test_challenge_uses_workshop_folder_and_mode(content: Content, home: Path) -> None:
    content.deploy("CHLG-Sample201", 3, home, uid=None, gid=None)
    text = (home / "WKSHP-Sample201" / "0-ReadMeFirst.ipynb").read_text()
    assert "challenge" in text and "step by step" not in text
    script = home / "WKSHP-Sample201" / "lab-setup.sh"
    assert "student3 on 192.0.2.21" in script.read_text() and mode(script) == 0o644


def test_undefined_variable_leaves_previous_copy_intact(content: Content, home: Path) -> None:
    content.deploy("WKSHP-Sample101", 3, home, uid=None, gid=None, password="first")
    before = (home / "WKSHP-Sample101" / "1-Sample-Notebook.ipynb").read_bytes()
    with pytest.raises(TemplateFailure) as info:
        content.deploy("WKSHP-Sample101", 3, home, uid=None, gid=None)  # no PASSSTU
    assert info.value.variable == "PASSSTU" and info.value.line
    assert "1-Sample-Notebook.ipynb" in str(info.value)
    assert (home / "WKSHP-Sample101" / "1-Sample-Notebook.ipynb").read_bytes() == before
    assert sorted(p.name for p in home.iterdir()) == [".jupyter", "WKSHP-Sample101"]


def test_undefined_variable_on_first_deploy_leaves_nothing(content: Content, home: Path) -> None:
    with pytest.raises(Permanent):
        content.deploy("WKSHP-Sample101", 3, home, uid=None, gid=None)
    assert list(home.iterdir()) == []


def test_redeploy_replaces_previous_copy(content: Content, home: Path) -> None:
    content.deploy("WKSHP-Sample101", 3, home, uid=None, gid=None, password="a")
    (home / "WKSHP-Sample101" / "student-notes.txt").write_text("mine")
    content.deploy("WKSHP-Sample101", 3, home, uid=None, gid=None, password="b")
    assert not (home / "WKSHP-Sample101" / "student-notes.txt").exists()
    assert "`b`" in (home / "WKSHP-Sample101" / "1-Sample-Notebook.ipynb").read_text()


def test_unknown_or_invalid_workshop_is_rejected(content: Content, home: Path) -> None:
    for name in ("WKSHP-Nope", "../etc", "WKSHP-../../x", "WKSHP-a/b", "rm -rf"):
        with pytest.raises(Rejected):
            content.deploy(name, 3, home, uid=None, gid=None)


@pytest.fixture
def rules_workshop(tmp_path: Path) -> Path:
    """A workshop with one file for each rule of SPEC 4.3."""
    tree = tmp_path / "notebooks"
    ws = tree / "WKSHP-Rules"
    (ws / "sub" / ".ipynb_checkpoints").mkdir(parents=True)
    (ws / ".hidden").mkdir()
    files = {
        "0-ReadMeFirst.ipynb": '{"s": "{{ STDID }}"}\n',
        "a.py": "print({{ STDID }})\n",
        "b.yaml": "k: {{ STDID }}\n",
        "c.sh": "echo {{ STDID }}\n",
        "d.src": "{{ STDID }}",
        "e.tf": "v={{ STDID }}\n",
        "f.env": "X={{ STDID }}\n",
        "Variables.ps1": "$x={{ STDID }}\n",
        "g.yml": "k: {{ STDID }}\n",
        "h.j2": "{{ STDID }}\n",
        "i.txt": "{{ STDID }}\n",
        "j.md": "{{ STDID }}\n",
        "K.SH": "{{ STDID }}\n",
        ".hid.sh": "{{ STDID }}\n",
        ".hid.ipynb": "{{ STDID }}\n",
        ".hid.py": "{{ STDID }}\n",
        "old-checkpoint.ipynb": "{{ STDID }}\n",
        "sub/n.ipynb": "{{ STDID }}\n",
        "sub/.ipynb_checkpoints/helper.py": "{{ STDID }}\n",
        "sub/.ipynb_checkpoints/n-checkpoint.ipynb": "{{ STDID }}\n",
        ".hidden/x.sh": "{{ STDID }}\n",
        ".hidden/y.txt": "{{ STDID }}\n",
    }
    for rel, text in files.items():
        (ws / rel).write_text(text)
    (ws / "c.sh").chmod(0o755)
    (ws / "secret.txt").write_text("s")
    (ws / "secret.txt").chmod(0o600)
    (ws / "latin1.txt").write_bytes(b"caf\xe9\n")
    (ws / "latin1.sh").write_bytes(b"caf\xe9 {{ STDID }}\n")
    os.symlink("i.txt", ws / "link.txt")
    os.symlink("a.py", ws / "link.py")
    os.utime(ws / "i.txt", (1_000_000_000, 1_000_000_000))
    return tree


def test_rules_of_what_is_rendered_copied_and_dropped(
    tmp_path: Path, rules_workshop: Path, home: Path
) -> None:
    content = Content(make_settings(tmp_path, rules_workshop))
    content.deploy("WKSHP-Rules", 9, home, uid=None, gid=None)
    ws = home / "WKSHP-Rules"
    rendered = [
        "0-ReadMeFirst.ipynb",
        "a.py",
        "b.yaml",
        "c.sh",
        "d.src",
        "e.tf",
        "f.env",
        "Variables.ps1",
        "sub/n.ipynb",
        "sub/.ipynb_checkpoints/helper.py",
        ".hidden/x.sh",
    ]
    for rel in rendered:
        assert "9" in (ws / rel).read_text() and "{{" not in (ws / rel).read_text(), rel
        assert mode(ws / rel) == 0o644, rel
    for rel in ("g.yml", "h.j2", "i.txt", "j.md", "K.SH", ".hid.sh", ".hidden/y.txt"):
        assert "{{ STDID }}" in (ws / rel).read_text(), rel
    for rel in (
        ".hid.ipynb",
        ".hid.py",
        "old-checkpoint.ipynb",
        "sub/.ipynb_checkpoints/n-checkpoint.ipynb",
    ):
        assert not (ws / rel).exists(), rel
    assert (ws / "d.src").read_text() == "9"
    assert mode(ws / "secret.txt") == 0o600
    assert (ws / "latin1.txt").read_bytes() == b"caf\xe9\n"
    assert (ws / "latin1.sh").read_bytes() == b"caf\xe9 9\n"
    assert os.readlink(ws / "link.txt") == "i.txt" and not (ws / "link.py").is_symlink()
    assert (ws / "i.txt").stat().st_mtime == 1_000_000_000


def test_dry_run_lists_and_checks_without_writing(
    tmp_path: Path, rules_workshop: Path, home: Path
) -> None:
    content = Content(make_settings(tmp_path, rules_workshop))
    report = content.deploy("WKSHP-Rules", 9, home, uid=None, gid=None, dry_run=True)
    actions = dict(report.files)
    assert actions["a.py"] == "render" and actions["i.txt"] == "copy"
    assert ".hid.py" not in actions and list(home.iterdir()) == []


def test_workshop_without_readme_fails_cleanly(tmp_path: Path, home: Path) -> None:
    ws = tmp_path / "nb" / "WKSHP-NoReadme"
    ws.mkdir(parents=True)
    (ws / "1.ipynb").write_text("{}")
    content = Content(make_settings(tmp_path, tmp_path / "nb"))
    with pytest.raises(Permanent, match="0-ReadMeFirst"):
        content.deploy("WKSHP-NoReadme", 1, home, uid=None, gid=None)
    assert list(home.iterdir()) == []


def test_private_tree_used_when_public_lacks_workshop(
    tmp_path: Path, samples_dir: Path, home: Path
) -> None:
    private = tmp_path / "private"
    (private / "WKSHP-Secret").mkdir(parents=True)
    (private / "WKSHP-Secret" / "0-ReadMeFirst.ipynb").write_text("{{ WORKSHOP }}\n")
    content = Content(make_settings(tmp_path, samples_dir, private_notebooks_dir=private))
    assert content.resolve("WKSHP-Secret") == private / "WKSHP-Secret"
    content.deploy("WKSHP-Secret", 2, home, uid=None, gid=None)
    assert (home / "WKSHP-Secret" / "0-ReadMeFirst.ipynb").read_text() == "WKSHP-Secret\n"


def test_custom_workspace_template(tmp_path: Path, samples_dir: Path, home: Path) -> None:
    template = tmp_path / "lab.j2"
    template.write_text('{"open": "{{ WORKSHOP }}/0-ReadMeFirst.ipynb"}\n')
    content = Content(make_settings(tmp_path, samples_dir, workspace_template=template))
    content.deploy("WKSHP-Sample101", 3, home, uid=None, gid=None, password="p")
    assert (home / WORKSPACE).read_text() == '{"open": "WKSHP-Sample101/0-ReadMeFirst.ipynb"}\n'


@pytest.mark.fixtures
def test_fixture_workshops_deploy_with_their_variables(
    tmp_path: Path, fixtures_dir: Path, home: Path
) -> None:
    from tests.test_templating_oracle import fixture_variables

    content = Content(make_settings(tmp_path, fixtures_dir))
    for ws in ("WKSHP-API101", "WKSHP-Docker101", "WKSHP-GO101", "WKSHP-Podman201"):
        report = content.deploy(ws, 5, home, uid=None, gid=None, extra=fixture_variables(5))
        renders = [e for e in plan(fixtures_dir / ws) if e.action == "render"]
        assert report.rendered == len(renders)
        assert (home / ws / ".ipynb_checkpoints" / "0-ReadMeFirst-checkpoint.ipynb").is_file()
    with pytest.raises(TemplateFailure) as info:  # needs variables only a private repo has
        content.deploy("WKSHP-Docker101", 5, home, uid=None, gid=None)
    assert info.value.variable
    assert (home / "WKSHP-Docker101" / "0-ReadMeFirst.ipynb").is_file()


def acl(path: Path) -> list[str]:
    """The ACL entries of ``path`` as getfacl lists them (no header, no effective rights)."""
    out = subprocess.run(
        ["getfacl", "--omit-header", "--absolute-names", "--no-effective", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line for line in out.splitlines() if line]


def _useradd(name: str) -> pwd.struct_passwd:
    subprocess.run(
        ["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
        check=True,
        capture_output=True,
    )
    return pwd.getpwnam(name)


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chown, setfacl, useradd)")
def test_ownership_and_admin_acl_as_root(tmp_path: Path, rules_workshop: Path, home: Path) -> None:
    suffix = secrets.token_hex(3)
    student, admin = f"wodt{suffix}s", f"wodt{suffix}a"
    try:
        st = _useradd(student)
        _useradd(admin)
        # As upstream's check leaves every student home: the admin's ACL, also by default.
        subprocess.run(
            ["setfacl", "-m", f"user:{admin}:rwx,default:user:{admin}:rwx", str(home)],
            check=True,
        )
        content = Content(make_settings(tmp_path, rules_workshop, admin_user=admin))
        content.deploy("WKSHP-Rules", 9, home, uid=st.pw_uid, gid=st.pw_gid)
        ws = home / "WKSHP-Rules"
        for path in [ws, *ws.rglob("*")]:
            assert path.lstat().st_uid == st.pw_uid, path
        assert mode(ws / "a.py") == 0o774 and mode(ws / "i.txt") == 0o774
        assert mode(ws / "secret.txt") == 0o770
        assert mode(ws) == 0o775 and mode(ws / "sub") == 0o775
        assert mode(ws / ".ipynb_checkpoints") == 0o771
        assert mode(ws / "wod-generate-pdf.sh") == 0o775
        # Every file and folder of the workshop, generated ones included: the admin ACL,
        # not masked; folders pass it on by default (SPEC 4.3 rule 7).
        for path in [ws, *ws.rglob("*")]:
            if path.is_symlink():
                continue
            entries = acl(path)
            assert f"user:{admin}:rwx" in entries and "mask::rwx" in entries, (path, entries)
            if path.is_dir():
                assert f"default:user:{admin}:rwx" in entries, (path, entries)
        # The JupyterLab folders are created in the home, as upstream's are: they inherit the
        # home's default ACL, masked by their 0751 mode.
        for path in (home / ".jupyter", home / ".jupyter/lab", home / WORKSPACE.parent):
            entries = acl(path)
            assert f"user:{admin}:rwx" in entries and "mask::r-x" in entries, (path, entries)
            assert f"default:user:{admin}:rwx" in entries, (path, entries)
        # The workspace file, like upstream's (written elsewhere, renamed in): no extended
        # ACL, plain 0644.
        assert acl(home / WORKSPACE) == ["user::rw-", "group::r--", "other::r--"]
        assert mode(home / WORKSPACE) == 0o644
        assert (home / WORKSPACE).stat().st_uid == st.pw_uid
        assert (home / ".jupyter").stat().st_uid == st.pw_uid
    finally:
        for name in (student, admin):
            subprocess.run(["userdel", name], capture_output=True)


def test_dry_run_reports_every_failing_template_at_once(tmp_path: Path, home: Path) -> None:
    ws = tmp_path / "nb" / "WKSHP-Broken"
    ws.mkdir(parents=True)
    (ws / "0-ReadMeFirst.ipynb").write_text('{"s": "{{ STDID }}"}\n')
    (ws / "1-a.ipynb").write_text("ok\n{{ NOPE_A }}\n")
    (ws / "2-b.py").write_text("{% if %}\n")
    (ws / "3-c.sh").write_text("a\nb\n{{ hostvars[inventory_hostname]['NOPE-C'] }}\n")
    content = Content(make_settings(tmp_path, tmp_path / "nb"))
    with pytest.raises(TemplateFailure) as info:
        content.deploy("WKSHP-Broken", 1, home, uid=None, gid=None, dry_run=True)
    message = str(info.value)
    assert "WKSHP-Broken/1-a.ipynb, line 2: undefined variable 'NOPE_A'" in message
    assert "WKSHP-Broken/2-b.py, line 1: template syntax error" in message
    assert "WKSHP-Broken/3-c.sh, line 3: undefined variable 'NOPE-C'" in message
    assert [f.variable for f in info.value.failures] == ["NOPE_A", None, "NOPE-C"]
    assert list(home.iterdir()) == []
    from click.testing import CliRunner

    from wod.cli import _register, cli

    config = tmp_path / "wod.yml"
    config.write_text(
        json.dumps(
            {
                "notebooks_dir": str(tmp_path / "nb"),
                "students_dir": str(tmp_path / "students"),
                "state_dir": str(tmp_path / "state"),
            }
        )
    )
    _register()
    shown = CliRunner().invoke(
        cli, ["-c", str(config), "deploy", "WKSHP-Broken", "-s", "1", "--dry-run"]
    )
    assert shown.exit_code == 1
    for name in ("1-a.ipynb, line 2", "2-b.py, line 1", "3-c.sh, line 3"):
        assert name in shown.output


def test_generated_files_replace_what_the_workshop_holds_under_their_names(
    tmp_path: Path, home: Path
) -> None:
    """A workshop shipping its own ``.ipynb_checkpoints`` (a folder 0755, a file, or a symlink
    out of the home) or ``wod-generate-pdf.sh`` still gets the generated ones (SPEC 4.3 rule
    6), nothing is written through the symlink, and the checkpoints folder is 0751."""
    nb = tmp_path / "nb"
    outside = tmp_path / "outside"
    outside.mkdir()
    for case in ("Folder", "File", "Link"):
        ws = nb / f"WKSHP-{case}"
        ws.mkdir(parents=True)
        (ws / "0-ReadMeFirst.ipynb").write_text('{"s": "{{ STDID }}"}\n')
        (ws / "wod-generate-pdf.sh").write_text("echo own helper\n")
    (nb / "WKSHP-Folder" / ".ipynb_checkpoints").mkdir(mode=0o755)
    (nb / "WKSHP-Folder" / ".ipynb_checkpoints" / "helper.py").write_text("{{ STDID }}\n")
    (nb / "WKSHP-File" / ".ipynb_checkpoints").write_text("not a folder")
    os.symlink(outside, nb / "WKSHP-Link" / ".ipynb_checkpoints")
    content = Content(make_settings(tmp_path, nb))
    for case in ("Folder", "File", "Link"):
        content.deploy(f"WKSHP-{case}", 5, home, uid=None, gid=None)
        ws = home / f"WKSHP-{case}"
        checkpoints = ws / ".ipynb_checkpoints"
        assert checkpoints.is_dir() and not checkpoints.is_symlink(), case
        assert mode(checkpoints) == 0o751, case
        assert (checkpoints / "0-ReadMeFirst-checkpoint.ipynb").read_text() == '{"s": "5"}\n'
        assert "nbconvert --to pdf" in (ws / "wod-generate-pdf.sh").read_text(), case
        assert mode(ws / "wod-generate-pdf.sh") == 0o755
    assert (home / "WKSHP-Folder" / ".ipynb_checkpoints" / "helper.py").read_text() == "5\n"
    assert list(outside.iterdir()) == []


def test_workspace_folder_fixed_and_links_in_the_home_not_followed(
    tmp_path: Path, content: Content, home: Path
) -> None:
    """An existing ``.jupyter/lab/workspaces`` gets mode 0751 (SPEC 4.3 rule 2) and a
    symlink the home holds on that path is replaced, never written through."""
    (home / ".jupyter" / "lab" / "workspaces").mkdir(parents=True)
    (home / ".jupyter" / "lab" / "workspaces").chmod(0o700)
    content.deploy("WKSHP-Sample101", 3, home, uid=None, gid=None, password="p")
    assert mode(home / ".jupyter" / "lab" / "workspaces") == 0o751
    assert "WKSHP-Sample101/0-ReadMeFirst.ipynb" in (home / WORKSPACE).read_text()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    other = tmp_path / "students" / "student4"
    other.mkdir()
    os.symlink(elsewhere, other / ".jupyter")
    content.deploy("WKSHP-Sample101", 4, other, uid=None, gid=None, password="p")
    assert not (other / ".jupyter").is_symlink() and (other / WORKSPACE).is_file()
    assert list(elsewhere.iterdir()) == []
