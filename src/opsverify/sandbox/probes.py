"""Quick health questions, one per component, asked the way a client would ask them."""

from __future__ import annotations

import json
import ssl

import httpx
import psycopg
from cryptography import x509

from .settings import DB_NAME, DB_USER, HOST, Ports, Settings

PROBE_TIMEOUT_S = 2.0
SCRAPE_JOBS = ("cronos-ai", "node", "prometheus")


# Component (supervisord program) name -> its URL scheme and its field in ``Ports``.
_ENDPOINTS = {
    "postgres": ("postgresql", "postgres"),
    "cronos-ai": ("http", "service"),
    "nginx": ("https", "https"),
    "prometheus": ("http", "prometheus"),
    "alertmanager": ("http", "alertmanager"),
    "node-exporter": ("http", "node_exporter"),
    "webhook": ("http", "webhook"),
}


def ports_by_component(ports: Ports) -> dict[str, int]:
    return {name: getattr(ports, field) for name, (_, field) in _ENDPOINTS.items()}


def addresses(ports: Ports) -> dict[str, str]:
    """Where each component answers, by component name."""
    urls = {
        name: f"{scheme}://{HOST}:{getattr(ports, field)}"
        for name, (scheme, field) in _ENDPOINTS.items()
    }
    urls["postgres"] += f"/{DB_NAME}"
    return urls


class Probes:
    """``check(name)`` returns what is wrong with a running component, or ''."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._layout = settings.layout()
        self._addresses = addresses(settings.ports)
        # trust_env=False: a proxy from the environment must never see loopback traffic.
        self._http = httpx.Client(timeout=PROBE_TIMEOUT_S, trust_env=False)
        self._https: httpx.Client | None = None

    def __enter__(self) -> Probes:
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()
        if self._https is not None:
            self._https.close()

    def check(self, name: str, pid: int | None = None) -> str:
        """``pid``: the running program's, for components that report through a file."""
        try:
            return self._check(name, pid)
        except (httpx.HTTPError, psycopg.Error, OSError, ValueError) as exc:
            return f"{type(exc).__name__}: {exc}"

    def _check(self, name: str, pid: int | None) -> str:
        if name == "backup-scheduler":
            return self._scheduler(pid)
        base = self._addresses[name]
        if name == "postgres":
            return self._postgres()
        if name == "cronos-ai":
            return _get(self._http, f"{base}/health") or _get(self._http, f"{base}/ready")
        if name == "nginx":
            return _get(self._tls_client(), f"{base}/health")
        if name in ("prometheus", "alertmanager"):
            return _get(self._http, f"{base}/-/ready")
        if name == "node-exporter":
            return _get(self._http, f"{base}/metrics")
        return _get(self._http, f"{base}/health")

    def _scheduler(self, pid: int | None) -> str:
        # It serves nothing: it reports to a file, and is healthy once its first backups exist.
        try:
            report = json.loads(self._layout.backup_status.read_text())
        except FileNotFoundError:
            return "starting"
        if report["pid"] != pid:
            return "starting (the status file is a previous run's)"
        errors = "; ".join(f"{k}: {v}" for k, v in report["errors"].items())
        if not report["ready"]:
            waiting = ", ".join(report["waiting_for"])
            return f"waiting for the first backup of {waiting}" + (f" ({errors})" if errors else "")
        return f"failing: {errors}" if errors else ""

    def _tls_client(self) -> httpx.Client:
        # Verified against the sandbox CA only, as the engine's TLS checks do.
        if self._https is None:
            trust = ssl.create_default_context(cafile=str(self._layout.ca_cert))
            self._https = httpx.Client(timeout=PROBE_TIMEOUT_S, verify=trust, trust_env=False)
        return self._https

    def _postgres(self) -> str:
        # As the application connects: password auth over loopback TCP.
        with psycopg.connect(
            host=HOST,
            port=self._settings.ports.postgres,
            dbname=DB_NAME,
            user=DB_USER,
            password=self._layout.db_password.read_text(encoding="utf-8").strip(),
            connect_timeout=int(PROBE_TIMEOUT_S),
        ) as conn:
            conn.execute("SELECT 1")
        return ""


def _get(client: httpx.Client, url: str) -> str:
    response = client.get(url)
    if response.status_code == 200:
        return ""
    return f"GET {url} -> {response.status_code} {response.text[:200]}"


def unscraped_jobs(ports: Ports) -> list[str]:
    """Scrape jobs Prometheus has not yet scraped successfully, as readable reasons."""
    url = f"http://{HOST}:{ports.prometheus}/api/v1/targets?state=active"
    try:
        with httpx.Client(timeout=PROBE_TIMEOUT_S, trust_env=False) as client:
            targets = client.get(url).raise_for_status().json()["data"]["activeTargets"]
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        return [f"prometheus targets: {exc}"]
    up_jobs = {t["labels"]["job"] for t in targets if t["health"] == "up"}
    waiting = [
        f"prometheus: first scrape of job {job}" for job in SCRAPE_JOBS if job not in up_jobs
    ]
    if waiting:
        return waiting
    # rate() needs two samples in its window: until each job has them, dashboards and
    # utilisation checks would see no data on a sandbox that is, in fact, healthy.
    query = f"http://{HOST}:{ports.prometheus}/api/v1/query"
    try:
        with httpx.Client(timeout=PROBE_TIMEOUT_S, trust_env=False) as client:
            answer = client.get(query, params={"query": "count_over_time(up[1m])"})
            rows = answer.raise_for_status().json()["data"]["result"]
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        return [f"prometheus query: {exc}"]
    samples = {r["metric"].get("job"): float(r["value"][1]) for r in rows}
    return [
        f"prometheus: second scrape of job {job}" for job in SCRAPE_JOBS if samples.get(job, 0) < 2
    ]


def served_certificate(port: int) -> x509.Certificate | None:
    """The certificate nginx presents (unverified: this reads it, it does not trust it)."""
    try:
        pem = ssl.get_server_certificate((HOST, port), timeout=PROBE_TIMEOUT_S)
    except OSError:
        return None
    return x509.load_pem_x509_certificate(pem.encode())
