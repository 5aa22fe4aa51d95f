"""Settings files ``wod serve`` must refuse to start with.

``data`` is the file (every case also carries secrets, which no error may repeat);
``expect`` is a substring of the one-line error.
"""

from __future__ import annotations

from tests.corpus import Case, names_are_unique

SECRETS = b"apidb_password: pw-S3CRET\nhub_token: tok-S3CRET\nhttp_token: http-S3CRET\n"


def case(name: str, text: str, expect: str) -> Case:
    return Case(f"settings/{name}", SECRETS + text.encode(), expect, recorded=False)


VALUES = [
    # (name, file text, expected)
    ("smtp-port-too-high", "smtp_port: 70000\n", "setting 'smtp_port'"),
    ("smtp-port-negative", "smtp_port: -25\n", "setting 'smtp_port'"),
    ("smtp-port-text", "smtp_port: smtp\n", "setting 'smtp_port'"),
    ("http-port-too-high", "http_port: 65536\n", "setting 'http_port'"),
    ("ldap-port-zero", "ldap_port: 0\n", "setting 'ldap_port'"),
    ("workers-negative", "workers: -1\n", "setting 'workers'"),
    ("workers-zero", "workers: 0\n", "setting 'workers'"),
    ("workers-huge", "workers: 100000\n", "setting 'workers'"),
    ("workers-float", "workers: 2.5\n", "setting 'workers'"),
    ("workers-bool", "workers: yes\n", "not a yes/no value"),
    ("retry-attempts-zero", "retry_max_attempts: 0\n", "setting 'retry_max_attempts'"),
    ("retry-base-negative", "retry_base_delay: -1\n", "setting 'retry_base_delay'"),
    ("retry-max-negative", "retry_max_delay: -0.5\n", "setting 'retry_max_delay'"),
    ("retry-max-below-base", "retry_base_delay: 10\nretry_max_delay: 1\n", "retry_max_delay"),
    ("hook-timeout-zero", "hook_timeout: 0\n", "setting 'hook_timeout'"),
    ("hook-timeout-negative", "hook_timeout: -600\n", "setting 'hook_timeout'"),
    ("apidb-timeout-inf", "apidb_timeout: .inf\n", "setting 'apidb_timeout'"),
    ("hub-timeout-nan", "hub_timeout: .nan\n", "setting 'hub_timeout'"),
    ("ldap-timeout-negative", "ldap_timeout: -1\n", "setting 'ldap_timeout'"),
    ("poll-interval-zero", "cleaned_poll_interval: 0\n", "setting 'cleaned_poll_interval'"),
    ("poll-timeout-negative", "cleaned_poll_timeout: -900\n", "setting 'cleaned_poll_timeout'"),
    ("spawn-wait-negative", "hub_spawn_wait: -1\n", "setting 'hub_spawn_wait'"),
    ("token-ttl-zero", "registry_token_ttl: 0\n", "setting 'registry_token_ttl'"),
    ("message-bytes-tiny", "max_message_bytes: 10\n", "setting 'max_message_bytes'"),
    ("message-bytes-huge", "max_message_bytes: 10000000000\n", "setting 'max_message_bytes'"),
    ("password-short", "password_length: 4\n", "setting 'password_length'"),
    ("user-min-negative", "user_min: -1\n", "setting 'user_min'"),
    ("user-max-ten-digits", "user_max: 1000000000\n", "setting 'user_max'"),
    ("user-min-above-max", "user_min: 9\nuser_max: 3\n", "user_min (9) is above user_max (3)"),
    ("base-stdid-negative", "base_stdid: -400\n", "setting 'base_stdid'"),
    ("uid-base-zero", "uid_base: 0\n", "setting 'uid_base'"),
    ("uid-base-overflow", "uid_base: 4294967000\nuser_max: 1000\n", "uid_base"),
    ("apidb-url-words", "apidb_url: not a url\n", "setting 'apidb_url'"),
    ("apidb-url-no-scheme", "apidb_url: api.example.com/api\n", "setting 'apidb_url'"),
    ("apidb-url-ftp", "apidb_url: ftp://api.example.com/api\n", "setting 'apidb_url'"),
    ("apidb-url-no-host", "apidb_url: 'http:///api'\n", "setting 'apidb_url'"),
    ("apidb-url-bad-port", "apidb_url: 'http://h:99999/api'\n", "setting 'apidb_url'"),
    ("hub-url-relative", "hub_url: /hub\n", "setting 'hub_url'"),
    ("senders-string", 'senders: "a-string"\n', "expected a list"),
    ("senders-one-address-as-text", "senders: api@example.com\n", "expected a list"),
    ("senders-not-address", "senders: [api]\n", "not an e-mail address"),
    ("senders-number", "senders: [42]\n", "setting 'senders"),
    ("skel-dirs-string", "skel_dirs: /etc/skel\n", "expected a list"),
    ("aliases-string", "mailbox_aliases: wod\n", "expected a list"),
    ("aliases-with-at", "mailbox_aliases: [a@b]\n", "local part"),
    ("allowed-clients-word", "allowed_clients: [everyone]\n", "is not a network"),
    ("allowed-clients-string", "allowed_clients: 10.0.0.0/8\n", "expected a list"),
    ("command-mailbox-space", "command_mailbox: 'wod admin'\n", "local part"),
    ("smtp-local-users-upper", "smtp_local_users: [Root]\n", "not an account name"),
    ("admin-user-shell", "admin_user: 'a;b'\n", "not an account name"),
    ("account-pattern-no-n", "account_pattern: student\n", "must contain '{n}'"),
    ("account-pattern-slash", "account_pattern: '../s{n}'\n", "account names"),
    ("inventory-group-traversal", "inventory_group: ../etc\n", "setting 'inventory_group'"),
    ("smarthost-no-port", "smarthost: relay.example.com\n", "host:port"),
    ("smarthost-port-zero", "smarthost: 'relay:0'\n", "host:port"),
    ("smtp-host-space", "smtp_host: 'a b'\n", "setting 'smtp_host'"),
    ("http-host-empty", "http_host: ''\n", "setting 'http_host'"),
    ("monitor-not-address", "monitor: ops\n", "setting 'monitor'"),
    ("registry-db-url-path", "registry_db_url: /var/lib/x.db\n", "setting 'registry_db_url'"),
    ("accounts-unknown", "accounts: ldap\n", "setting 'accounts'"),
    ("ldap-tls-unknown", "ldap_tls: ssl\n", "setting 'ldap_tls'"),
    ("ssh-key-type-unknown", "ssh_key_type: dsa\n", "setting 'ssh_key_type'"),
    ("variables-list", "variables: [a, b]\n", "setting 'variables'"),
    ("password-as-list", "ldap_password: [x]\n", "setting 'ldap_password'"),
    ("state-dir-nul", 'state_dir: "/var/lib/w\\0d"\n', "NUL character"),
    ("password-nul", 'ldap_password: "pw\\0x"\n', "NUL character"),
    ("skel-dir-nul", 'skel_dirs: ["/etc/sk\\0el"]\n', "NUL character"),
]

FILES = [
    ("unknown-key", "colour: blue\n", "unknown setting 'colour'"),
    ("upstream-and-ours", "WODUSER: a\nadmin_user: b\n", "given twice"),
    ("key-twice", "workers: 2\nworkers: 3\n", "'workers' given twice"),
    ("secret-key-twice", "workers: 2\nhub_token: x\n", "'hub_token' given twice"),
    ("mapping-then-list", "- a\n- b\n", "not valid YAML"),
    ("mapping-then-text", "just text\n", "not valid YAML"),
    ("yaml-unclosed-quote", 'ldap_password: "oops\n', "not valid YAML"),
    ("yaml-unclosed-bracket", "senders: [a@b\n", "not valid YAML"),
    ("yaml-tab-indent", "variables:\n\tx: 1\n", "not valid YAML"),
    ("yaml-bad-indent", "variables:\n  a: 1\n b: 2\n", "not valid YAML"),
    ("yaml-python-tag", "workers: !!python/object/apply:os.system ['id']\n", "not valid YAML"),
    ("yaml-unknown-anchor", "workers: *nope\n", "not valid YAML"),
    ("yaml-colon-in-secret", "registry_secret: a: b\n", "not valid YAML"),
    ("key-not-text", "1: x\n", "a key is not a name"),
]

CASES = names_are_unique(
    [case(n, t, e) for n, t, e in VALUES] + [case(n, t, e) for n, t, e in FILES]
)

#: A sample also run through ``wod settings`` (exit 1, the line on stderr).
CLI_SAMPLE = (
    "settings/user-min-above-max",
    "settings/yaml-unclosed-quote",
    "settings/smtp-port-too-high",
)
