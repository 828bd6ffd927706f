"""Fixtures shared by the shipped checks."""

from collections.abc import Callable

import httpx
import pytest

from opsverify.drivers import http
from opsverify.profile import Endpoint


@pytest.fixture
def answer(profile, evidence) -> Callable[[Endpoint], httpx.Response]:
    """Request a profile endpoint the way the profile says; the exchange is the evidence."""

    def request(endpoint: Endpoint) -> httpx.Response:
        response = http.call(endpoint, profile.service)
        evidence.json("exchange", http.exchange(response))
        return response

    return request
