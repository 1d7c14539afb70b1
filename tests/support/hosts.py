"""Several "hosts" on one machine: network namespaces on a private bridge.

Each :class:`Hosts` makes a bridge with an address of a private /24 of its
own on the machine's side (``10.213.X.1``) and, per host, a network
namespace joined to it by a veth pair (``10.213.X.2``, ``.3`` …). A process
started with :meth:`Hosts.prefix` runs inside a host and reaches the machine
only through its veth: the services the test runs listen on the bridge
address (:attr:`Hosts.gateway`), and :meth:`Hosts.cut` takes one host's link
down, as a pulled cable or a dead switch port would. Only these namespaces,
links and addresses are ever touched; :meth:`Hosts.remove` deletes them all,
after a failure too.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import random
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.debian import PackageUnavailable, ensure_package


class NamespacesUnavailable(RuntimeError):
    """This machine does not let us make network namespaces."""


def ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.decode(errors='replace').strip()}")


def _free_subnet() -> ipaddress.IPv4Network:
    """A 10.213.X.0/24 that no interface of the machine has an address in."""
    used = subprocess.run(
        ["ip", "-4", "-o", "addr", "show"], capture_output=True, check=True, text=True
    ).stdout
    taken = [ipaddress.ip_interface(word) for word in used.split() if "/" in word[1:]]
    for x in random.sample(range(256), 256):
        subnet = ipaddress.IPv4Network(f"10.213.{x}.0/24")
        if not any(address.network.overlaps(subnet) for address in taken):
            return subnet
    raise RuntimeError("no free 10.213.X.0/24 subnet")


@dataclass
class Hosts:
    count: int
    tag: str = field(default_factory=lambda: f"nl{os.getpid() % 100000}")
    subnet: ipaddress.IPv4Network | None = None
    names: list[str] = field(default_factory=list)  # namespaces made so far
    bridge_made: bool = False

    @property
    def bridge(self) -> str:
        return f"{self.tag}br"

    @property
    def gateway(self) -> str:
        """The machine's address on the hosts' network: where services listen."""
        assert self.subnet is not None
        return str(self.subnet.network_address + 1)

    def address(self, n: int) -> str:
        assert self.subnet is not None
        return str(self.subnet.network_address + 2 + n)

    def namespace(self, n: int) -> str:
        return f"{self.tag}-h{n + 1}"

    def inner_link(self, n: int) -> str:
        return f"{self.tag}n{n + 1}"

    def prefix(self, n: int) -> list[str]:
        """Put before a command to run it on host ``n``."""
        return ["ip", "netns", "exec", self.namespace(n)]

    def make(self) -> None:
        if not shutil.which("ip"):
            raise NamespacesUnavailable("the machine has no `ip` command (iproute2)")
        probe = subprocess.run(
            ["ip", "netns", "add", self.namespace(0)], capture_output=True, check=False
        )
        if probe.returncode != 0:
            reason = probe.stderr.decode(errors="replace").strip()
            raise NamespacesUnavailable(f"`ip netns add` is not permitted here: {reason}")
        self.names.append(self.namespace(0))
        self.subnet = _free_subnet()
        ip("link", "add", self.bridge, "type", "bridge")
        self.bridge_made = True
        ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")
        for n in range(self.count):
            if n > 0:
                ip("netns", "add", self.namespace(n))
                self.names.append(self.namespace(n))
            outer, inner, ns = f"{self.tag}v{n + 1}", self.inner_link(n), self.namespace(n)
            ip("link", "add", outer, "type", "veth", "peer", "name", inner)
            ip("link", "set", inner, "netns", ns)
            ip("link", "set", outer, "master", self.bridge)
            ip("link", "set", outer, "up")
            ip("-n", ns, "addr", "add", f"{self.address(n)}/24", "dev", inner)
            ip("-n", ns, "link", "set", inner, "up")
            ip("-n", ns, "link", "set", "lo", "up")

    def cut(self, n: int) -> None:
        """Take host ``n``'s only link down: it can reach nothing any more."""
        ip("-n", self.namespace(n), "link", "set", self.inner_link(n), "down")

    def remove(self) -> None:
        """Delete our namespaces (their veth pairs go with them) and the bridge.
        Stop the processes inside first: a namespace outlives its name while
        a process is in it."""
        for ns in self.names:
            with contextlib.suppress(RuntimeError):
                ip("netns", "del", ns)
        self.names.clear()
        for n in range(self.count):  # left over if a namespace was still busy
            with contextlib.suppress(RuntimeError):
                ip("link", "del", f"{self.tag}v{n + 1}")
        if self.bridge_made:
            with contextlib.suppress(RuntimeError):
                ip("link", "del", self.bridge)
            self.bridge_made = False


@contextlib.contextmanager
def hosts_on_a_bridge(count: int) -> Iterator[Hosts]:
    hosts = Hosts(count)
    try:
        hosts.make()
        yield hosts
    finally:
        hosts.remove()


@dataclass
class PortForward:
    """socat from ``listen`` (an address on the hosts' network) to a local
    service, e.g. the test's PostgreSQL, which listens on loopback only."""

    listen_host: str
    listen_port: int
    target: str  # socat address: TCP:127.0.0.1:5432 or UNIX-CONNECT:/path/.s.PGSQL.5432
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        try:
            ensure_package("socat", "socat")
        except PackageUnavailable as exc:
            raise NamespacesUnavailable(str(exc)) from None
        self.process = subprocess.Popen(
            [
                "socat",
                f"TCP-LISTEN:{self.listen_port},bind={self.listen_host},fork,reuseaddr",
                self.target,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        """End the listener and its children (one per connection: a cut
        host's would otherwise hold its database session open), by their ids."""
        if self.process is not None and self.process.poll() is None:
            pid = self.process.pid
            with contextlib.suppress(OSError):
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
                for child in children:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(int(child), signal.SIGKILL)
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
