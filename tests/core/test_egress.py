"""The webhook egress policy as a table of known addresses: pure, nothing is resolved or connected."""

from __future__ import annotations

import ipaddress

import pytest

from promptkeeper.config import Settings
from promptkeeper.core.egress import EgressPolicy, internal_kind, literal_address, parse_allow_entry


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("0", "0.0.0.0"),
        ("[::1]", "::1"),
        ("::ffff:127.0.0.1", "::ffff:7f00:1"),
        ("example.com", None),
        ("cafe.be", None),  # hex digits, but not an address
        ("1.2.3.4.5", None),
    ],
)
def test_literal_address(host: str, expected: str | None) -> None:
    address = literal_address(host)
    assert (None if address is None else str(address)) == expected


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("8.8.8.8", None),
        ("2606:4700::1111", None),
        ("127.0.0.2", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("2002:7f00:1::", "loopback"),  # 6to4 around 127.0.0.1
        ("64:ff9b::a9fe:a9fe", "link-local: cloud metadata services live here"),  # NAT64 169.254.169.254
        ("169.254.169.254", "link-local: cloud metadata services live here"),
        ("fe80::1", "link-local: cloud metadata services live here"),
        ("100.100.100.200", "shared: carrier-grade NAT and cloud metadata services"),
        ("10.0.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.168.0.1", "private"),
        ("fd00:ec2::254", "private"),
        ("fec0::1", "private"),
        ("0.0.0.0", "unspecified: it reaches this host"),
        ("::", "unspecified: it reaches this host"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("::7f00:1", "reserved"),
        ("240.0.0.1", "private"),
        ("192.0.2.1", "private"),  # documentation range
    ],
)
def test_internal_kind(address: str, kind: str | None) -> None:
    assert internal_kind(ipaddress.ip_address(address)) == kind


def test_allow_list_and_modes() -> None:
    policy = EgressPolicy(
        mode="public",
        networks=(ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("10.1.0.0/16")),
        hosts=("hooks.corp", "*.ci.corp"),
    )
    assert policy.refusal(ipaddress.ip_address("127.0.0.1")) is None
    assert policy.refusal(ipaddress.ip_address("::ffff:127.0.0.1")) is None  # the same address
    assert policy.refusal(ipaddress.ip_address("10.1.200.3")) is None
    assert policy.refusal(ipaddress.ip_address("10.2.0.1")) == "10.2.0.1 is not a public address (private)"
    assert policy.host_allowed("HOOKS.corp.") and policy.host_allowed("a.b.ci.corp")
    assert not policy.host_allowed("ci.corp") and not policy.host_allowed("evilhooks.corp")
    assert EgressPolicy(mode="any").refusal(ipaddress.ip_address("169.254.169.254")) is None
    for url in ("http://0x7f000002/", "http://[::1]/", "http://[fe80::1]/", "http://10.2.0.1/"):
        with pytest.raises(ValueError, match="PROMPTKEEPER_WEBHOOK_ALLOW"):
            policy.check_url(url)
    for url in ("http://127.0.0.1:9/", "http://localhost/", "https://hooks.example/", "http://8.8.8.8/"):
        policy.check_url(url)


def test_auto_means_public_with_postgresql_only() -> None:
    assert EgressPolicy.from_settings(Settings(database_url="postgresql://db/pk")).mode == "public"
    assert EgressPolicy.from_settings(Settings(database_url="sqlite:///pk.db")).mode == "any"
    settings = Settings(database_url="sqlite://", webhook_egress="public", webhook_allow="10.0.0.0/8, *.corp")
    policy = EgressPolicy.from_settings(settings)
    assert policy.networks == (ipaddress.ip_network("10.0.0.0/8"),) and policy.hosts == ("*.corp",)


@pytest.mark.parametrize("entry", ["", "not a host", "10.0.0.0/33", "*.", "a..b", "http://x"])
def test_bad_allow_entries_are_refused(entry: str) -> None:
    with pytest.raises(ValueError):
        parse_allow_entry(entry)


def test_localhost_names_follow_the_loopback_addresses() -> None:
    refused = EgressPolicy(mode="public")
    allowed = EgressPolicy(mode="public", networks=(ipaddress.ip_network("127.0.0.0/8"),))
    for url in ("http://localhost/", "http://LOCALHOST./", "http://app.localhost/"):
        with pytest.raises(ValueError, match="loopback name"):
            refused.check_url(url)
        allowed.check_url(url)
