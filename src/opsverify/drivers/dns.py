"""DNS driver: what a name resolves to, through the system resolver or a named DNS server."""

from __future__ import annotations

import ipaddress
import socket
from ipaddress import IPv4Address, IPv6Address

from opsverify.profile import Dns

Address = IPv4Address | IPv6Address


def resolve(name: str, config: Dns) -> set[Address]:
    """Every A and AAAA address of ``name``; a name that does not exist gives an empty set."""
    if config.resolver is None:
        return _system(name)
    return _server(name, config)


def _system(name: str) -> set[Address]:
    # getaddrinfo has no timeout of its own; resolv.conf's (timeout × attempts) bounds it.
    try:
        infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror:
        return set()
    return {ipaddress.ip_address(info[4][0]) for info in infos}


def _server(name: str, config: Dns) -> set[Address]:
    import dns.resolver  # dnspython: only when a resolver is named

    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [str(config.resolver)]
    resolver.port = config.port
    resolver.lifetime = config.timeout.total_seconds()
    found: set[Address] = set()
    for kind in ("A", "AAAA"):
        try:
            answer = resolver.resolve(name, kind, raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN:
            return set()
        found |= {ipaddress.ip_address(record.address) for record in answer}
    return found
