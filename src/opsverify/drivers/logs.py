"""Log aggregation driver: Elasticsearch/OpenSearch's search API and Loki's query API.

Each answers one question about one service: when did its newest log line arrive, and how
many arrived within the profile's window. Line contents are never fetched: logs may hold
personal data, and evidence is kept for auditors.

The request helper, the result and the errors here serve the tracing driver too.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from opsverify import message
from opsverify.drivers import http
from opsverify.profile import LogBackend, TraceBackend

# How far back "the newest line" is looked for: far enough to tell "stopped two hours ago"
# from "never arrived", near enough for one cheap query.
LOOK_BACK = timedelta(days=1)
COUNT_LIMIT = 10_000  # Elasticsearch stops counting here: "at least 10000" is plenty
NAMES = {
    "elasticsearch": "Elasticsearch",
    "opensearch": "OpenSearch",
    "loki": "Loki",
    "jaeger": "Jaeger",
    "tempo": "Tempo",
    "zipkin": "Zipkin",
}


class BackendError(RuntimeError):
    """The backend answered, but not with what was asked: an error status, a foreign body.
    (One it cannot reach is a ConnectionError: the plugin reports the check *unreachable*.)"""


@dataclass(frozen=True)
class Recent:
    """What a backend holds for one service."""

    count: int  # items within the profile's window (at least this many when capped)
    newest: datetime | None  # the newest item seen, within the window or the look-back
    newest_item: dict[str, Any]  # which item that is: index and id, stream labels, trace id
    requests: list[str]  # every URL asked (credentials travel in a header, never here)
    capped: bool = False  # the count stopped at the query's limit
    services: list[str] | None = None  # every service the backend knows, where it says


Backend = LogBackend | TraceBackend


def fetch(backend: Backend, path: str, params: dict[str, str | int]) -> tuple[str, Any]:
    """GET a JSON answer from the backend: the URL asked, and the decoded body."""
    url = str(httpx.URL(_at(backend, path), params=params))
    where = f"{NAMES[backend.kind]} at {_at(backend, path)}"
    headers = backend.auth.headers() if backend.auth else {}
    try:
        response = http.get(
            url, timeout=backend.timeout.total_seconds(), ca_file=backend.ca_file, headers=headers
        )
    except httpx.TransportError as exc:
        raise ConnectionError(f"{where} cannot be reached: {type(exc).__name__}: {exc}") from exc
    if response.status_code != 200:
        raise BackendError(f"{where} answered HTTP {response.status_code}: {_reason(response)}")
    with answer_shape(backend, path):
        return url, response.json()


def _at(backend: Backend, path: str) -> str:
    return str(backend.url).rstrip("/") + path


def _reason(response: httpx.Response) -> str:
    """The backend's own words for a refusal: Elasticsearch's error type and reason, Jaeger's
    error messages, or the start of the body (Loki and Tempo answer in plain text)."""
    with contextlib.suppress(ValueError):
        body = response.json()
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            return f"{error.get('type')}: {error.get('reason')}"
        if isinstance(body, dict) and body.get("errors"):
            return "; ".join(str(e.get("msg", e)) for e in body["errors"])
    return message.head(response.text.strip(), 300) or response.reason_phrase


@contextlib.contextmanager
def answer_shape(backend: Backend, path: str) -> Iterator[None]:
    """An answer in another format than the API's (a proxy's error page, a wrong URL) is an
    error naming the backend, not a KeyError."""
    name = NAMES[backend.kind]
    try:
        yield
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise BackendError(
            f"{name} at {_at(backend, path)} answered in an unexpected format "
            f"({type(exc).__name__}: {exc}): is the URL the {name} API?"
        ) from None


def _elasticsearch(backend: LogBackend, window: timedelta) -> Recent:
    """The service's lines in the window: how many, and the newest."""
    field = backend.timestamp_field
    body = {
        "size": 1,
        "track_total_hits": COUNT_LIMIT,
        "_source": [field, backend.service_field],  # never the line itself
        # numeric_type: epoch milliseconds even from a date_nanos field; unmapped_type: an
        # index of the pattern without the field is no error.
        "sort": [{field: {"order": "desc", "numeric_type": "date", "unmapped_type": "date"}}],
        "query": {
            "bool": {
                "filter": [
                    # match_phrase: exact on a keyword field (ECS), a phrase on a text field.
                    {"match_phrase": {backend.service_field: backend.service}},
                    {"range": {field: {"gte": f"now-{int(window.total_seconds())}s"}}},
                ]
            }
        },
    }
    # The body rides in `source` (an Elasticsearch and OpenSearch common option), so the URL
    # is the whole question for the evidence, and the request is a plain GET.
    path = f"/{backend.index}/_search"
    params = {"source": json.dumps(body), "source_content_type": "application/json"}
    url, answer = fetch(backend, path, params)
    with answer_shape(backend, path):
        total, hits = answer["hits"]["total"], answer["hits"]["hits"]
        newest = datetime.fromtimestamp(hits[0]["sort"][0] / 1000, UTC) if hits else None
        item = {k: hits[0][k] for k in ("_index", "_id", "_source")} if hits else {}
        return Recent(total["value"], newest, item, [url], capped=total["relation"] == "gte")


def _search_recent(backend: LogBackend) -> Recent:
    found = _elasticsearch(backend, backend.within)
    if found.count:
        return found
    older = _elasticsearch(backend, LOOK_BACK)  # how old is the newest line, then?
    return Recent(0, older.newest, older.newest_item, found.requests + older.requests)


def _loki_newest(backend: LogBackend, now_ns: int) -> tuple[str, datetime | None, dict]:
    """The newest line of the selector within the look-back: a log query, newest first."""
    start = now_ns - int(LOOK_BACK.total_seconds() * 1e9)
    path = "/loki/api/v1/query_range"
    query = {"query": backend.selector, "limit": 1, "direction": "backward"}
    url, answer = fetch(backend, path, {**query, "start": start, "end": now_ns})
    with answer_shape(backend, path):
        # Streams: [{"stream": {labels}, "values": [["<unix ns>", "<line>"], …]}, …]
        entries = [
            (int(at), stream["stream"])
            for stream in answer["data"]["result"]
            for at, _line in stream["values"]
        ]
    if not entries:
        return url, None, {}
    at, labels = max(entries, key=lambda entry: entry[0])
    return url, datetime.fromtimestamp(at / 1e9, UTC), {"stream": labels}


def _loki_count(backend: LogBackend, now_ns: int) -> tuple[str, int]:
    seconds = int(backend.within.total_seconds())
    query = f"sum(count_over_time({backend.selector}[{seconds}s]))"
    path = "/loki/api/v1/query"
    url, answer = fetch(backend, path, {"query": query, "time": now_ns})
    with answer_shape(backend, path):
        vector = answer["data"]["result"]  # [{"metric": {}, "value": [<unix s>, "<count>"]}]
        return url, int(float(vector[0]["value"][1])) if vector else 0


def _loki_recent(backend: LogBackend) -> Recent:
    now_ns = time.time_ns()
    asked, newest, item = _loki_newest(backend, now_ns)
    if newest is None or datetime.now(UTC) - newest > backend.within:
        return Recent(0, newest, item, [asked])  # nothing to count
    counted, count = _loki_count(backend, now_ns)
    return Recent(count, newest, item, [asked, counted])


_RECENT: dict[str, Callable[[LogBackend], Recent]] = {
    "elasticsearch": _search_recent,
    "opensearch": _search_recent,
    "loki": _loki_recent,
}


def recent(backend: LogBackend) -> Recent:
    """The backend's log lines of ``backend.service``: how many within ``backend.within``, and
    the newest (looked for as far back as LOOK_BACK when none is that recent)."""
    return _RECENT[backend.kind](backend)
