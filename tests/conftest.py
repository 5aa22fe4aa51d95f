"""Shared test fixtures.

Fixtures live in ``tests/plugins/`` one module per real peer, loaded below:

- ``plugins/paths.py``    ``fixtures_dir`` (the shared fixture workshops, read in place;
                           ``$WOD_FIXTURES``, default ``../shared/fixtures/notebooks``),
                           ``samples_dir`` (the bundled sample workshops), ``free_port``
- ``plugins/hub.py``      ``jupyterhub``: one real JupyterHub per test session
- ``plugins/slapd.py``    ``slapd``: one real OpenLDAP server per test session
- ``plugins/registry.py`` ``registry``: the api-db-compatible registry on a real port
- ``plugins/browser.py``  ``browser``, ``new_page``: Debian's chromium driven by Playwright
- ``plugins/intake.py``   ``intake_server``: wod serve's SMTP + HTTP intake per module
                           (bad-input corpus)
- ``plugins/install.py``  ``install``: a self-contained local install (settings, trees,
                           accounts) in a tmp dir
- ``plugins/system.py``   ``local_user``: a throwaway unprivileged Linux account (root)
- ``plugins/postfix.py``  ``postfix``: a private Postfix instance on a free port (root)
- ``plugins/reliability.py`` ``rig_factory``: an install with ``wod registry`` and
                           ``wod serve`` as processes, bursts, faults and their checks
"""

pytest_plugins = [
    "tests.plugins.paths",
    "tests.plugins.hub",
    "tests.plugins.slapd",
    "tests.plugins.registry",
    "tests.plugins.install",
    "tests.plugins.intake",
    "tests.plugins.browser",
    "tests.plugins.system",
    "tests.plugins.postfix",
    "tests.plugins.reliability",
]
