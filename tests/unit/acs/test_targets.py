"""acs/targets.py: which ConnectionRequestURLs the ACS may call."""

from __future__ import annotations

import ipaddress

import pytest

from acs import targets

LAN = targets.parse_networks(["10.20.0.0/16", "127.0.0.0/8", "fd00:1::/64"])


@pytest.mark.parametrize(("url", "informed_from", "host", "port"), [
    ("http://100.64.3.7:7547/", "100.64.3.7", "100.64.3.7", 7547),
    ("http://100.64.3.7:30005/cr?x=1", "100.64.3.7", "100.64.3.7", 30005),
    ("HTTP://100.64.3.7/", "100.64.3.7", "100.64.3.7", 80),
    ("https://100.64.3.7", "100.64.3.7", "100.64.3.7", 443),
    ("http://[2001:db8::5]:7547/", "2001:db8::5", "2001:db8::5", 7547),
    # a dual-stack socket reports an IPv4 peer as IPv4-mapped IPv6: same device
    ("http://100.64.3.7:7547/", "::ffff:100.64.3.7", "100.64.3.7", 7547),
    ("http://[::ffff:100.64.3.7]:7547/", "100.64.3.7", "100.64.3.7", 7547),
    # inside a configured network: any informing address, even none, even loopback
    ("http://10.20.4.4:7547/", "198.51.100.9", "10.20.4.4", 7547),
    ("http://10.20.4.4:7547/", None, "10.20.4.4", 7547),
    ("http://127.0.0.1:41000/", "127.0.0.1", "127.0.0.1", 41000),
    ("http://[::ffff:127.0.0.1]:7547/", "::ffff:127.0.0.1", "127.0.0.1", 7547),
    ("http://[fd00:1::9]:1/", "192.0.2.1", "fd00:1::9", 1),
    ("http://100.64.3.7:65535", "100.64.3.7", "100.64.3.7", 65535),
])
def test_allowed(url: str, informed_from: str | None, host: str, port: int) -> None:
    target = targets.check(url, informed_from, LAN)
    assert isinstance(target, targets.Target), target
    assert (target.host, target.port, target.url) == (ipaddress.ip_address(host), port, url)


@pytest.mark.parametrize(("url", "informed_from", "why"), [
    ("ftp://100.64.3.7/", "100.64.3.7", "scheme 'ftp'"),
    ("file:///etc/passwd", "100.64.3.7", "scheme 'file'"),
    ("//100.64.3.7/", "100.64.3.7", "not an absolute URL"),
    ("gopher://100.64.3.7:70/", "100.64.3.7", "scheme 'gopher'"),
    ("http://cpe.example.net:7547/", "100.64.3.7", "not an IP address"),
    ("http://localhost:7547/", "100.64.3.7", "not an IP address"),
    # other spellings of an IPv4 address that some resolvers accept
    ("http://2130706433/", "127.0.0.1", "not an IP address"),
    ("http://0x7f.0.0.1/", "127.0.0.1", "not an IP address"),
    ("http://127.1/", "127.0.0.1", "not an IP address"),
    ("http://100.064.3.7/", "100.64.3.7", "not an IP address"),
    ("http://100.64.3.7@10.99.0.1/", "100.64.3.7", "user information"),
    ("http://user:pw@100.64.3.7/", "100.64.3.7", "user information"),
    ("http://100.64.3.7\\@10.99.0.1/", "100.64.3.7", "spaces, control"),
    ("http://100.64.3.7 /", "100.64.3.7", "spaces, control"),
    ("http://100.64.3.7\r\nHost: x/", "100.64.3.7", "spaces, control"),
    ("http://100.64.3.7\u00e9/", "100.64.3.7", "non-ASCII"),
    ("http://100.64.3.7:0/", "100.64.3.7", "not a port number"),
    ("http://100.64.3.7:65536/", "100.64.3.7", "not a port number"),
    ("http://100.64.3.7:+80/", "100.64.3.7", "not a port number"),
    ("http://100.64.3.7:/", "100.64.3.7", "an empty port"),
    ("http://[2001:db8::5]:/", "2001:db8::5", "an empty port"),
    ("http://[2001:db8::5/", "2001:db8::5", "closing bracket"),
    ("http://[2001:db8::5]x/", "2001:db8::5", "garbage"),
    ("http://[fe80::1%25eth0]/", "fe80::1", "zone"),
    ("http:///x", "100.64.3.7", "no host"),
    # another host than the one that informed
    ("http://100.64.3.8:7547/", "100.64.3.7", "neither the address the device informed from"),
    ("http://100.64.3.7:7547/", None, "Inform address is unknown"),
    ("http://100.64.3.7:7547/", "not an address", "Inform address is unknown"),
    # special addresses, even when the device informed from them, unless configured
    ("http://127.0.0.2:7547/", "127.0.0.2", "loopback"),
    ("http://[::1]:7547/", "::1", "loopback"),
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254", "link-local"),
    ("http://[fe80::1]/", "fe80::1", "link-local"),
    ("http://224.0.0.1/", "224.0.0.1", "multicast"),
    ("http://0.0.0.0:7547/", "0.0.0.0", "unspecified"),
    ("http://[::]:7547/", "::", "unspecified"),
    ("http://255.255.255.255/", "255.255.255.255", "reserved"),
    ("http://240.0.0.1/", "240.0.0.1", "reserved"),
])
def test_refused(url: str, informed_from: str | None, why: str) -> None:
    result = targets.check(url, informed_from, targets.parse_networks(["10.20.0.0/16"]))
    assert isinstance(result, str), result
    assert why in result


def test_loopback_needs_a_network_even_when_it_informed_from_there() -> None:
    assert "loopback" in str(targets.check("http://127.0.0.1:7548/", "127.0.0.1", []))
    assert isinstance(targets.check("http://127.0.0.1:7548/", "127.0.0.1", targets.parse_networks(["127.0.0.1/32"])),
                      targets.Target)


def test_parse_networks() -> None:
    assert targets.parse_networks(["10.0.0.5/8", "::1/128"]) == [ipaddress.ip_network("10.0.0.0/8"),
                                                                   ipaddress.ip_network("::1/128")]
    with pytest.raises(ValueError, match=r"'10\.0\.0\.0/33' is not a network"):
        targets.parse_networks(["10.0.0.0/33"])
    assert targets.parse_address("::ffff:10.1.2.3") == ipaddress.ip_address("10.1.2.3")
    assert targets.parse_address("x") is None
