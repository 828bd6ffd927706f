"""No secret value reaches a report, a log or the terminal."""

from __future__ import annotations

import pytest

from opsverify.evidence import MASK, Redactor
from tests.helpers import Suite

CANARY = "canary-7f3a9c1e-do-not-leak"


def test_known_secret_values_are_masked_longest_first() -> None:
    redactor = Redactor()
    redactor.add("abc123")
    redactor.add("abc123-longer")
    assert redactor.text("x abc123-longer y abc123") == f"x {MASK} y {MASK}"
    assert redactor.bytes(b"\x00abc123\x00") == b"\x00" + MASK.encode() + b"\x00"


@pytest.mark.parametrize(
    "text",
    [
        "Authorization: Bearer eyJhbGciOi.payload.sig",
        "cookie: session=abcdef; other=1",
        '{"authorization": "Basic dXNlcjpwYXNz", "accept": "*/*"}',
        '{"Set-Cookie": "id=a3fWa; Expires=Wed"}',
    ],
)
def test_credential_headers_are_masked(text: str) -> None:
    masked = Redactor().text(text)
    assert MASK in masked
    for secret in ("eyJhbGciOi", "session=abcdef", "dXNlcjpwYXNz", "id=a3fWa"):
        assert secret not in masked
    assert "accept" in masked or "Authorization" in masked or "cookie" in masked.lower()


def test_passwords_in_urls_are_masked_but_the_url_stays_readable() -> None:
    masked = Redactor().text("postgresql://app:pa55w0rd@127.0.0.1:5432/db and https://h/x")
    assert masked == f"postgresql://app:{MASK}@127.0.0.1:5432/db and https://h/x"


LEAKY_CHECKS = """\
    import logging
    import os
    import sys

    from opsverify import check

    def meta(id):
        return check(id, "leaks on purpose", category="security", severity="low",
                     cadences=["predeploy"], controls=["SOC2:CC6.1"], runbook="")

    SECRET = os.environ["CANARY_TOKEN"]

    @meta("LEK-001")
    def test_evidence_with_secrets(evidence):
        evidence.text("plain", f"token={SECRET}")
        evidence.json("exchange", {"headers": {"Authorization": f"Bearer {SECRET}"}})
        evidence.binary("raw", SECRET.encode() * 3, extension="bin", mime="text/plain")

    @meta("LEK-002")
    def test_failure_message_with_secret():
        print("stdout says", SECRET)
        print("stderr says", SECRET, file=sys.stderr)
        logging.getLogger("leak").warning("log says %s", SECRET)
        assert SECRET == "something else", f"mismatch for {SECRET}"

    @meta("LEK-004")
    def test_secret_where_messages_are_cut():
        # The reports cut messages at 2000 characters, the terminal's table at 300, the
        # summary at 200: each cut falls inside the secret here.
        for cut in (2000, 300, 200):
            print("x" * (cut - 10) + SECRET)
        assert False, "x" * 1990 + SECRET + " and more"

    @meta("LEK-003")
    def test_exception_with_secret():
        try:
            raise KeyError(SECRET)
        except KeyError as exc:
            raise RuntimeError(f"wrapped {SECRET}") from exc
"""


@pytest.mark.parametrize("workers", ["0", "2"])
def test_canary_secret_never_reaches_any_file_or_the_terminal(suite: Suite, workers: str) -> None:
    suite.profile(
        """\
        name: t
        tier: staging
        service:
          name: canary
          base_url: https://127.0.0.1:1
          auth: {token: {env: CANARY_TOKEN}}
        """
    )
    suite.checks("test_leaky.py", LEAKY_CHECKS)
    outcome = suite.run("-n", workers, "--tb=long", "-l", "-rA", env={"CANARY_TOKEN": CANARY})
    assert outcome.code == 1, outcome.output
    assert "LEK-002" in outcome.stdout  # the failure is reported, just masked
    assert MASK in (suite.latest() / "evidence/LEK-001/01-plain.txt").read_text()
    # Not even a fragment: a message cut inside the secret before it was masked left one.
    fragments = {CANARY[i : i + 10] for i in range(len(CANARY) - 9)}
    assert not any(f in outcome.output for f in fragments)
    leaked = [
        p
        for p in suite.root.joinpath("reports").rglob("*")
        if p.is_file() and any(f.encode() in p.read_bytes() for f in fragments)
    ]
    assert leaked == []
    files = list(suite.latest().rglob("*"))
    assert len([p for p in files if p.is_file()]) > 10  # we did look at a real run folder


def test_json_escaped_forms_of_a_secret_are_masked_too() -> None:
    redactor = Redactor()
    redactor.add('pässwörd-"quoted"\\42')
    import json

    escaped = json.dumps({"token": 'pässwörd-"quoted"\\42'})
    assert redactor.leaks(escaped.encode())
    assert "pässwörd" not in redactor.text(escaped) and "p\\u00e4ssw" not in redactor.text(escaped)
    assert redactor.data({"nested": ['x pässwörd-"quoted"\\42 y']}) == {"nested": [f"x {MASK} y"]}
