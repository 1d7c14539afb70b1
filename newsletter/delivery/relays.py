"""The relays one worker sends through: their order, connection budgets and
circuit breakers.

``NEWSLETTER_SMTP_URL`` lists one or more relays in order of preference. Each
SMTP connection of the pool (:mod:`.pool`) asks :meth:`Relays.candidate` for a
relay when it needs to connect and gets the first one that may take a
connection now:

- **Connection budget.** ``SMTP_CONNECTIONS`` is a ceiling. A relay that
  refuses a connection because we hold too many already (``421 4.7.0 too
  many connections``, :class:`~.smtp.PushBack` at the greeting) sets this
  worker's budget for it to the connections it does accept (at least 1);
  connections beyond the budget are not opened -- the pool runs with fewer.
  After :data:`GROW_AFTER_SECONDS` without such a refusal, while mail flows,
  the budget grows by one; a refusal of that one doubles the wait before the
  next. Connections are opened one at a time per relay, so a worker finds
  the relay's limit after one refusal, not after ``SMTP_CONNECTIONS`` of
  them, and several workers converge on sharing it.
- **Circuit breaker.** :data:`OPEN_AFTER` connects in a row that fail
  (refused, timed out, 5xx at the greeting or AUTH, or push-back while we
  hold no connection there) open the relay's circuit: nobody connects to it
  until its backoff (doubling, jittered, capped) has passed; then exactly one
  connection is let through as a probe (half-open). A probe that connects
  closes the circuit; one that fails opens it again for twice as long. A
  relay-wide outage therefore costs a few connects per backoff period, not
  one per message.
- **Failover.** While a relay's circuit is open (or its budget is full, or
  a connect to it has waited :data:`SLOW_CONNECT_SECONDS` for a greeting
  that does not come) the next one in the list is used. A connection on a later relay moves back to
  an earlier one when that one is due for its probe (:meth:`Relays.better_than`).

Counters per relay (sent, pushed back, refused) feed ``/metrics`` (label
``relay="host:port"``: never the URL, which may hold credentials) and are
added to ``relay_health`` in PostgreSQL by the worker every few seconds, so
the stats see every worker's relays.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from newsletter.core import replies
from newsletter.core.settings import SmtpTarget
from newsletter.ops import metrics

OPEN_AFTER = 2  # failed connects in a row that open the circuit
PROBE_BASE_SECONDS = 1.0  # first wait of an open circuit before its probe
PROBE_CAP_SECONDS = 30.0
FULL_PROBE_BASES = 4  # a relay full with others' connections: first probe after 4 bases
GROW_AFTER_SECONDS = 30.0  # without a connection refusal, one more connection is tried
# A connect still waiting for the relay's greeting after this long: the other
# connections do not queue behind it (connects to one relay go one at a time)
# but try the next relay, if there is one.
SLOW_CONNECT_SECONDS = 2.0

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


@dataclass(eq=False)
class Relay:
    target: SmtpTarget
    order: int  # place in SMTP_URL, 0 first
    ceiling: int  # SMTP_CONNECTIONS
    probe_base: float = PROBE_BASE_SECONDS
    probe_cap: float = PROBE_CAP_SECONDS
    grow_after: float = GROW_AFTER_SECONDS
    allowed: int = 0  # connections this worker may hold there now
    open: int = 0  # connections held or being opened
    state: str = CLOSED
    failures: int = 0  # failed connects in a row
    retry_at: float = 0.0  # monotonic: an open circuit lets a probe through from then
    probe_wait: float = 0.0
    grow_at: float = 0.0
    grow_wait: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one connect at a time
    connecting_since: float | None = None  # monotonic: the connect under way began
    # Since the last report to PostgreSQL (and, for /metrics, since start).
    sent: int = 0
    pushed_back: int = 0
    refused: int = 0
    last_error: str | None = None

    def __post_init__(self) -> None:
        self.allowed = self.ceiling
        self.grow_wait = self.grow_after
        self._show()

    @property
    def name(self) -> str:
        """host:port -- what logs, labels and stats call it (no credentials)."""
        return f"{self.target.host}:{self.target.port}"

    def may_connect(self, now: float) -> bool:
        if self.open >= self.allowed:
            return False
        if self.state == CLOSED:
            return True
        return self.state == OPEN and now >= self.retry_at  # the probe; HALF_OPEN: one is out

    def stalled(self, now: float) -> bool:
        """A connect to it has waited too long for the greeting (it may be hung)."""
        return self.connecting_since is not None and now - self.connecting_since >= (
            SLOW_CONNECT_SECONDS
        )

    def due_for_probe(self, now: float) -> bool:
        return self.state == OPEN and now >= self.retry_at and self.open < self.allowed

    def _show(self) -> None:
        metrics.relay_state(self.name, self.state != CLOSED, self.allowed)


class Relays:
    """Every relay of one pool, in order of preference."""

    def __init__(
        self,
        targets: tuple[SmtpTarget, ...] | list[SmtpTarget],
        connections: int,
        *,
        probe_base: float = PROBE_BASE_SECONDS,
        probe_cap: float = PROBE_CAP_SECONDS,
        grow_after: float = GROW_AFTER_SECONDS,
    ) -> None:
        if not targets:
            raise ValueError("no relay to send through")
        # Probes of a relay down for long come at most this far apart (shorter
        # when the backoff is: tests).
        probe_cap = min(probe_cap, 30 * probe_base)
        self.relays = [
            Relay(t, i, connections, probe_base, probe_cap, grow_after)
            for i, t in enumerate(targets)
        ]
        self.changed = asyncio.Event()  # budget or circuit changed: parked slots look again

    def __iter__(self) -> Iterator[Relay]:
        return iter(self.relays)

    @property
    def open_connections(self) -> int:
        return sum(r.open for r in self.relays)

    def candidate(self, skip: set[Relay]) -> Relay | None:
        """The first relay (not in ``skip``) that may take a connection now; one
        whose connect under way is stalled only if no other may."""
        now = time.monotonic()
        usable = [r for r in self.relays if r not in skip and r.may_connect(now)]
        return next((r for r in usable if not r.stalled(now)), usable[0] if usable else None)

    def begin(self, relay: Relay) -> bool:
        """Count a connect to ``relay`` as under way, if it may still take one."""
        if not relay.may_connect(time.monotonic()):
            return False
        if relay.state == OPEN:
            relay.state = HALF_OPEN  # this connect is the probe; nobody else meanwhile
            relay._show()
        relay.open += 1
        return True

    def connectable(self) -> bool:
        """Some relay would take a connection (or a probe) now."""
        now = time.monotonic()
        return any(r.may_connect(now) for r in self.relays)

    def next_retry_in(self) -> float:
        """Seconds until some relay may be tried again (0: one may be tried now)."""
        now = time.monotonic()
        waits = [
            max(0.0, r.retry_at - now) if r.state == OPEN else 0.0
            for r in self.relays
            if r.open < r.allowed and r.state != HALF_OPEN
        ]
        return min(waits) if waits else self.relays[0].probe_base

    def better_than(self, relay: Relay) -> bool:
        """An earlier relay would take a connection (or a probe) now: move back to it."""
        now = time.monotonic()
        return any(r.may_connect(now) and not r.stalled(now) for r in self.relays[: relay.order])

    def released(self, relay: Relay) -> None:
        """A connection to ``relay`` closed (or a reserved one never opened)."""
        relay.open = max(0, relay.open - 1)
        self.changed.set()

    def connected(self, relay: Relay) -> None:
        metrics.relay_connect(relay.name, "opened")
        relay.failures = 0
        if relay.state != CLOSED:
            relay.state = CLOSED
            relay.probe_wait = 0.0
            relay._show()
            self.changed.set()
        if relay.grow_at == 0.0:
            relay.grow_at = time.monotonic() + relay.grow_wait

    def too_many_connections(self, relay: Relay, reason: str) -> bool:
        """A 421-like refusal at connect; True if it was the budget (we hold others there)."""
        metrics.relay_connect(relay.name, "pushed_back")
        relay.pushed_back += 1
        relay.last_error = reason
        self.released(relay)
        if relay.open == 0:
            # Not one connection of ours there: full with others' (or down).
            # Open at once; its probes find when a place is free.
            relay.failures = max(relay.failures, OPEN_AFTER - 1)
            relay.probe_wait = max(relay.probe_wait, FULL_PROBE_BASES * relay.probe_base / 2)
            self._failed(relay)
            return False
        if relay.state == HALF_OPEN:
            relay.state = CLOSED  # the others work: the relay is up, only full
        relay.allowed = max(1, relay.open)
        # The next growth is tried later each time the relay says no to it.
        relay.grow_wait = min(relay.grow_wait * 2, 8 * relay.grow_after)
        relay.grow_at = time.monotonic() + relay.grow_wait
        relay._show()
        return True

    def connect_failed(self, relay: Relay, reason: str) -> None:
        metrics.relay_connect(relay.name, "refused")
        relay.refused += 1
        relay.last_error = reason
        self.released(relay)
        self._failed(relay)

    def _failed(self, relay: Relay) -> None:
        relay.failures += 1
        if relay.state == HALF_OPEN or relay.failures >= OPEN_AFTER:
            relay.probe_wait = min(relay.probe_cap, max(relay.probe_base, relay.probe_wait * 2))
            relay.retry_at = time.monotonic() + relay.probe_wait * random.uniform(0.75, 1.0)
            relay.state = OPEN
            relay._show()
        self.changed.set()

    def delivered(self, relay: Relay) -> None:
        metrics.relay_message(relay.name, "sent")
        relay.sent += 1
        if relay.allowed < relay.ceiling and time.monotonic() >= relay.grow_at:
            relay.allowed += 1  # sustained success: try one more connection
            relay.grow_at = time.monotonic() + relay.grow_wait
            relay._show()
            self.changed.set()

    def message_pushed_back(self, relay: Relay, reason: str) -> None:
        metrics.relay_message(relay.name, "pushed_back")
        relay.pushed_back += 1
        relay.last_error = reason
        # Mail refused for our pace is not growth's moment either.
        relay.grow_at = max(relay.grow_at, time.monotonic() + relay.grow_wait)

    def message_failed(self, relay: Relay) -> None:
        metrics.relay_message(relay.name, "other")

    def report(self) -> list[dict[str, Any]]:
        """What happened since the last report, per relay (and reset the counts)."""
        rows = []
        for relay in self.relays:
            rows.append(
                {
                    "relay": relay.name,
                    "state": relay.state,
                    "sent": relay.sent,
                    "pushed_back": relay.pushed_back,
                    "refused": relay.refused,
                    "connections": relay.allowed,
                    # Stored in relay_health and shown to ops: no resident's address.
                    "last_error": replies.mask(relay.last_error) if relay.last_error else None,
                }
            )
            relay.sent = relay.pushed_back = relay.refused = 0
            relay.last_error = None
        return rows

    def unreported(self, rows: list[dict[str, Any]]) -> None:
        """A report that could not be written: its counts go with the next one."""
        for relay, row in zip(self.relays, rows, strict=True):
            relay.sent += row["sent"]
            relay.pushed_back += row["pushed_back"]
            relay.refused += row["refused"]
            relay.last_error = relay.last_error or row["last_error"]
