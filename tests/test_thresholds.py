"""Load thresholds: the k6-like grammar, and judging it against Locust's own statistics of a
real run (tests/data/load/: the live stats CSV and the JSON Locust writes at exit)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from opsverify import thresholds
from opsverify.drivers import locust
from tests.helpers import ROOT

DATA = ROOT / "tests" / "data" / "load"
CSV = DATA / "locust_stats.csv"
FINAL = DATA / "locust.json"


@pytest.mark.parametrize(
    ("text", "scope", "metric", "op", "limit"),
    [
        ("p95 < 500ms", None, "p95", "<", 500),
        ("p99<1.5s", None, "p99", "<", 1500),
        ("p50 <= 2s", None, "p50", "<=", 2000),
        ("error_rate < 1%", None, "error_rate", "<", 1),
        ("error_rate < 0.5 %", None, "error_rate", "<", 0.5),
        ("rps >= 1000", None, "rps", ">=", 1000),
        ("GET /api/v1/items: p95 < 300ms", "GET /api/v1/items", "p95", "<", 300),
        ("/health: rps > 10.5", "/health", "rps", ">", 10.5),
        ("GET /api/v1/items/[id]: p90 < 1s", "GET /api/v1/items/[id]", "p90", "<", 1000),
    ],
)
def test_thresholds_parse(text, scope, metric, op, limit) -> None:
    parsed = thresholds.parse(text)
    assert (parsed.scope, parsed.metric, parsed.op, parsed.limit) == (scope, metric, op, limit)


def test_a_threshold_reads_back_in_one_spelling() -> None:
    assert str(thresholds.parse("  GET /a :  p95<500ms ")) == "GET /a: p95 < 500ms"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("p95 < 500", "p95 needs a duration such as 500ms or 1.5s, not '500'"),
        ("p95 < 5m", "p95 needs a duration"),
        ("p(95) < 500ms", "unknown metric 'p(95)': expected one of p50, p90, p95, p99"),
        ("http_req_failed < 1%", "unknown metric 'http_req_failed'"),
        ("error_rate < 1", "error_rate needs a percentage such as 1%, not '1'"),
        ("rps >= 1k", "rps needs requests per second, a number such as 1000, not '1k'"),
        ("p95 = 500ms", "not a threshold: expected e.g. 'p95 < 500ms'"),
        ("fast", "not a threshold"),
    ],
)
def test_bad_thresholds_say_what_was_expected(text, message) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        thresholds.parse(text)


def _judge(text: str, stats: thresholds.Stats) -> thresholds.Verdict:
    return thresholds.evaluate(thresholds.parse(text), stats)


def test_the_live_csv_is_judged_by_its_own_figures() -> None:
    stats = locust.stats_from_csv(CSV.read_text())
    assert stats is not None
    # Aggregated: 321 requests, 28 failed, 80.527 req/s, p95 3 ms, p99 25 ms
    assert (stats.total.requests, stats.total.failures) == (321, 28)
    assert _judge("p95 < 4ms", stats).passed
    assert not _judge("p99 < 25ms", stats).passed
    assert _judge("p99 <= 25ms", stats).passed
    rate = _judge("error_rate < 1%", stats)
    assert not rate.passed and rate.measured == pytest.approx(100 * 28 / 321)
    # Throughput is successful requests: 80.527 requests/s less 7.024 failures/s.
    assert _judge("rps >= 73.5", stats).passed and not _judge("rps >= 73.6", stats).passed
    # Per request: GET and POST share a name, the method tells them apart.
    assert _judge("GET /api/v1/items/[id]: p95 < 3ms", stats).measured == 2
    assert _judge("POST /api/v1/items: error_rate < 10%", stats).measured == pytest.approx(
        100 * 2 / 26
    )
    assert _judge("/health: error_rate < 1%", stats).passed  # one method only: no ambiguity


def test_a_threshold_without_samples_fails() -> None:
    stats = locust.stats_from_csv(CSV.read_text())
    nowhere = _judge("GET /nowhere: p95 < 10s", stats)
    assert not nowhere.passed and nowhere.measured is None
    assert nowhere.note == "no samples: no request to GET /nowhere was made"
    empty = locust.stats_from_csv(
        CSV.read_text().splitlines()[0] + "\n,Aggregated,0,0,0,0,0,0,0,0,0" + ",N/A" * 11 + "\n"
    )
    assert empty is not None and not _judge("error_rate < 1%", empty).passed


def test_a_name_used_by_two_methods_is_ambiguous() -> None:
    verdict = _judge("/api/v1/items: p95 < 10s", locust.stats_from_csv(CSV.read_text()))
    assert not verdict.passed
    assert "ambiguous" in verdict.note and "GET /api/v1/items, POST /api/v1/items" in verdict.note


def test_a_torn_csv_rewrite_is_no_statistics_yet() -> None:
    text = CSV.read_text()
    assert locust.stats_from_csv(text[: len(text) // 2]) is None  # no Aggregated row yet
    assert locust.stats_from_csv("") is None
    assert locust.stats_from_csv(text.replace("321", "3x1", 1)) is None


def test_final_statistics_count_every_request() -> None:
    final = locust.final_stats(FINAL)
    live = locust.stats_from_csv(CSV.read_text())
    assert final is not None and live is not None
    assert final.total.requests == sum(r.requests for r in final.rows)
    assert final.total.failures == sum(r.failures for r in final.rows)
    # The CSV was last rewritten up to a second before the end: it saw fewer requests.
    assert final.total.requests > live.total.requests
    assert {r.label for r in final.rows} == {r.label for r in live.rows}


def test_final_percentiles_are_locusts_own() -> None:
    """The percentiles computed from the exit JSON equal Locust's own function's, asked in a
    subprocess (importing Locust into pytest would gevent-patch it)."""
    script = """
import json, sys
from locust.stats import calculate_response_time_percentile as percentile
entries = json.load(open(sys.argv[1]))
merged, total = {}, 0
out = {}
for e in entries:
    times = {int(k): v for k, v in e["response_times"].items()}
    n = e["num_requests"] - e["num_none_requests"]
    out[f"{e['method']} {e['name']}"] = [percentile(times, n, p) for p in (0.5, 0.9, 0.95, 0.99)]
    total += n
    for k, v in times.items():
        merged[k] = merged.get(k, 0) + v
out["Aggregated"] = [percentile(merged, total, p) for p in (0.5, 0.9, 0.95, 0.99)]
print(json.dumps(out))
"""
    done = subprocess.run(
        [sys.executable, "-c", script, str(FINAL)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    expected = json.loads(done.stdout)
    final = locust.final_stats(FINAL)
    assert final is not None
    ours = {r.label: [r.percentiles[m] for m in ("p50", "p90", "p95", "p99")] for r in final.rows}
    ours[final.total.label] = [final.total.percentiles[m] for m in ("p50", "p90", "p95", "p99")]
    assert ours == expected


def test_final_rate_is_requests_over_the_span_of_the_run() -> None:
    entries = json.loads(FINAL.read_text())
    span = max(e["last_request_timestamp"] for e in entries) - min(e["start_time"] for e in entries)
    final = locust.final_stats(FINAL)
    assert final is not None
    assert final.total.rps == pytest.approx((final.total.requests - final.total.failures) / span)
    for row in final.rows:  # 14 of the 218 GET /api/v1/items failed: 204 over the span
        assert row.rps == pytest.approx((row.requests - row.failures) / span)
    assert 3 < span < 6  # a 5 s run


def test_failed_requests_are_no_throughput(tmp_path: Path) -> None:
    """Every request answered 502 by the load balancer: many requests per second, none of
    them throughput, in the live CSV and in the statistics at exit."""
    header = CSV.read_text().splitlines()[0]
    rows = [
        "GET,/health,500,500,1,1,0,3,150,100.0,100.0" + ",1" * 11,
        ",Aggregated,500,500,1,1,0,3,150,100.0,100.0" + ",1" * 11,
    ]
    live = locust.stats_from_csv("\n".join([header, *rows]) + "\n")
    assert live is not None
    for scope in ("", "GET /health: "):
        verdict = _judge(f"{scope}rps >= 1", live)
        assert not verdict.passed and verdict.measured == 0
    entry = json.loads(FINAL.read_text())[3]  # GET /health
    (tmp_path / "all-failed.json").write_text(json.dumps([entry | {"num_failures": 34}]))
    final = locust.final_stats(tmp_path / "all-failed.json")
    assert final is not None and final.total.requests == 34
    assert final.total.rps == 0 and final.rows[0].rps == 0


def test_missing_or_broken_final_statistics_are_none(tmp_path: Path) -> None:
    assert locust.final_stats(tmp_path / "absent.json") is None
    (tmp_path / "torn.json").write_text('[{"name": ')
    assert locust.final_stats(tmp_path / "torn.json") is None
    (tmp_path / "empty.json").write_text("[]")
    empty = locust.final_stats(tmp_path / "empty.json")
    assert empty is not None and empty.total.requests == 0


@dataclass(frozen=True)
class Rule:
    threshold: thresholds.Expression
    abort_on_fail: bool = True
    delay_abort_eval: timedelta = timedelta(seconds=5)


def test_abort_judges_only_abort_rules_past_their_delay() -> None:
    stats = locust.stats_from_csv(CSV.read_text())
    assert stats is not None
    lost = Rule(thresholds.parse("error_rate < 1%"))
    assert thresholds.lost([lost], stats, elapsed=4.9) is None
    assert thresholds.lost([lost], stats, elapsed=5) == thresholds.evaluate(lost.threshold, stats)
    assert thresholds.lost([Rule(lost.threshold, abort_on_fail=False)], stats, 60) is None
    assert thresholds.lost([Rule(thresholds.parse("p95 < 1s"))], stats, 60) is None
    # Requests still to come may yet prove a threshold: no samples never abort a run.
    assert thresholds.lost([Rule(thresholds.parse("GET /later: p95 < 1ms"))], stats, 60) is None


def test_a_verdict_names_the_request_it_judged() -> None:
    stats = locust.stats_from_csv(CSV.read_text())
    assert stats is not None
    assert _judge("/health: p95 < 1s", stats).scope == "GET /health"
    assert _judge("p95 < 1s", stats).scope == "all requests"
    empty = thresholds.Stats((), thresholds.Row("", "Aggregated", 0, 0, 0.0, {}))
    assert _judge("p95 < 1s", empty).note == "no samples: no request was made"


@pytest.mark.parametrize(
    ("error", "got"),
    [  # as Locust 2.47 names them in its failures CSV, HttpUser then FastHttpUser
        ("HTTPError('503 Server Error: Service Unavailable for url: /ready')", locust.SERVER_ERROR),
        ("LocustBadStatusCode(code=502)", locust.SERVER_ERROR),
        ("HTTPError('404 Client Error: Not Found for url: 404')", locust.ANSWERED),
        ("LocustBadStatusCode(code=401)", locust.ANSWERED),
        ("CatchResponseError('request timed out')", locust.ANSWERED),
        ("ConnectionRefusedError(111, 'Connection refused')", locust.NONE),
        ("RetriesExceeded('http://127.0.0.1:28998/silent', 0, original=timed out)", locust.NONE),
        (
            "ReadTimeout(ReadTimeoutError(\"HTTPConnectionPool(host='127.0.0.1', port=28997):"
            ' Read timed out. (read timeout=1)"))',
            locust.NONE,
        ),
        ("ConnectionResetError(104, 'Connection reset by peer')", locust.NONE),
        ("HTTPConnectionClosed('connection closed.')", locust.NONE),
        ("gaierror(-2, 'Name or service not known')", locust.NONE),
        (
            "SSLError(SSLCertVerificationError(1, '[SSL: CERTIFICATE_VERIFY_FAILED] certificate"
            " verify failed: unable to get local issuer certificate (_ssl.c:1006)'))",
            locust.TLS,
        ),
        (
            "SSLError(1, '[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)')",
            locust.TLS,
        ),
    ],
)
def test_failed_requests_are_told_apart_by_what_they_got(error: str, got: str) -> None:
    """A 5xx or no answer is what a target that stopped answering gives; a 4xx or a
    locustfile's own verdict is an answer; a TLS failure is a finding."""
    assert locust.answer(error) == got
