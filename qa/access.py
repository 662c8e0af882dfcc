"""Who may talk to `docqa serve`. By default it listens on localhost only; any other address needs
an API key, and with a key every route of the process asks for it: the OpenAI API, the page, Gradio's
API and its files. Programs send `Authorization: Bearer KEY`; a browser asks for it once (any user
name, the key as the password) and sends it with every request after that."""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import json

from embeddings.errors import ConfigError

MIN_KEY_CHARS = 16
MAKE_KEY = "python3 -c 'import secrets; print(secrets.token_urlsafe(24))'"


def is_local(host: str) -> bool:
    """Whether `host` reaches this machine only (a loopback address)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_binding(host: str, key: str | None) -> None:
    """Refuse (ConfigError) to serve on an address other machines reach without a key, or with a
    key short enough to guess."""
    if key and not key.isascii():  # an HTTP header carries ASCII: clients could not send the key
        raise ConfigError(
            f"the API key must be ASCII letters, digits and punctuation; make one with: {MAKE_KEY}"
        )
    if key and len(key) < MIN_KEY_CHARS:
        raise ConfigError(
            f"the API key is {len(key)} characters long; use at least {MIN_KEY_CHARS}, "
            f"for example one made by: {MAKE_KEY}"
        )
    if not key and not is_local(host):
        raise ConfigError(
            f"--host {host} lets other machines reach docqa, so it needs an API key: start it as "
            f"DOCQA_API_KEY=$({MAKE_KEY}) docqa serve --host {host} (or pass --api-key KEY). Programs "
            "then send `Authorization: Bearer KEY`; a browser asks for it (any user name, the key as "
            "the password). Leave out --host to serve this machine only, without a key."
        )


def check_origins(origins: list[str], key: str | None) -> None:
    """Refuse (ConfigError) a browser origin that is not one (`scheme://host[:port]`), and `*`
    (every web page) without a key: any page the user opened could then read their documents."""
    for origin in origins:
        if origin == "*":
            if not key:
                raise ConfigError(
                    "--cors '*' lets every web page the user opens call docqa and read the documents: "
                    "name the pages' origins (--cors http://localhost:3000), or serve with an API key"
                )
            continue
        scheme, _, rest = origin.partition("://")
        if scheme not in ("http", "https") or not rest or "/" in rest:
            raise ConfigError(f"--cors {origin!r} is not an origin: give scheme://host[:port], such as "
                              "http://localhost:3000, with no path")  # fmt: skip


def presented(authorization: str) -> str | None:
    """The key in an Authorization header: `Bearer KEY`, or Basic with the key as the password."""
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() == "bearer":
        return value.strip()
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2]
    return None


class KeyGuard:
    """ASGI middleware in front of the whole process: a request without the key gets a 401 (in
    OpenAI's error format under /v1, a browser's login prompt elsewhere) and reaches nothing."""

    def __init__(self, app, key: str) -> None:
        self.app, self._key = app, key.encode()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):  # lifespan: the server's own start and stop
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        given = presented(headers.get(b"authorization", b"").decode("latin-1"))
        if given is not None and hmac.compare_digest(given.encode(), self._key):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        status, head, body = refusal(scope["path"], given is not None)
        await send({"type": "http.response.start", "status": status, "headers": head})
        await send({"type": "http.response.body", "body": body})


def refusal(path: str, wrong: bool) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """The 401 for a request to `path` that brought no key, or (`wrong`) another one."""
    said = "the API key is wrong" if wrong else "docqa needs its API key"
    if path == "/v1" or path.startswith("/v1/"):
        message = f"{said}: send it as `Authorization: Bearer KEY` (the OpenAI clients' api_key)"
        body = {"error": {"message": message, "type": "invalid_request_error", "param": None,
                          "code": "invalid_api_key"}}  # fmt: skip
        head = [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")]
        return 401, head, json.dumps(body).encode()
    message = (
        f"{said}: in a browser, give any user name and the key as the password; from a program, "
        "send `Authorization: Bearer KEY`.\n"
    )
    head = [(b"content-type", b"text/plain; charset=utf-8"),
            (b"www-authenticate", b'Basic realm="docqa", charset="UTF-8"')]  # fmt: skip
    return 401, head, message.encode()
