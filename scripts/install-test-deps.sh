#!/bin/sh
# System packages and tools the test suite needs, installed idempotently.
#   shc, acl (setfacl), slapd + ldap-utils (a real LDAP server), openssh-client (ssh-keygen),
#   pandoc and chromium (wod export: docx, and PDF through Playwright with executable_path),
#   configurable-http-proxy from npm (for a real JupyterHub) into .venv/node.
set -eu
cd "$(dirname "$0")/.."

need=""
for pair in shc:shc setfacl:acl slapd:slapd ldapsearch:ldap-utils ssh-keygen:openssh-client \
            chpasswd:passwd pkill:procps pandoc:pandoc chromium:chromium setpriv:util-linux; do
    cmd=${pair%%:*}; pkg=${pair#*:}
    if ! command -v "$cmd" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$cmd" ]; then
        need="$need $pkg"
    fi
done
if [ -n "$need" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "missing system packages:$need (run as root, or install them)" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q $need >/dev/null 2>&1 || {
        apt-get update -q >/dev/null && apt-get install -y -q $need >/dev/null
    }
    # Debian starts the system slapd when it can; the tests run their own.
    pkill -x slapd 2>/dev/null || true
fi

# Postfix (the mail path as upstream deploys it): installed unconfigured and not started;
# the tests run their own instance (postfix -c DIR) on a free port.
if [ ! -x /usr/sbin/postfix ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "missing system package: postfix (run as root, or install it)" >&2
        exit 1
    fi
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q postfix >/dev/null 2>&1 || {
        apt-get update -q >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q postfix >/dev/null
    }
fi

if [ ! -x .venv/node/node_modules/.bin/configurable-http-proxy ]; then
    if ! command -v npm >/dev/null 2>&1; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm >/dev/null
    fi
    mkdir -p .venv/node
    npm install --silent --no-audit --no-fund --prefix .venv/node configurable-http-proxy >/dev/null
fi

# The PAM test hub's single-user servers run as the student accounts, which cannot use
# the project's interpreter when it lives under a private home (pyenv in /root): they get
# a virtualenv of Debian's python3 with jupyterhub (same version as the hub) + jupyterlab.
SINGLEUSER=.venv/singleuser
if [ ! -x "$SINGLEUSER/bin/jupyterhub-singleuser" ] || [ ! -x "$SINGLEUSER/bin/jupyter-lab" ]; then
    if ! /usr/bin/python3 -c "import ensurepip, venv" >/dev/null 2>&1; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >/dev/null
    fi
    hubversion=$(.venv/bin/python -c "import jupyterhub; print(jupyterhub.__version__)" 2>/dev/null || true)
    rm -rf "$SINGLEUSER"
    /usr/bin/python3 -m venv "$SINGLEUSER"
    "$SINGLEUSER/bin/pip" install -q --disable-pip-version-check \
        "jupyterhub${hubversion:+==$hubversion}" jupyterlab >/dev/null
fi
