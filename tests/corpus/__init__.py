"""The bad-input corpus: named cases, each with the rejection it must get.

One module per channel, each a list of :class:`Case`:

- :mod:`tests.corpus.mail`      raw SMTP sessions (protocol misuse, limits, senders);
- :mod:`tests.corpus.requests`  request mails whose Subject, headers or body are wrong;
- :mod:`tests.corpus.http`      ``POST /api/requests`` bodies, and HTTP heads;
- :mod:`tests.corpus.pipe`      messages on ``wod intake``'s stdin;
- :mod:`tests.corpus.settings`  settings files.

``expect`` is what the rejection must say: an SMTP or HTTP reply substring (code and
reason), the reason recorded, or the settings error.  The tests (``tests/test_bad_input_*``)
run each case against one running server per module and check that the server still
answers the next good request.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Case:
    """One bad input: ``data`` in, ``expect`` must be in the answer (or the recorded
    reason); ``recorded``: a rejection is recorded for it; ``eof``: the client hangs up
    after ``data`` (else an SMTP test ends the session with QUIT)."""

    name: str
    data: bytes
    expect: str
    recorded: bool = True
    eof: bool = False

    def __str__(self) -> str:
        return self.name


def names_are_unique(cases: list[Case]) -> list[Case]:
    seen: set[str] = set()
    for case in cases:
        assert case.name not in seen, f"two corpus cases named {case.name!r}"
        seen.add(case.name)
    return cases
