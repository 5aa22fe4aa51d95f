"""Services: one small class per external system, built from ``Settings``.

:class:`Services` bundles them for the lifecycle.  Tests build it from real peers (the
registry, a real JupyterHub, a real slapd) by passing different settings, never by
patching.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wod.content.service import Content
    from wod.services.accounts import Accounts
    from wod.services.apidb import ApiDb
    from wod.services.hooks import Hooks
    from wod.services.hub import Hub
    from wod.services.ldap import Ldap
    from wod.settings import Settings


@dataclass
class Services:
    settings: Settings
    apidb: ApiDb
    hub: Hub | None
    accounts: Accounts
    ldap: Ldap
    hooks: Hooks
    content: Content

    @classmethod
    def from_settings(cls, settings: Settings, metrics: Any = None) -> Services:
        """Every service from ``settings``; with ``metrics`` (a
        :class:`wod.metrics.PeerMetrics`) the api-db, hub and LDAP calls are timed."""
        from wod.content.service import Content
        from wod.services.accounts import make_accounts
        from wod.services.apidb import ApiDb
        from wod.services.hooks import Hooks
        from wod.services.hub import Hub
        from wod.services.ldap import Ldap

        return cls(
            settings=settings,
            apidb=ApiDb.from_settings(settings, transport=_measured(metrics, "apidb")),
            hub=(
                Hub.from_settings(settings, transport=_measured(metrics, "hub"))
                if settings.hub_url
                else None
            ),
            accounts=make_accounts(settings),
            ldap=Ldap(settings) if metrics is None else _measured_ldap(settings, metrics),
            hooks=Hooks(settings),
            content=Content(settings),
        )


def _measured(metrics: Any, peer: str) -> Any:
    return None if metrics is None else metrics.transport(peer)


def _measured_ldap(settings: Settings, metrics: Any) -> Ldap:
    from wod.metrics import measured_ldap

    return measured_ldap(settings, metrics)
