"""A private Postfix relay, throttled like a production one, for the tests and
``bench/relay.py``.

Each :class:`PrivatePostfix` is an instance of its own beside the machine's
default one: its own configuration directory, queue and data directory under
a temporary directory, its own port on 127.0.0.1, its own log file under
/var/log (the machine has no syslog socket, and Postfix accepts a log file
only under ``maillog_file_prefixes``, ``/var`` by default). It relays every
message to an SMTP sink the caller runs (``relayhost``), and limits each
client the way a provider's relay does, loopback included:
``smtpd_client_connection_count_limit`` simultaneous sessions (more are
greeted with ``421 4.7.0 … too many connections``) and
``smtpd_client_message_rate_limit`` messages per ``anvil_rate_time_unit``
(more get ``450 4.7.1 … too much mail`` at MAIL FROM).

What the relay saw is read back from its log (:meth:`PrivatePostfix.counts`):
sessions opened, sessions refused, messages refused, messages accepted, and
push-back episodes.

The Debian package is installed when missing (once per process, see
:func:`ensure_postfix`); only the binaries are used, the default instance is
neither configured nor started.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.debian import PackageUnavailable, ensure_package

DEBCONF_ANSWER = "postfix postfix/main_mailer_type select No configuration\n"
MASTER_CF = Path("/etc/postfix/master.cf")
MASTER_PROGRAM = Path("/usr/lib/postfix/sbin/master")
LOG_DIR = Path("/var/log")
# What smtpd writes to the log for each event we count (Postfix 3.7). The
# 421/450 reply texts themselves are not logged; these warnings are, one per refusal.
CONNECTED = re.compile(r"postfix/smtpd\[\d+\]: connect from ")
REFUSED_CONNECTION = re.compile(r"warning: Connection concurrency limit exceeded")
REFUSED_MAIL = re.compile(r"warning: Message delivery request rate limit exceeded")
ACCEPTED = re.compile(r"postfix/smtpd\[\d+\]: [0-9A-Za-z]+: client=")
RELAYED = re.compile(r"postfix/smtp\[\d+\]: [0-9A-Za-z]+: to=<[^>]*>, relay=.* status=sent ")


PostfixUnavailable = PackageUnavailable


def ensure_postfix() -> None:
    """Install Debian's ``postfix`` if missing (once per process), answering
    "No configuration": the package must not set up a default instance."""
    ensure_package("postfix", str(MASTER_PROGRAM), DEBCONF_ANSWER)


def postfix_or_skip() -> None:
    """:func:`ensure_postfix`, or skip the test saying why it cannot run here."""
    try:
        ensure_postfix()
    except PostfixUnavailable as exc:
        pytest.skip(f"needs a real Postfix relay: {exc}")


@dataclass(frozen=True)
class RelayLimits:
    """How hard the relay throttles each client (its address)."""

    connections: int = 4  # smtpd_client_connection_count_limit
    messages: int = 100  # smtpd_client_message_rate_limit ...
    per_seconds: int = 10  # ... per anvil_rate_time_unit (1 s at the least)

    @property
    def rate(self) -> float:
        """Messages per second the relay takes from one client at the most."""
        return self.messages / self.per_seconds

    def ideal_seconds(self, messages: int) -> float:
        """The least time the relay lets ``messages`` through in."""
        return messages / self.rate


@dataclass(frozen=True)
class RelayCounts:
    """What the relay's log says happened, from its start."""

    connections: int  # sessions opened (refused ones included)
    refused_connections: int  # 421 4.7.0 too many connections
    refused_mail: int  # 450 4.7.1 too much mail
    accepted: int  # messages taken into the relay's queue
    relayed: int  # messages the relay handed on to the sink
    # Push-back episodes: runs of refusals with no message accepted in between.
    # A sender that backs off and comes back when the relay lets it has one
    # per time the relay pushed; one that keeps knocking still has one, but
    # each knock shows in ``connections`` or ``refused_mail``.
    episodes: int

    @property
    def refusals(self) -> int:
        return self.refused_connections + self.refused_mail


def read_counts(log: Path) -> RelayCounts:
    connections = refused_connections = refused_mail = accepted = relayed = episodes = 0
    in_episode = False
    try:
        lines = log.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        lines = []
    for line in lines:
        if CONNECTED.search(line):
            connections += 1
        elif ACCEPTED.search(line):
            accepted += 1
            in_episode = False
        elif RELAYED.search(line):
            relayed += 1
        else:
            refused = False
            if REFUSED_CONNECTION.search(line):
                refused_connections += 1
                refused = True
            elif REFUSED_MAIL.search(line):
                refused_mail += 1
                refused = True
            if refused and not in_episode:
                episodes += 1
                in_episode = True
    return RelayCounts(connections, refused_connections, refused_mail, accepted, relayed, episodes)


def _port_answers(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1.0)
        if sock.connect_ex(("127.0.0.1", port)) != 0:
            return False
        try:
            return sock.recv(4).startswith(b"220")
        except OSError:
            return False


@dataclass
class PrivatePostfix:
    """One private, throttled Postfix instance relaying to ``sink_port``."""

    sink_port: int
    limits: RelayLimits = field(default_factory=RelayLimits)
    port: int = 0  # 0: a free one
    name: str = field(default_factory=lambda: f"newsletter-postfix-{uuid.uuid4().hex[:10]}")
    directory: Path | None = None
    started: bool = False

    @property
    def log(self) -> Path:
        return LOG_DIR / f"{self.name}.log"

    @property
    def config_directory(self) -> Path:
        assert self.directory is not None, "not started"
        return self.directory / "etc"

    def main_cf(self) -> str:
        assert self.directory is not None
        return "\n".join(
            [
                "compatibility_level = 3.6",
                f"queue_directory = {self.directory / 'spool'}",
                f"data_directory = {self.directory / 'data'}",
                f"maillog_file = {self.log}",
                "myhostname = relay.newsletter.test",
                "inet_interfaces = loopback-only",
                "inet_protocols = ipv4",
                "mydestination =",
                "mynetworks = 127.0.0.0/8",
                "alias_maps =",
                "alias_database =",
                "smtpd_relay_restrictions = permit_mynetworks, reject",
                f"relayhost = [127.0.0.1]:{self.sink_port}",
                "smtp_tls_security_level = none",
                # Throttle loopback clients too: the default exempts $mynetworks.
                "smtpd_client_event_limit_exceptions =",
                f"smtpd_client_connection_count_limit = {self.limits.connections}",
                f"smtpd_client_message_rate_limit = {self.limits.messages}",
                f"anvil_rate_time_unit = {self.limits.per_seconds}s",
                "",
            ]
        )

    def master_cf(self) -> str:
        """Debian's master.cf with our listener and nothing chrooted (the chroot
        would be our own queue directory, without the files the services expect)."""
        lines = []
        for line in MASTER_CF.read_text().splitlines():
            columns = line.split()
            if line[:1] not in ("", "#", " ", "\t") and len(columns) >= 8:
                if columns[:2] == ["smtp", "inet"]:
                    columns = [f"127.0.0.1:{self.port}", "inet", "n", "-", "n", "-", "-", "smtpd"]
                else:
                    columns[4] = "n"
                line = " ".join(columns)
            lines.append(line)
        return "\n".join(lines) + "\n"

    def postfix(self, action: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            ["postfix", "-c", str(self.config_directory), action],
            capture_output=True,
            check=False,
            timeout=60,
        )

    def start(self) -> None:
        ensure_postfix()
        if not self.port:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                self.port = sock.getsockname()[1]
        self.directory = Path(tempfile.mkdtemp(prefix=f"{self.name}-"))
        # Postfix's daemons run as the postfix user and must reach the queue.
        self.directory.chmod(0o755)
        (self.directory / "etc").mkdir()
        (self.directory / "spool").mkdir()
        (self.directory / "data").mkdir()
        shutil.chown(self.directory / "data", user="postfix")
        (self.config_directory / "main.cf").write_text(self.main_cf())
        (self.config_directory / "master.cf").write_text(self.master_cf())
        self.log.unlink(missing_ok=True)
        self.started = True  # from here on stop() has something to clean up
        done = self.postfix("start")
        deadline = time.monotonic() + 20
        while not _port_answers(self.port):
            if time.monotonic() > deadline or done.returncode != 0:
                raise RuntimeError(
                    f"private Postfix did not start on port {self.port} "
                    f"(postfix start: {done.returncode} {done.stderr.decode(errors='replace')})"
                    f"\n{self.log_tail()}"
                )
            time.sleep(0.1)

    def master_pid(self) -> int | None:
        if self.directory is None:
            return None
        try:
            return int((self.directory / "spool" / "pid" / "master.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> None:
        """Stop the instance and remove its directory and log; safe to call twice."""
        if not self.started:
            return
        pid = self.master_pid()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.postfix("stop")
        if pid is not None:
            deadline = time.monotonic() + 10
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _alive(pid):  # `postfix stop` did not end it: our master, by its id
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
        self.log.unlink(missing_ok=True)
        self.started = False

    def counts(self) -> RelayCounts:
        return read_counts(self.log)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return "(no Postfix log)"
        return "\n".join(text[-lines:])

    def __enter__(self) -> PrivatePostfix:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by whoever adopted it) counts as gone.
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z":
            return False
    return True


@contextlib.contextmanager
def private_postfix(sink_port: int, limits: RelayLimits) -> Iterator[PrivatePostfix]:
    """A started instance, stopped and removed afterwards whatever happens."""
    with PrivatePostfix(sink_port, limits) as relay:
        yield relay
