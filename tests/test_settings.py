"""Settings: one file + WOD_* environment, validated at start, every setting documented."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from wod.ops.init import init_install
from wod.settings import Settings, SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "wod.yml"
    path.write_text(text)
    return path


def test_file_values_upstream_aliases_and_relative_paths(tmp_path):
    path = write(tmp_path, "WODUSER: admin2\nWODSTUDDIR: homes\nuser_max: 40\nWODUSERMIN: 3\n")
    s = load_settings(path, environ={})
    assert s.admin_user == "admin2"
    assert s.students_dir == tmp_path.resolve() / "homes"
    assert (s.user_min, s.user_max) == (3, 40)
    assert s.home(7) == tmp_path.resolve() / "homes" / "student7"


def test_environment_overrides_file(tmp_path):
    path = write(tmp_path, "workers: 2\n")
    s = load_settings(
        path,
        environ={"WOD_WORKERS": "6", "WOD_SENDERS": "[a@x, b@y]", "WOD_WODBETOKEN": "123"},
    )
    assert s.workers == 6
    assert s.senders == ["a@x", "b@y"]
    assert s.hub_token == "123"  # a string setting stays a string even if it looks numeric


@pytest.mark.parametrize(
    "text, expected",
    [
        ("colour: blue\n", "unknown setting 'colour'"),
        ("workers: many\n", "setting 'workers'"),
        ("accounts: ldap\n", "setting 'accounts'"),
        ("user_min: 9\nuser_max: 3\n", "user_min (9) is above user_max (3)"),
        ("allowed_clients: [not-a-net]\n", "setting 'allowed_clients'"),
        ("- a\n- b\n", "expected a mapping"),
        ("a: [\n", "not valid YAML"),
    ],
)
def test_bad_settings_name_the_key_and_the_file(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(SettingsError) as err:
        load_settings(path, environ={})
    assert expected in str(err.value)
    assert str(path) in str(err.value)


def test_unknown_environment_setting_is_rejected(tmp_path):
    with pytest.raises(SettingsError, match="WOD_NOPE"):
        load_settings(write(tmp_path, ""), environ={"WOD_NOPE": "1"})


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(SettingsError, match="not found"):
        load_settings(tmp_path / "absent.yml", environ={})


def test_secrets_are_masked_for_display(tmp_path):
    s = load_settings(write(tmp_path, "apidb_password: hunter2\n"), environ={})
    shown = s.public_dict()
    assert shown["apidb_password"] == "********"
    assert "hunter2" not in repr(shown)


def test_init_writes_a_working_commented_install(tmp_path):
    config = init_install(tmp_path / "inst")
    s = load_settings(config, environ={})
    assert s.accounts == "directory"
    assert s.students_dir.is_dir() and s.state_dir.is_dir()
    text = config.read_text()
    for name in Settings.model_fields:
        assert f"{name}:" in text, f"{name} missing from the generated settings file"
    with pytest.raises(FileExistsError):
        init_install(tmp_path / "inst")


def test_cli_settings_reports_errors_without_traceback(tmp_path):
    path = write(tmp_path, "colour: blue\n")
    proc = subprocess.run(
        [sys.executable, "-m", "wod", "-c", str(path), "settings"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "unknown setting 'colour'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_every_setting_is_documented_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    missing = [name for name in Settings.model_fields if f"`{name}`" not in readme]
    assert not missing, f"settings not documented in README.md: {missing}"


def test_non_setting_wod_variables_are_not_settings(tmp_path):
    s = load_settings(
        write(tmp_path, "workers: 3\n"),
        environ={"WOD_CONFIG": "elsewhere.yml", "WOD_FIXTURES": "/data/notebooks"},
    )
    assert s.workers == 3


UPSTREAM = {
    "WODUSER": ("admin_user", "wodadmin2"),
    "WODSTUDDIR": ("students_dir", "/srv/student"),
    "WODNOBO": ("notebooks_dir", "/srv/nb"),
    "WODPRIVNOBO": ("private_notebooks_dir", "/srv/pnb"),
    "WODSCRIPTDIR": ("scripts_dir", "/srv/scripts"),
    "WODSCRIPTPRIVDIR": ("private_scripts_dir", "/srv/pscripts"),
    "WODUSERMIN": ("user_min", 5),
    "WODUSERMAX": ("user_max", 50),
    "WODBASESTDID": ("base_stdid", 400),
    "UIDBASE": ("uid_base", 3000),
    "GIDBASE": ("gid_base", 3000),
    "WODAPIDBEXTURL": ("apidb_url", "https://api.example.com/api"),
    "WODAPIDBUSER": ("apidb_user", "mod"),
    "WODAPIDBUSERPWD": ("apidb_password", "pw"),
    "WODBEAPIURL": ("hub_url", "https://hub.example.com"),
    "WODBETOKEN": ("hub_token", "tok"),
    "WODSENDER": ("senders", "api@example.com"),
    "WODPOSTPORT": ("smtp_port", 10025),
    "WODLDAPSRVNAME": ("ldap_host", "ldap.example.com"),
    "WODLDAPPORT": ("ldap_port", 636),
    "WODLDAPDMN": ("ldap_domain", "dc=wod,dc=example"),
    "WODLDAPPWD": ("ldap_password", "lpw"),
    "WODMONITOR": ("monitor", "ops@example.com"),
}


def test_every_upstream_name_of_an_existing_install_is_accepted(tmp_path):
    """A wod.sh of an upstream install translates line by line (SPEC section 7)."""
    text = "".join(f"{name}: {value!r}\n" for name, (_, value) in UPSTREAM.items())
    s = load_settings(write(tmp_path, text.replace("'", '"')), environ={})
    for _name, (setting, value) in UPSTREAM.items():
        got = getattr(s, setting)
        if setting == "senders":
            assert got == [value]
        elif isinstance(got, Path):
            assert got == Path(value)
        else:
            assert got == value, setting


@pytest.mark.parametrize("secret", ["#starts-with-hash", "a: b", "2024-01-01", "&anchor", "null"])
def test_text_settings_from_the_environment_are_taken_verbatim(tmp_path, secret):
    """A password is whatever the variable holds, even when YAML would read it otherwise."""
    s = load_settings(
        write(tmp_path, ""),
        environ={"WOD_APIDB_PASSWORD": secret, "WOD_WODBETOKEN": secret, "WOD_APIDB_USER": secret},
    )
    assert (s.apidb_password, s.hub_token, s.apidb_user) == (secret, secret, secret)


def test_empty_optional_path_means_unset(tmp_path):
    """WODPRIVNOBO="" (as in an upstream wod.sh) is no private tree, not the current folder."""
    s = load_settings(
        write(tmp_path, "private_notebooks_dir: ''\n"),
        environ={"WOD_WODSCRIPTPRIVDIR": "", "WOD_SMARTHOST": ""},
    )
    assert s.private_notebooks_dir is None
    assert s.private_scripts_dir is None
    assert not s.smarthost


def test_a_bad_secret_value_is_not_echoed_in_the_error(tmp_path):
    path = write(tmp_path, "apidb_password: [hunter2]\nldap_password: {pw: hunter3}\n")
    with pytest.raises(SettingsError) as err:
        load_settings(path, environ={})
    message = str(err.value)
    assert f"{path}, line 1: setting 'apidb_password'" in message
    assert "(and 1 more problem(s))" in message
    assert "hunter2" not in message and "hunter3" not in message


SECRETS = "apidb_password: hunter2\nhub_token: tok-s3cret\nhttp_token: http-s3cret\n"


def assert_one_safe_line(message: str) -> None:
    assert "\n" not in message
    for secret in ("hunter2", "tok-s3cret", "http-s3cret"):
        assert secret not in message


def test_a_cross_field_error_is_one_line_without_any_setting_value(tmp_path):
    """It used to print every setting, passwords and tokens included."""
    path = write(tmp_path, SECRETS + "user_min: 9\nuser_max: 3\n")
    with pytest.raises(SettingsError) as err:
        load_settings(path, environ={})
    message = str(err.value)
    assert_one_safe_line(message)
    assert message.startswith(f"{path}, line 4: setting 'user_min': ")
    assert "user_min (9) is above user_max (3)" in message


@pytest.mark.parametrize(
    "text",
    [
        'apidb_password: "hunter2\nworkers: 2\n',
        "hub_token: tok-s3cret: more\n",
        "http_token: [http-s3cret\n",
        "apidb_password: 'hunter2\n",
        "hub_token: tok-s3cret\n\tworkers: 2\n",
    ],
)
def test_a_yaml_syntax_error_names_the_line_without_quoting_it(tmp_path, text):
    """The offending line may hold a secret: the error gives its number, not its text."""
    path = write(tmp_path, text)
    with pytest.raises(SettingsError) as err:
        load_settings(path, environ={})
    message = str(err.value)
    assert_one_safe_line(message)
    assert message.startswith(f"{path}, line ") and "not valid YAML" in message


@pytest.mark.parametrize(
    "text, key, expected",
    [
        ("smtp_port: 70000\n", "smtp_port", "less than or equal to 65535"),
        ("http_port: -1\n", "http_port", "greater than or equal to 0"),
        ("workers: -1\n", "workers", "greater than or equal to 1"),
        ("workers: 0\n", "workers", "greater than or equal to 1"),
        ("retry_base_delay: -2\n", "retry_base_delay", "greater than or equal to 0"),
        ("retry_max_delay: -1\n", "retry_max_delay", "greater than or equal to 0"),
        ("hook_timeout: -5\n", "hook_timeout", "greater than 0"),
        ("apidb_timeout: 0\n", "apidb_timeout", "greater than 0"),
        ("cleaned_poll_interval: -20\n", "cleaned_poll_interval", "greater than 0"),
        ("hub_timeout: .nan\n", "hub_timeout", "finite number"),
        ("apidb_url: not a url\n", "apidb_url", "http:// or https:// URL"),
        ("apidb_url: ftp://x/api\n", "apidb_url", "http:// or https:// URL"),
        ("hub_url: localhost:8000\n", "hub_url", "http:// or https:// URL"),
        ('senders: "a-string"\n', "senders", "expected a list"),
        ("senders: [not-an-address]\n", "senders", "not an e-mail address"),
        ("workers: yes\n", "workers", "not a yes/no value"),
        ("smarthost: relay.example.com\n", "smarthost", "host:port"),
        ("account_pattern: 'Student {n}'\n", "account_pattern", "account names"),
        ("admin_user: 'root; rm -rf /'\n", "admin_user", "not an account name"),
        ("command_mailbox: a@b\n", "command_mailbox", "local part"),
        ("password_length: 4\n", "password_length", "greater than or equal to 8"),
        ("max_message_bytes: 10\n", "max_message_bytes", "greater than or equal to 1024"),
        ("user_max: 1000000000\n", "user_max", "less than or equal to 999999999"),
        ("ldap_port: 0\n", "ldap_port", "greater than or equal to 1"),
        ("retry_base_delay: 60\nretry_max_delay: 5\n", "retry_max_delay", "below"),
        ("smtp_local_users: [Not A User]\n", "smtp_local_users", "not an account name"),
    ],
)
def test_a_bad_value_stops_the_start_with_the_key_named(tmp_path, text, key, expected):
    path = write(tmp_path, text)
    with pytest.raises(SettingsError) as err:
        load_settings(path, environ={})
    message = str(err.value)
    assert "\n" not in message
    assert f"{path}, line " in message and f"setting '{key}'" in message
    assert expected in message


def test_every_number_setting_has_bounds(tmp_path):
    """No numeric setting takes a negative or an absurdly large value."""
    numeric = [n for n, f in Settings.model_fields.items() if f.annotation in (int, float)]
    assert len(numeric) > 15
    for name in numeric:
        for value in (-1, 10**12):
            with pytest.raises(SettingsError, match=f"setting '{name}'"):
                load_settings(write(tmp_path, f"{name}: {value}\n"), environ={})


def test_an_environment_value_names_the_variable(tmp_path):
    with pytest.raises(SettingsError) as err:
        load_settings(write(tmp_path, ""), environ={"WOD_WORKERS": "-1"})
    assert str(err.value).startswith("environment variable WOD_WORKERS: setting 'workers'")


def test_one_sender_as_text_only_under_the_upstream_name(tmp_path):
    """WODSENDER=api@host (upstream, one address) is a list of one; `senders: x` is an error."""
    s = load_settings(write(tmp_path, ""), environ={"WOD_WODSENDER": "api@example.com"})
    assert s.senders == ["api@example.com"]
    with pytest.raises(SettingsError, match="expected a list"):
        load_settings(write(tmp_path, ""), environ={"WOD_SENDERS": "api@example.com"})


def test_a_key_given_twice_in_the_file_is_an_error(tmp_path):
    path = write(tmp_path, "workers: 4\nuser_max: 30\nworkers: 8\n")
    with pytest.raises(SettingsError) as err:
        load_settings(path, environ={})
    assert "'workers' given twice" in str(err.value)
    assert str(path) in str(err.value)


def test_an_unreadable_settings_file_is_a_clear_error(tmp_path):
    binary = tmp_path / "binary.yml"
    binary.write_bytes(b"workers: 4\xff\n")
    folder = tmp_path / "folder.yml"
    folder.mkdir()
    for path in (binary, folder):
        with pytest.raises(SettingsError) as err:
            load_settings(path, environ={})
        assert str(path) in str(err.value)
    proc = subprocess.run(
        [sys.executable, "-m", "wod", "-c", str(binary), "settings"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and str(binary) in proc.stderr


def test_init_into_a_folder_in_use_keeps_the_admins_files(tmp_path):
    """`wod init DIR` (and --force) adds the layout and samples, never overwrites a file."""
    root = tmp_path / "inst"
    mine = root / "notebooks" / "WKSHP-Sample101" / "wod.yml"
    mine.parent.mkdir(parents=True)
    mine.write_text("name: 'my own edit'\nrange: [1, 3]\n")
    hook = root / "scripts" / "create-WKSHP-Sample101.sh"
    hook.parent.mkdir()
    hook.write_text("#!/bin/sh\necho mine\n")
    (root / "notes.txt").write_text("keep me\n")
    for force in (False, True):
        proc = subprocess.run(
            [sys.executable, "-m", "wod", "init", str(root), *(["--force"] if force else [])],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        assert mine.read_text() == "name: 'my own edit'\nrange: [1, 3]\n"
        assert hook.read_text() == "#!/bin/sh\necho mine\n"
        assert (root / "notes.txt").read_text() == "keep me\n"
        assert (root / "notebooks" / "WKSHP-Sample201" / "wod.yml").is_file()  # samples added
        assert load_settings(root / "wod.yml", environ={}).notebooks_dir == root / "notebooks"


def test_init_where_a_folder_cannot_be_made_is_a_clear_error(tmp_path):
    (tmp_path / "a-file").write_text("")
    proc = subprocess.run(
        [sys.executable, "-m", "wod", "init", str(tmp_path / "a-file" / "inst")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and "a-file" in proc.stderr
