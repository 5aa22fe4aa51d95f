"""Variable layers (SPEC 4.1) and Ansible-vault files, checked against the real ansible-vault."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from wod.content import variables as variables_mod
from wod.content import vault
from wod.content.service import Content
from wod.content.variables import load_file
from wod.errors import Permanent
from wod.settings import load_settings

BIN = Path(sys.executable).parent
needs_vault = pytest.mark.skipif(
    not (BIN / "ansible-vault").exists(), reason="ansible-vault (test dependency) not installed"
)


def ansible_vault(*args: str, cwd: Path, input: str | None = None) -> str:
    env = dict(os.environ, ANSIBLE_HOME=str(cwd / ".ansible"), ANSIBLE_NOCOLOR="1")
    done = subprocess.run(
        [str(BIN / "ansible-vault"), *args],
        cwd=cwd,
        env=env,
        input=input,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """Public and private ansible folders with one value per layer."""
    pub, priv = tmp_path / "ansible", tmp_path / "private"
    for base in (pub, priv):
        (base / "group_vars").mkdir(parents=True)
        (base / "prod").mkdir()
    (priv / "prod" / "pass").mkdir()
    (tmp_path / "notebooks" / "WKSHP-Demo").mkdir(parents=True)
    files = {
        pub / "group_vars" / "prod.yml": {"G": "group", "ALL": "group", "W": "group"},
        pub / "prod" / "variables_WKSHP-Demo.yml": {
            "W": "public-ws",
            "WP": "public-ws",
            "IP-WKSHP-Demo": "10.1.1.1",
        },
        priv / "prod" / "variables_WKSHP-Demo.yml": {"WP": "private-ws", "ST": "ws"},
        priv / "prod" / "variables_CHLG-Demo.yml": {"WP": "challenge"},
        priv / "prod" / "pass" / "variables_WKSHP-Demo_4.yml": {"ST": "student", "HTTPPORT": 8004},
        pub / "group_vars" / "all.yml": {
            "ALL": "public-all",
            "PA": "public-all",
            "URL": "http://{{ hostvars[inventory_hostname]['IP-WKSHP-Demo'] }}:{{ HTTPPORT }}/",
        },
        priv / "group_vars" / "all.yml": {"PA": "private-all"},
    }
    for path, values in files.items():
        path.write_text(yaml.safe_dump(values))
    return tmp_path


def make_content(base: Path, **values) -> Content:
    return Content(
        load_settings(
            None,
            environ={},
            notebooks_dir=base / "notebooks",
            ansible_dir=base / "ansible",
            private_ansible_dir=base / "private",
            inventory_group="prod",
            state_dir=base / "state",
            variables={"SETTING": "install", "ALL": "settings"},
            **values,
        )
    )


def test_layers_override_in_spec_order(tree: Path) -> None:
    content = make_content(tree)
    values = content.variables("WKSHP-Demo", 4, password="pw")
    assert values["G"] == "group"
    assert values["W"] == "public-ws"
    assert values["WP"] == "private-ws"
    assert values["ST"] == "student" and values["HTTPPORT"] == 8004
    assert values["ALL"] == "public-all" and values["PA"] == "private-all"
    assert values["SETTING"] == "install"
    assert values["PASSSTU"] == "pw"
    assert {k: values[k] for k in ("MODEWS", "DIR", "CHALLENGE", "WORKSHOP", "STDID")} == {
        "MODEWS": "WKSHP",
        "DIR": "",
        "CHALLENGE": "WKSHP-Demo",
        "WORKSHOP": "WKSHP-Demo",
        "STDID": "4",
    }
    assert "PASSSTU" not in content.variables("WKSHP-Demo", 4)


def test_challenge_reads_its_own_files(tree: Path) -> None:
    values = make_content(tree).variables("CHLG-Demo", 4)
    assert values["WP"] == "challenge" and values["MODEWS"] == "CHLG"
    assert values["WORKSHOP"] == "WKSHP-Demo" and values["CHALLENGE"] == "CHLG-Demo"
    assert "ST" not in values  # the per-student file of CHLG-Demo does not exist


def test_explain_templates_values_masks_secrets_and_names_origins(tree: Path) -> None:
    rows = {n: (v, o) for n, v, o in make_content(tree).explain("WKSHP-Demo", 4, password="pw")}
    assert rows["URL"][0] == "http://10.1.1.1:8004/"
    assert rows["PASSSTU"] == ("********", "request")
    assert rows["WP"][1].endswith("private/prod/variables_WKSHP-Demo.yml")
    assert rows["STDID"] == ("4", "runtime")


def test_write_student_variables_merges_plain(tree: Path) -> None:
    content = make_content(tree)
    path = content.write_student_variables("WKSHP-Demo", 4, {"PASSSTU": "new"})
    assert path == tree / "private" / "prod" / "pass" / "variables_WKSHP-Demo_4.yml"
    assert yaml.safe_load(path.read_text()) == {"ST": "student", "HTTPPORT": 8004, "PASSSTU": "new"}
    assert oct(path.stat().st_mode & 0o777) == "0o600"


@needs_vault
def test_student_file_is_vaulted_and_ansible_vault_can_read_it(tree: Path) -> None:
    (tree / "vault-pass").write_text("correct horse\n")
    content = make_content(tree, vault_password_file=tree / "vault-pass")
    path = content.write_student_variables("WKSHP-Demo", 6, {"PASSSTU": "s3cret", "PORT": 1})
    assert path.read_text().startswith("$ANSIBLE_VAULT;1.1;AES256")
    assert "s3cret" not in path.read_text()
    plain = ansible_vault(
        "view", "--vault-password-file", str(tree / "vault-pass"), str(path), cwd=tree
    )
    assert yaml.safe_load(plain) == {"PASSSTU": "s3cret", "PORT": 1}
    content.write_student_variables("WKSHP-Demo", 6, {"HTTPPORT": 8006})
    values = content.variables("WKSHP-Demo", 6)
    assert (values["PASSSTU"], values["PORT"], values["HTTPPORT"]) == ("s3cret", 1, 8006)


@needs_vault
@pytest.mark.parametrize("vault_id", [None, "prod"])
def test_files_encrypted_by_ansible_vault_are_read(tree: Path, vault_id: str | None) -> None:
    (tree / "vault-pass").write_text("s3cr3t-vault\n")
    target = tree / "private" / "prod" / "variables_WKSHP-Demo.yml"
    target.write_text("WP: from-vault\nPLAIN: 'é ü'\n")
    args = ["encrypt", "--vault-password-file", str(tree / "vault-pass")]
    if vault_id:
        args = ["encrypt", "--vault-id", f"{vault_id}@{tree / 'vault-pass'}"]
    ansible_vault(*args, str(target), cwd=tree)
    header = f"$ANSIBLE_VAULT;1.2;AES256;{vault_id}" if vault_id else "$ANSIBLE_VAULT;1.1;AES256"
    assert target.read_text().startswith(header)
    values = make_content(tree, vault_password_file=tree / "vault-pass").variables("WKSHP-Demo", 4)
    assert values["WP"] == "from-vault" and values["PLAIN"] == "é ü"


@needs_vault
def test_inline_vault_values_are_read(tree: Path) -> None:
    (tree / "vault-pass").write_text("inline-pass")
    snippet = ansible_vault(
        "encrypt_string",
        "--vault-password-file",
        str(tree / "vault-pass"),
        "--name",
        "TOKEN",
        "tok-123",
        cwd=tree,
    )
    path = tree / "private" / "group_vars" / "all.yml"
    path.write_text("PA: plain\n" + snippet)
    values = make_content(tree, vault_password_file=tree / "vault-pass").variables("WKSHP-Demo", 4)
    assert values["TOKEN"] == "tok-123" and values["PA"] == "plain"


@needs_vault
def test_wrong_or_missing_vault_password_is_a_clear_error(tree: Path) -> None:
    (tree / "vault-pass").write_text("right")
    (tree / "bad-pass").write_text("wrong")
    target = tree / "ansible" / "prod" / "variables_WKSHP-Demo.yml"
    ansible_vault(
        "encrypt", "--vault-password-file", str(tree / "vault-pass"), str(target), cwd=tree
    )
    with pytest.raises(Permanent, match="wrong vault password") as info:
        make_content(tree, vault_password_file=tree / "bad-pass").variables("WKSHP-Demo", 4)
    assert str(target) in str(info.value)
    with pytest.raises(Permanent, match="no vault_password_file"):
        make_content(tree).variables("WKSHP-Demo", 4)


def test_vault_round_trip_and_tampering(tmp_path: Path) -> None:
    text = vault.encrypt("A: 1\n", "pw", vault_id="x")
    assert vault.decrypt(text, "pw") == b"A: 1\n"
    lines = text.splitlines()
    lines[1] = lines[1][:-1] + ("0" if lines[1][-1] != "0" else "1")
    with pytest.raises(vault.VaultError):
        vault.decrypt("\n".join(lines), "pw")
    bad = tmp_path / "bad.yml"
    bad.write_text("- a list\n")
    with pytest.raises(Permanent, match="mapping"):
        load_file(bad, None)


PRECEDENCE_PLAYBOOK = """\
- hosts: all
  gather_facts: false
  tasks:
    - include_vars: "{{ PUBDIR }}/prod/variables_{{ CHALLENGE }}.yml"
    - include_vars: "{{ PRIVDIR }}/prod/variables_{{ CHALLENGE }}.yml"
    - include_vars: "{{ PRIVDIR }}/prod/pass/variables_{{ CHALLENGE }}_{{ STDID }}.yml"
    - template:
        src: "{{ TEMPLATE }}"
        dest: "{{ OUTPUT }}"
"""

# Layers lowest first, as upstream's ansible-playbook call stacks them; layer i defines
# P<i>..P<n>, so P<i> must come from layer i.  Lower layers also try to change runtime values
# (they must lose) and higher ones MODEWS/DIR (they must win); values are templated.
PRECEDENCE_LAYERS = [
    ("ansible/group_vars/prod.yml", {"WORKSHOP": "group", "STDID": "group"}),
    ("ansible/prod/variables_WKSHP-Demo.yml", {"CHALLENGE": "ws"}),
    ("private/prod/variables_WKSHP-Demo.yml", {"WORKSHOP": "private-ws"}),
    ("private/prod/pass/variables_WKSHP-Demo_4.yml", {"MODEWS": "student", "TPL": "{{ P0 }}"}),
    ("settings", {"DIR": "settings"}),
    ("ansible/group_vars/all.yml", {}),
    ("private/group_vars/all.yml", {"MODEWS": "private-all"}),
    ("private/generated/prod", {}),
    ("private/group_vars/prod.yml", {"DIR": "{{ STDID }}-{{ P8 }}"}),
]


@needs_vault
@pytest.mark.skipif(
    not (BIN / "ansible-playbook").exists(), reason="ansible-playbook not installed"
)
def test_precedence_matches_ansible_playbook(tmp_path: Path) -> None:
    """The same layered files given to ``ansible-playbook`` the way upstream calls it
    (inventory group variables, ``include_vars``, ``-e`` runtime values then ``-e @file``)
    and to us: every variable has the same value.  The per-student file is vaulted."""
    from wod.content.templating import Renderer

    (tmp_path / "vault-pass").write_text("layers\n")
    count = len(PRECEDENCE_LAYERS)
    settings_values: dict = {}
    for index, (rel, own) in enumerate(PRECEDENCE_LAYERS):
        values = {f"P{j}": f"L{index}" for j in range(index, count)} | own
        if rel == "settings":
            settings_values = values
            continue
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        text = yaml.safe_dump(values)
        if "/pass/" in rel:
            text = vault.encrypt(text, "layers")
        path.write_text(text)
    (tmp_path / "settings.yml").write_text(yaml.safe_dump(settings_values))
    (tmp_path / "notebooks" / "WKSHP-Demo").mkdir(parents=True)
    names = [f"P{i}" for i in range(count)]
    names += ["MODEWS", "DIR", "CHALLENGE", "WORKSHOP", "STDID", "TPL"]
    source = "".join(f"{n}={{{{ {n} }}}}\n" for n in names).encode()
    (tmp_path / "t.j2").write_bytes(source)

    content = Content(
        load_settings(
            None,
            environ={},
            notebooks_dir=tmp_path / "notebooks",
            ansible_dir=tmp_path / "ansible",
            private_ansible_dir=tmp_path / "private",
            inventory_group="prod",
            state_dir=tmp_path / "state",
            variables=settings_values,
            vault_password_file=tmp_path / "vault-pass",
        )
    )
    renderer = Renderer()
    ours = renderer.render(
        renderer.compile_source(source.decode()),
        content.template_variables("WKSHP-Demo", 4),
    )

    pub, priv = tmp_path / "ansible", tmp_path / "private"
    (pub / "inventory").write_text(
        f"[prod]\nlocalhost ansible_connection=local ansible_python_interpreter={sys.executable}\n"
    )
    (pub / "pb.yml").write_text(PRECEDENCE_PLAYBOOK)
    runtime = {"MODEWS": "WKSHP", "DIR": "", "CHALLENGE": "WKSHP-Demo"}
    runtime |= {"WORKSHOP": "WKSHP-Demo", "STDID": "4"}
    argv = [str(BIN / "ansible-playbook"), "-i", str(pub / "inventory"), str(pub / "pb.yml")]
    argv += ["--vault-password-file", str(tmp_path / "vault-pass")]
    for name, value in runtime.items():
        argv += ["-e", f"{name}={value}"]
    for extra in (
        tmp_path / "settings.yml",
        pub / "group_vars" / "all.yml",
        priv / "group_vars" / "all.yml",
        priv / "generated" / "prod",
        priv / "group_vars" / "prod.yml",
    ):
        argv += ["-e", f"@{extra}"]
    argv += ["-e", f"PUBDIR={pub} PRIVDIR={priv} TEMPLATE={tmp_path / 't.j2'}"]
    argv += ["-e", f"OUTPUT={tmp_path / 'ansible.out'}"]
    env = dict(
        os.environ,
        ANSIBLE_HOME=str(tmp_path / ".ansible"),
        ANSIBLE_LOCAL_TEMP=str(tmp_path / ".ansible" / "tmp"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_LOCALHOST_WARNING="False",
        PATH=f"{BIN}:{os.environ.get('PATH', '')}",
    )
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    theirs = (tmp_path / "ansible.out").read_bytes()
    assert ours.decode() == theirs.decode()
    assert b"P0=L0\n" in ours and b"P8=L8\n" in ours and b"DIR=4-L8\n" in ours


def test_vault_file_with_non_ascii_bytes_is_a_clear_error(tree: Path) -> None:
    """A vault file damaged by an editor (byte-order mark, stray accented byte) is refused
    with the file's name, never a decoding traceback."""
    (tree / "vault-pass").write_text("pw")
    target = tree / "private" / "prod" / "variables_WKSHP-Demo.yml"
    good = vault.encrypt("WP: x\n", "pw")
    for damaged in (
        b"\xef\xbb\xbf" + good.encode(),
        good.encode().replace(b"AES256\n", b"AES256\n\xe9"),
    ):
        target.write_bytes(damaged)
        with pytest.raises(vault.VaultError, match="damaged vault data") as info:
            make_content(tree, vault_password_file=tree / "vault-pass").variables("WKSHP-Demo", 4)
        assert str(target) in str(info.value)
    target.write_bytes(good.replace("\n", "\r\n").encode())  # CRLF (edited on Windows) is fine
    assert (
        make_content(tree, vault_password_file=tree / "vault-pass").variables("WKSHP-Demo", 4)["WP"]
        == "x"
    )


@needs_vault
def test_vars_masks_every_vaulted_value_whatever_its_name(tree: Path) -> None:
    """``wod vars`` masks values that were vault-encrypted (a whole vaulted file, or an
    inline ``!vault`` value, also inside a list), not only names that look secret; a plain
    value overriding a vaulted one is shown."""
    (tree / "vault-pass").write_text("vp")
    content = make_content(tree, vault_password_file=tree / "vault-pass")
    content.write_student_variables("WKSHP-Demo", 4, {"MLTOK": "tok-4", "HTTPPORT": 8004})
    snippet = ansible_vault(
        "encrypt_string",
        "--vault-password-file",
        str(tree / "vault-pass"),
        "--name",
        "APPCRED",
        "cred-1",
        cwd=tree,
    )
    listed = (
        ansible_vault(
            "encrypt_string", "--vault-password-file", str(tree / "vault-pass"), "in-list", cwd=tree
        )
        .strip()
        .replace("\n", "\n    ")
    )
    path = tree / "private" / "group_vars" / "all.yml"
    path.write_text(f"PA: plain\nHOSTS:\n  - {listed}\n{snippet}")
    (tree / "private" / "group_vars" / "prod.yml").write_text("HTTPPORT: 9000\n")
    rows = {n: v for n, v, _ in content.explain("WKSHP-Demo", 4)}
    assert rows["MLTOK"] == "********" and rows["APPCRED"] == "********"
    assert rows["HOSTS"] == "********"
    assert rows["PA"] == "plain" and rows["HTTPPORT"] == 9000
    assert content.variables("WKSHP-Demo", 4)["HOSTS"] == ["in-list"]


def test_a_variables_file_changed_in_place_is_read_again(tree: Path) -> None:
    """Parsed files are kept, but an edit is seen on the next job, even one that keeps the
    size and puts the modification time back."""
    content = make_content(tree)
    path = tree / "ansible" / "prod" / "variables_WKSHP-Demo.yml"
    assert content.variables("WKSHP-Demo", 4)["W"] == "public-ws"
    before = path.stat()
    path.write_text(path.read_text().replace("public-ws", "PUBLIC-WS"))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size
    assert content.variables("WKSHP-Demo", 4)["W"] == "PUBLIC-WS"
    path.unlink()
    assert content.variables("WKSHP-Demo", 4)["W"] == "group"


def test_values_of_a_kept_file_are_not_shared_between_jobs(tree: Path) -> None:
    """A caller changing the values it got does not change the next caller's."""
    content = make_content(tree)
    stack = variables_mod.layers(content.settings, "WKSHP-Demo", 4)
    for layer in stack:
        layer.values.clear()
    again = content.variables("WKSHP-Demo", 4)
    assert again["W"] == "public-ws" and again["ST"] == "student"


def test_student_file_rewritten_each_job_is_read_fresh(tree: Path) -> None:
    content = make_content(tree)
    for n in range(3):
        content.write_student_variables("WKSHP-Demo", 4, {"PASSSTU": f"pw{n}"})
        assert content.variables("WKSHP-Demo", 4)["PASSSTU"] == f"pw{n}"
