"""Where webhooks may connect: the egress policy (pure; no resolution, no connection).

A webhook URL is fetched by the server, from inside its network: without a policy an admin of one
project can make the server POST to its own loopback services, to the cloud metadata service or
to anything on the private network. `public` allows only globally routable unicast addresses,
plus what `PROMPTKEEPER_WEBHOOK_ALLOW` lists (networks, or host names); `any` allows everything.
`auto` is `public` in the production mode (a PostgreSQL database) and `any` in the embedded one
(SQLite: one process, usually on the developer's machine, posting to a local receiver).

The policy is applied twice: to the URL when a webhook is created or changed (`check_url`: a
literal address in any notation the resolver would accept, and `localhost` names), and to every
address a name resolves to when a delivery connects (`refusal`, see `promptkeeper.audit.transport`),
which is the check that counts: names can point anywhere, and can change what they point to.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol
from urllib.parse import urlsplit

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Mode = Literal["public", "any"]

_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_SHARED = ipaddress.ip_network("100.64.0.0/10")
_LOOPBACK_NAMES = (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"))
_ALLOW_HINT = (
    "webhooks may only reach public addresses (PROMPTKEEPER_WEBHOOK_EGRESS=public); "
    "an operator can allow it with PROMPTKEEPER_WEBHOOK_ALLOW"
)


def parse_allow_entry(entry: str) -> Network | str:
    """A network (`10.1.0.0/16`, `127.0.0.1`), or a host name (`hooks.corp`, `*.corp`)."""
    value = entry.strip().lower().rstrip(".")
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        pass
    name = value[2:] if value.startswith("*.") else value
    labels = name.split(".")
    if not name or not all(label and len(label) <= 63 and _is_label(label) for label in labels):
        raise ValueError(f"{entry!r} is neither a network (10.0.0.0/8, 127.0.0.1) nor a host name")
    return value


def _is_label(label: str) -> bool:
    return all(c.isascii() and (c.isalnum() or c in "-_") for c in label)


def literal_address(host: str) -> Address | None:
    """The address a URL's host denotes, in any notation the C resolver accepts: `127.0.0.1`,
    `2130706433`, `0x7f000001`, `0177.0.0.1`, `127.1`, `::ffff:127.0.0.1`; None for a name."""
    value = host.strip("[]")
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        pass
    if value and all(c in "0123456789abcdefxABCDEFX." for c in value):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(value))
        except OSError:
            return None
    return None


def _embedded(address: Address) -> Address:
    """The IPv4 address inside an IPv6 one that reaches it (mapped, 6to4, NAT64, Teredo)."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = address.ipv4_mapped or address.sixtofour
        if inner is not None:
            return inner
        if address.teredo is not None:
            return address.teredo[1]
        if any(address in network for network in _NAT64):
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def internal_kind(address: Address) -> str | None:
    """Why an address is not public (`loopback`, `private`, ...), or None for a public one."""
    inner = _embedded(address)
    for candidate in (inner, address):
        if candidate.is_loopback:
            return "loopback"
        if candidate.is_unspecified:
            return "unspecified: it reaches this host"
        if candidate.is_link_local:
            return "link-local: cloud metadata services live here"
        if candidate.is_multicast:
            return "multicast"
        if isinstance(candidate, ipaddress.IPv4Address) and candidate in _SHARED:
            return "shared: carrier-grade NAT and cloud metadata services"
        if candidate.is_private or (isinstance(candidate, ipaddress.IPv6Address) and candidate.is_site_local):
            return "private"
        if candidate.is_reserved or not candidate.is_global:
            return "reserved"
    return None


def describe(host: str, address: Address, kind: str) -> str:
    """`127.0.0.1 is not a public address (loopback)`; odd notations say what they denote."""
    named = str(_embedded(address))
    prefix = named if host.strip("[]") == named else f"{host.strip('[]')} is {named},"
    return f"{prefix} {'not' if prefix.endswith(',') else 'is not'} a public address ({kind})"


class EgressSettings(Protocol):
    """The settings a policy is built from (`config.Settings`, which imports this module to check
    the allow-list: core does not import config)."""

    @property
    def webhook_egress(self) -> Literal["auto", "public", "any"]: ...

    @property
    def database_url(self) -> str: ...

    @property
    def webhook_allow(self) -> Sequence[str]: ...


@dataclass(frozen=True, slots=True)
class EgressPolicy:
    mode: Mode
    networks: tuple[Network, ...] = ()
    hosts: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings: EgressSettings) -> EgressPolicy:
        mode = settings.webhook_egress
        if mode == "auto":
            production = settings.database_url.startswith("postgresql")
            mode = "public" if production else "any"
        entries = [parse_allow_entry(e) for e in settings.webhook_allow]
        return cls(
            mode=mode,
            networks=tuple(e for e in entries if not isinstance(e, str)),
            hosts=tuple(e for e in entries if isinstance(e, str)),
        )

    def host_allowed(self, host: str) -> bool:
        """An allow-listed name is trusted whatever it resolves to: the operator said so."""
        name = host.lower().rstrip(".")
        for entry in self.hosts:
            if name == entry or (entry.startswith("*.") and name.endswith(entry[1:])):
                return True
        return False

    def refusal(self, address: Address, host: str | None = None) -> str | None:
        """Why a connection to `address` is refused, or None when it is allowed."""
        if self.mode == "any":
            return None
        if any(address in network or _embedded(address) in network for network in self.networks):
            return None
        kind = internal_kind(address)
        return None if kind is None else describe(host or str(address), address, kind)

    def check_url(self, url: str) -> None:
        """Raise ValueError when the URL itself names an address the policy refuses."""
        if self.mode == "any":
            return
        host = (urlsplit(url).hostname or "").rstrip(".")
        if self.host_allowed(host):
            return
        if host == "localhost" or host.endswith(".localhost"):
            if all(self.refusal(a) is not None for a in _LOOPBACK_NAMES):
                raise ValueError(f"{host} is a loopback name; {_ALLOW_HINT}")
            return
        address = literal_address(host)
        if address is None:
            return  # a name: checked against what it resolves to, when a delivery connects
        reason = self.refusal(address, host)
        if reason is not None:
            raise ValueError(f"{reason}; {_ALLOW_HINT}")
