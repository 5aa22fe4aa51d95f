"""The api-db token as the hot path uses it: logged in ahead in the background, one login
for many threads, renewed from the expiry the token states (real registry)."""

from __future__ import annotations

import threading
import time

from wod.services.apidb import ApiDb, token_expiry


def client(reg) -> ApiDb:
    return ApiDb(reg.url, reg.username, reg.password, timeout=10)


def wait_for(check, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_prefetch_logs_in_ahead_and_the_call_reuses_it(registry):
    customer = registry.create_customer(registry.workshops()[0]["notebook"])
    with client(registry) as api:
        api.prefetch_token()
        wait_for(lambda: registry.logins == 1)
        api.prefetch_token()  # a fresh token is there: nothing more
        assert api.customer(customer["id"])["id"] == customer["id"]
        api.update_customer(customer["id"], active=True)
    assert registry.logins == 1
    assert registry.customer(customer["id"])["active"] is True


def test_threads_needing_a_token_share_one_login(registry):
    customer = registry.create_customer(registry.workshops()[0]["notebook"])
    results: list[int] = []
    with client(registry) as api:
        gate = threading.Barrier(4)

        def call() -> None:
            gate.wait(5)
            results.append(api.customer(customer["id"])["id"])

        threads = [threading.Thread(target=call) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
    assert results == [customer["id"]] * 4
    assert registry.logins == 1


def test_token_renewed_before_it_expires(registry_factory):
    reg = registry_factory(token_ttl=2)
    customer = reg.create_customer(reg.workshops()[0]["notebook"])
    with client(reg) as api:
        token = api.token
        expires = token_expiry(token)
        assert expires is not None and 0 < expires - time.time() <= 2.5
        time.sleep(max(expires - time.time() - 0.1, 0))  # inside the renewal margin
        api.update_customer(customer["id"], cleaned=True)
        assert reg.logins == 2  # renewed up front, the update went through first time
        assert api.token != token
    assert reg.customer(customer["id"])["cleaned"] is True
