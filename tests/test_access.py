"""Where `docqa serve` may listen and how a request shows the key (the guard itself is tested over
real HTTP in test_openai_routes.py and test_openai_client.py)."""

from __future__ import annotations

import base64
import socket

import pytest

from embeddings.errors import ConfigError
from qa.access import check_binding, is_local, presented
from qa.web import listen

KEY = "k" * 24


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"])
def test_loopback_addresses_are_local(host):
    assert is_local(host)
    check_binding(host, None)  # no key needed


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "10.0.0.5", "docqa.example.org"])
def test_any_other_address_refuses_to_start_without_a_key_and_says_how_to_set_one(host):
    assert not is_local(host)
    with pytest.raises(ConfigError) as refused:
        check_binding(host, None)
    message = str(refused.value)
    assert f"--host {host}" in message and "DOCQA_API_KEY=" in message and "--api-key" in message
    assert "Authorization: Bearer" in message
    check_binding(host, KEY)  # with a key it starts


def test_a_key_short_enough_to_guess_is_refused():
    with pytest.raises(ConfigError, match="use at least 16"):
        check_binding("0.0.0.0", "secret")


def test_a_key_no_http_header_can_carry_is_refused():
    with pytest.raises(ConfigError, match="must be ASCII"):
        check_binding("0.0.0.0", "schlüssel-" + "x" * 16)


@pytest.mark.skipif(not socket.has_dualstack_ipv6(), reason="this machine has no dual-stack IPv6")
def test_serving_on_every_ipv6_address_serves_ipv4_clients_too():
    with listen("::", 0) as listening, socket.create_connection(("127.0.0.1", listening.getsockname()[1]), 5):
        pass  # refused before: an IPv6-only socket


def test_the_key_is_read_from_bearer_or_from_a_browsers_basic_login():
    assert presented(f"Bearer {KEY}") == KEY
    assert presented("Basic " + base64.b64encode(f"anyone:{KEY}".encode()).decode()) == KEY
    assert presented("Basic not-base64!") is None and presented("Token abc") is None and presented("") is None


def test_a_port_taken_or_an_address_not_of_this_machine_is_an_error_that_names_which():
    taken = listen("127.0.0.1", 0)
    port = taken.getsockname()[1]
    try:
        with pytest.raises(ConfigError, match="is docqa already running there"):
            listen("127.0.0.1", port)
    finally:
        taken.close()
    with pytest.raises(ConfigError, match="give --host an address of this machine"):
        listen("192.0.2.1", port)  # TEST-NET-1: never an address of this machine
