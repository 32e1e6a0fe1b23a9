"""Webhook destinations: private networks refused, and a request sent to the very
address that was checked (a name that changes its answer cannot redirect it)."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from adapters import webhooks
from adapters.webhooks import Deliverer, check_destination, pinned
from application.settings import Settings
from domain.errors import InvalidValue


def answers(monkeypatch: pytest.MonkeyPatch, *addresses: str) -> list[str]:
    """Make name resolution answer ``addresses``, one call after another; the names
    asked are recorded."""
    asked: list[str] = []
    remaining = list(addresses)

    def resolve(host: str, *_: Any, **__: Any) -> list[Any]:
        asked.append(host)
        address = remaining.pop(0) if len(remaining) > 1 else remaining[0]
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, "", (address, 0))]

    monkeypatch.setattr(webhooks.socket, "getaddrinfo", resolve)
    return asked


@pytest.mark.parametrize(
    "address", ["127.0.0.1", "10.0.0.7", "192.168.1.2", "169.254.169.254", "::1", "fd00::1"]
)
def test_a_name_on_a_private_network_is_refused(
    monkeypatch: pytest.MonkeyPatch, address: str
) -> None:
    answers(monkeypatch, address)
    with pytest.raises(InvalidValue, match="private"):
        check_destination("https://hooks.example.com/x", allow_private=False)


def test_allowing_private_networks_resolves_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = answers(monkeypatch, "127.0.0.1")
    assert check_destination("http://localhost:9/x", allow_private=True) is None
    assert asked == []


def test_a_request_goes_to_the_checked_address_with_the_name_for_host_and_tls() -> None:
    target = pinned("https://hooks.example.com:8443/crm?x=1", "93.184.216.34")
    assert target.url == "https://93.184.216.34:8443/crm?x=1"
    assert target.headers == {"host": "hooks.example.com:8443"}
    assert target.extensions == {"sni_hostname": "hooks.example.com"}
    six = pinned("http://hooks.example.com/crm", "2606:2800:220:1::1")
    assert six.url == "http://[2606:2800:220:1::1]/crm"
    assert six.extensions == {}


def test_a_name_that_turns_private_after_the_check_cannot_redirect_deliveries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked = answers(monkeypatch, "93.184.216.34", "127.0.0.1")
    deliverer = Deliverer(
        app=Any,  # type: ignore[arg-type]
        db=Any,  # type: ignore[arg-type]
        keys=Any,  # type: ignore[arg-type]
        settings=Settings(),
        subscriptions=list,
        render=lambda *_: b"",
        personal=lambda _: False,
    )
    first = deliverer.target("https://hooks.example.com/crm")
    again = deliverer.target("https://hooks.example.com/crm")  # the name now says 127.0.0.1
    assert first.url == again.url == "https://93.184.216.34/crm"
    assert asked == ["hooks.example.com"]  # resolved once a minute, pinned in between
