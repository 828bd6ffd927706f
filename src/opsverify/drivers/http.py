"""HTTP driver (httpx): one request, and the exchange as evidence."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

import httpx

from opsverify import message
from opsverify.profile import Endpoint, Service

BODY_EXCERPT = 4096
MAX_BODY = 16 * 1024 * 1024  # a health or metrics answer; more is a broken target


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """Trust the profile's CA when it names one, the system store otherwise."""
    if ca_file is not None and not ca_file.is_file():
        raise FileNotFoundError(f"trusted CA file {ca_file} does not exist")
    return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)


def get(
    url: str,
    *,
    timeout: float,
    ca_file: Path | None = None,
    headers: dict[str, str] | None = None,
    method: str = "GET",
    params: dict[str, str] | None = None,
    json: Any = None,
    follow_redirects: bool = False,
) -> httpx.Response:
    """One request within a *total* deadline, from connecting to the last byte of the body:
    httpx's timeouts are per read, so a server dripping a header byte a second would
    otherwise hold a check for as long as it likes. ``json``: a body to send."""
    try:
        return asyncio.run(
            _exchange(url, timeout, ca_file, headers, method, params, json, follow_redirects)
        )
    except TimeoutError:
        raise httpx.ReadTimeout(
            f"no complete answer within {timeout:g} s", request=httpx.Request(method, url)
        ) from None


async def _exchange(
    url: str,
    timeout: float,
    ca_file: Path | None,
    headers: dict[str, str] | None,
    method: str,
    params: dict[str, str] | None,
    json: Any,
    follow_redirects: bool,
) -> httpx.Response:
    async with (
        asyncio.timeout(timeout),
        httpx.AsyncClient(
            verify=tls_context(ca_file), timeout=timeout, follow_redirects=follow_redirects
        ) as client,
        client.stream(method, url, headers=headers, params=params, json=json) as response,
    ):
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > MAX_BODY:
                raise httpx.ReadError(
                    f"answer larger than {MAX_BODY} bytes", request=response.request
                )
        response._content = bytes(body)  # what .read() would set: .text and .json() work
        return response


def call(endpoint: Endpoint, service: Service) -> httpx.Response:
    """Request a profile endpoint the way the profile says: method, credentials, trust."""
    headers = service.auth.headers() if endpoint.auth and service.auth else {}
    return get(
        str(endpoint.url),
        timeout=endpoint.timeout.total_seconds(),
        ca_file=service.ca_file,
        headers=headers,
        method=endpoint.method,
    )


def exchange(response: httpx.Response) -> dict[str, Any]:
    """Request and response as evidence; the evidence writer redacts credentials."""
    request = response.request
    return {
        "request": {
            "method": request.method,
            "url": str(request.url),
            "headers": dict(request.headers),
        },
        "response": {
            "status": response.status_code,
            "http_version": response.http_version,
            "headers": dict(response.headers),
            "elapsed_ms": round(response.elapsed.total_seconds() * 1000, 2),
            "body_excerpt": message.head(response.text, BODY_EXCERPT),
        },
    }
