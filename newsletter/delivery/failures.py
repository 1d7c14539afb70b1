"""What a failed send means for the mail, decided once for both queues.

Issue deliveries (``claim.Outcomes``) and transactional mail (``outbox.py``)
meet the same SMTP failures; :func:`verdict` says what each one means and
``outcomes.record_failure`` carries it out with each queue's statements. The
delay before the next try comes from :func:`backoff`, the one formula every
wait uses (the SQL is handed the number of seconds, it computes none).

The verdicts, in the order they are decided:

``PUSH_BACK``  the relay asks us to slow down (421, 4.7.x, "too many",
               greylisting: :class:`~newsletter.delivery.smtp.PushBack`). Back
               in the queue at once, neither an attempt nor a deferral: the
               global rate limit is what slows the sending down, not a pause
               on this one mail. No bounce. Only a mail pushed back more than
               ``FREE_PUSH_BACKS`` times in a row (one recipient greylisted,
               while the rest of the mail flows) waits: 5 s, 10 s, 20 s … up
               to 15 minutes, so it cannot hold the head of the queue.
``DEFER``      server trouble (connection lost, relay refusing us before any
               recipient, a 5xx to MAIL FROM...). Not the recipient's doing:
               no attempt counted, waits with growing deferral pauses, failed
               (not bounced) once past the queue's maximum age.
``BOUNCE``     a 5xx to RCPT or DATA: the recipient's server said no, final.
               Issue deliveries apply the bounce policy (audience/bounces.py).
``GIVE_UP``    a temporary refusal on the last allowed attempt; its reason is
               'sender_refused' when the relay refused our MAIL FROM (ours),
               'retries_exhausted' otherwise.
``RETRY``      any other temporary refusal: the attempt counts, backoff.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable
from dataclasses import dataclass

from newsletter.delivery.smtp import PermanentError, PushBack, SendError, ServerTrouble

# Push-backs in a row a mail may meet and still be due again at once; then
# it waits (PUSH_BACK_PAUSES, indexed by the push-backs beyond these).
FREE_PUSH_BACKS = 3

# Only replies about a recipient are bounces; a 5xx anywhere else is ours.
BOUNCE_STAGES = frozenset({"rcpt", "data"})


class Verdict(enum.Enum):
    PUSH_BACK = "push_back"
    DEFER = "defer"
    BOUNCE = "bounce"
    GIVE_UP = "give_up"
    RETRY = "retry"


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    # The delivery's reason code once final (0015_engagement.sql); None while
    # it waits or when the statement that carries out the verdict knows it.
    reason: str | None = None


def verdict(exc: SendError, attempts: int, max_attempts: int) -> Decision:
    """What a failed send means; ``attempts`` counts the one that just failed."""
    if isinstance(exc, PushBack):
        return Decision(Verdict.PUSH_BACK)
    if isinstance(exc, ServerTrouble) or (
        isinstance(exc, PermanentError) and exc.stage not in BOUNCE_STAGES
    ):
        return Decision(Verdict.DEFER)
    if isinstance(exc, PermanentError):
        return Decision(Verdict.BOUNCE, "refused")
    if attempts >= max_attempts:
        # A refusal of our MAIL FROM is the relay's quarrel with us, not the recipient's.
        return Decision(
            Verdict.GIVE_UP, "sender_refused" if exc.stage == "mail" else "retries_exhausted"
        )
    return Decision(Verdict.RETRY)


def backoff(
    n: int, base: float, cap: float, *, uniform: Callable[[float, float], float] = random.uniform
) -> float:
    """The ``n``-th wait (n ≥ 1): base, 2×base, 4×base … capped, with jitter.

    Each wait is drawn between half its ceiling and the ceiling, so workers
    that met the same trouble at the same moment do not come back together.
    """
    ceiling = min(base * 2.0 ** min(max(n - 1, 0), 60), cap)
    return ceiling / 2 + uniform(0.0, ceiling / 2)


@dataclass(frozen=True, slots=True)
class Backoff:
    """:func:`backoff` with its base and cap fixed, for one kind of wait."""

    base: float
    cap: float

    def __call__(self, n: int) -> float:
        return backoff(n, self.base, self.cap)


# A mail pushed back more than FREE_PUSH_BACKS times in a row: 5 s, 10 s ...
# (greylisting lets a sender in after a few minutes) up to a quarter hour.
PUSH_BACK_PAUSES = Backoff(5.0, 900.0)


@dataclass(frozen=True, slots=True)
class Waits:
    """How long one queue waits after each verdict, and for how long at most.

    ``retry`` is indexed by the attempt count, ``defer`` by the deferral
    count (the one just made: 1 for the first); ``max_age`` is how long after
    the mail was queued server trouble may last before the mail is failed.
    """

    retry: Backoff
    defer: Backoff
    max_age: float
    push_back: Backoff

    def delay(self, decision: Decision, attempts: int, deferrals: int, pushbacks: int = 0) -> float:
        """Seconds until the mail is due again (0: at once). ``pushbacks``:
        push-backs in a row before this one."""
        if decision.verdict is Verdict.RETRY:
            return self.retry(attempts)
        if decision.verdict is Verdict.DEFER:
            return self.defer(deferrals + 1)
        if decision.verdict is Verdict.PUSH_BACK and pushbacks >= FREE_PUSH_BACKS:
            return self.push_back(pushbacks - FREE_PUSH_BACKS + 1)
        return 0.0
