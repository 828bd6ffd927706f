"""The sandbox, end to end: real PostgreSQL, nginx, Prometheus, Alertmanager, node-exporter,
service and webhook receiver on 127.0.0.1, under one supervisord. No mocks.

The ports (28xxx) and the state dir differ from the defaults, so these tests can run while a
user's own sandbox is up. One sandbox serves the whole module; the tests run in file order
and each leaves it healthy for the next, except the last two, which stop and purge it.
"""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import stat
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pydantic
import pytest

from opsverify.sandbox import (
    DB_NAME,
    DB_USER,
    HOST,
    PROGRAMS,
    Ports,
    SandboxError,
    Settings,
    down,
    issue_server_certificate,
    processes,
    reload,
    restic_env,
    start,
    status,
    stop,
    up,
)
from tests.helpers import sandbox_ports

PORTS = sandbox_ports(28000)
SERVICE = f"http://{HOST}:{PORTS.service}"
PROMETHEUS = f"http://{HOST}:{PORTS.prometheus}"
ALERTMANAGER = f"http://{HOST}:{PORTS.alertmanager}"
WEBHOOK = f"http://{HOST}:{PORTS.webhook}"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Settings]:
    # Not below pytest's basetemp: every new pytest session of the same user resets
    # /tmp/pytest-of-USER to 0700, which would lock PostgreSQL (its own user) out of its data.
    settings = Settings(state_dir=Path(tempfile.mkdtemp(prefix="opsverify-sandbox-")), ports=PORTS)
    try:
        up(settings, timeout=120)
        yield settings
    finally:
        down(settings, purge=True)


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5, trust_env=False) as client:
        yield client


@pytest.fixture(scope="module")
def auth(sandbox: Settings) -> dict[str, str]:
    token = sandbox.layout().api_token.read_text().strip()
    return {"Authorization": f"Bearer {token}"}


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:g} s")
        time.sleep(0.2)
    return result


def db_connect(settings: Settings) -> psycopg.Connection[Any]:
    return psycopg.connect(
        host=HOST,
        port=settings.ports.postgres,
        dbname=DB_NAME,
        user=DB_USER,
        password=settings.layout().db_password.read_text().strip(),
        connect_timeout=2,
    )


def listening_sockets() -> dict[int, tuple[str, int]]:
    """Every listening TCP socket of this network namespace: inode -> (address, port)."""
    found = {}
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A":  # TCP_LISTEN
                continue
            address_hex, port_hex = fields[1].split(":")
            raw = bytes.fromhex(address_hex)
            # The kernel prints the address as native-endian 32-bit words.
            raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            found[int(fields[9])] = (socket.inet_ntop(family, raw), int(port_hex, 16))
    return found


def socket_inodes(pid: int) -> set[int]:
    inodes = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            target = fd.readlink().name
            if target.startswith("socket:["):
                inodes.add(int(target[len("socket:[") : -1]))
    except FileNotFoundError:  # the process (e.g. a short-lived backend) just exited
        pass
    return inodes


def running(pid: int) -> bool:
    """Whether a live (non-zombie) process has this PID."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def received(http: httpx.Client, path: str, alertname: str) -> list[dict[str, Any]]:
    """Webhook deliveries on ``path`` that carry an alert named ``alertname``."""
    deliveries = http.get(f"{WEBHOOK}/received", params={"path": path}).json()
    return [
        alert
        for delivery in deliveries
        for alert in delivery["body"]["alerts"]
        if alert["labels"]["alertname"] == alertname
    ]


# --- settings (no processes) -----------------------------------------------------------------


def test_default_ports_avoid_stock_ports_and_are_distinct() -> None:
    ports = Ports().model_dump()
    assert len(set(ports.values())) == len(ports)
    assert not {8080, 9090, 9093, 9094, 9100, 5432} & set(ports.values())


def test_settings_reject_unknown_keys_and_reused_ports() -> None:
    with pytest.raises(pydantic.ValidationError, match="extra"):
        Settings.model_validate({"state_dir": "x", "colour": "blue"})
    with pytest.raises(pydantic.ValidationError, match="distinct"):
        Ports(service=18000, https=18000)
    with pytest.raises(pydantic.ValidationError):
        Ports(service=80)  # privileged


# --- the running sandbox ---------------------------------------------------------------------


def test_up_brings_every_component_up_healthy(sandbox: Settings) -> None:
    components = {c.name: c for c in status(sandbox)}
    assert set(components) == set(PROGRAMS)
    for component in components.values():
        assert component.state == "running", component
        assert component.pid is not None
        assert component.log.parent == sandbox.layout().log_dir


def test_secrets_and_keys_are_private(sandbox: Settings) -> None:
    layout = sandbox.layout()
    secrets = (layout.db_password, layout.api_token, layout.restic_password)
    for path in (*secrets, layout.ca_key, layout.server_key):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert all(len(path.read_text().strip()) >= 32 for path in secrets)


def test_second_up_is_fast_and_keeps_the_same_processes(sandbox: Settings) -> None:
    before = {c.name: c.pid for c in status(sandbox)}
    started = time.monotonic()
    components = up(sandbox)
    assert time.monotonic() - started < 5
    assert {c.name: c.pid for c in components} == before


def test_every_listening_socket_is_on_loopback(sandbox: Settings) -> None:
    sockets = listening_sockets()
    inodes = set().union(*(socket_inodes(pid) for pid in processes(sandbox)))
    ours = {sockets[inode] for inode in inodes if inode in sockets}
    assert {address for address, _ in ours} == {HOST}
    # Every port but the DR site's, which only a failover drill opens.
    assert {port for _, port in ours} == set(PORTS.model_dump().values()) - {PORTS.dr_service}
    # Alertmanager's cluster gossip is disabled: nobody listens on its port.
    assert 9094 not in {port for _, port in sockets.values()}


def test_up_refuses_ports_taken_by_another_program(sandbox: Settings, tmp_path: Path) -> None:
    other = Settings(state_dir=tmp_path / "other", ports=PORTS)
    with pytest.raises(SandboxError, match=rf"{PORTS.service} \(cronos-ai\)"):
        up(other, timeout=10)
    assert not other.state_dir.exists()


def test_api_requires_the_bearer_token(
    sandbox: Settings, http: httpx.Client, auth: dict[str, str]
) -> None:
    items = f"{SERVICE}/api/v1/items"
    assert http.get(items).status_code == 401
    assert http.get(items, headers={"Authorization": "Bearer wrong"}).status_code == 401

    created = http.post(items, json={"name": "widget"}, headers=auth)
    assert created.status_code == 201
    item = created.json()
    url = f"{items}/{item['id']}"
    assert http.get(url, headers=auth).json()["name"] == "widget"
    updated = http.put(url, json={"name": "gadget", "description": "d"}, headers=auth)
    assert updated.json()["name"] == "gadget"
    assert item["id"] in [i["id"] for i in http.get(items, headers=auth).json()]
    assert http.post(items, json={"name": ""}, headers=auth).status_code == 422
    assert http.delete(url, headers=auth).status_code == 204
    assert http.get(url, headers=auth).status_code == 404
    assert "/api/v1/items/{item_id}" in http.get(f"{SERVICE}/openapi.json").json()["paths"]


def test_api_through_nginx_tls_verified_against_the_sandbox_ca(
    sandbox: Settings, auth: dict[str, str]
) -> None:
    trust = ssl.create_default_context(cafile=str(sandbox.layout().ca_cert))
    with httpx.Client(verify=trust, timeout=5, trust_env=False) as client:
        response = client.get(f"https://{HOST}:{PORTS.https}/api/v1/items", headers=auth)
    assert response.status_code == 200
    assert "max-age" in response.headers["strict-transport-security"]


def test_ready_follows_the_database(sandbox: Settings, http: httpx.Client) -> None:
    assert http.get(f"{SERVICE}/ready").status_code == 200
    stop(sandbox, "postgres")
    try:
        started = time.monotonic()
        response = http.get(f"{SERVICE}/ready")
        assert response.status_code == 503
        assert time.monotonic() - started < 3
        assert "database" in response.json()["reason"]
        assert http.get(f"{SERVICE}/health").status_code == 200  # alive, just not ready
        assert {c.name: c.state for c in status(sandbox)}["cronos-ai"] == "unhealthy"
    finally:
        start(sandbox, "postgres")
    assert http.get(f"{SERVICE}/ready").status_code == 200


def test_heartbeat_rows_accumulate(sandbox: Settings) -> None:
    with db_connect(sandbox) as conn:
        count = conn.execute("SELECT count(*) FROM heartbeat").fetchone()
        time.sleep(4.5)  # two heartbeat intervals and a bit
        later = conn.execute("SELECT count(*), max(at) FROM heartbeat").fetchone()
    assert count is not None and later is not None
    assert later[0] >= count[0] + 2
    assert dt.datetime.now(dt.UTC) - later[1] < dt.timedelta(seconds=5)


def test_metrics_record_requests_by_route(
    sandbox: Settings, http: httpx.Client, auth: dict[str, str]
) -> None:
    http.get(f"{SERVICE}/api/v1/items", headers=auth)
    http.get(f"{SERVICE}/no-such-page")
    text = http.get(f"{SERVICE}/metrics").text
    assert "cronos_ai_up 1.0" in text
    assert 'cronos_ai_http_requests_total{method="GET",route="/api/v1/items",status="200"}' in text
    assert 'cronos_ai_http_request_duration_seconds_bucket{le="0.005",method="GET"' in text
    assert 'route="unmatched",status="404"' in text  # raw paths never become labels


def test_injected_faults_fail_requests_and_count_as_errors(
    sandbox: Settings, http: httpx.Client, auth: dict[str, str]
) -> None:
    faults = f"{SERVICE}/api/v1/faults"
    assert http.put(faults, json={"error_ratio": 1}).status_code == 401
    assert http.put(faults, json={"error_ratio": 2}, headers=auth).status_code == 422
    assert http.put(faults, json={"error_ratio": 1, "latency_ms": 50}, headers=auth).is_success
    try:
        started = time.monotonic()
        assert http.get(f"{SERVICE}/api/v1/items", headers=auth).status_code == 500
        assert time.monotonic() - started >= 0.05
    finally:
        http.delete(faults, headers=auth)
    assert http.get(f"{SERVICE}/api/v1/items", headers=auth).status_code == 200
    assert (
        'cronos_ai_http_errors_total{route="/api/v1/items"}' in http.get(f"{SERVICE}/metrics").text
    )


def test_prometheus_scrapes_every_job_and_loads_the_alert_rules(
    sandbox: Settings, http: httpx.Client
) -> None:
    targets = http.get(f"{PROMETHEUS}/api/v1/targets").json()["data"]["activeTargets"]
    assert {t["labels"]["job"]: t["health"] for t in targets} == {
        "cronos-ai": "up",
        "node": "up",
        "prometheus": "up",
    }
    groups = http.get(f"{PROMETHEUS}/api/v1/rules").json()["data"]["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert "CronosAIDown" in {r["name"] for r in rules}
    for rule in rules:
        assert rule["labels"]["severity"] in {"critical", "warning"}
        assert rule["annotations"]["summary"]
        assert rule["annotations"]["runbook_url"].startswith("runbooks/alerts.md#")


def test_generated_configs_pass_the_official_validators(sandbox: Settings) -> None:
    config = sandbox.layout().config_dir
    for command in (
        ["promtool", "check", "config", str(config / "prometheus.yml")],
        ["amtool", "check-config", str(config / "alertmanager.yml")],
    ):
        result = subprocess.run(command, capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stdout + result.stderr


def test_alerts_are_routed_by_severity(sandbox: Settings, http: httpx.Client) -> None:
    critical, warning = f"TestCritical{uuid.uuid4().hex}", f"TestWarning{uuid.uuid4().hex}"
    alerts = [
        {"labels": {"alertname": critical, "severity": "critical"}},
        {"labels": {"alertname": warning, "severity": "warning"}},
    ]
    assert http.post(f"{ALERTMANAGER}/api/v2/alerts", json=alerts).status_code == 200
    wait_for(lambda: received(http, "/pager", critical), 15, "critical alert on /pager")
    wait_for(lambda: received(http, "/default", warning), 15, "warning alert on /default")
    assert not received(http, "/default", critical)
    assert not received(http, "/pager", warning)
    store = sandbox.layout().webhook_store
    assert critical in store.read_text()


def test_service_outage_pages_through_the_real_alert_rule(
    sandbox: Settings, http: httpx.Client
) -> None:
    stop(sandbox, "cronos-ai")
    try:
        # up == 0 for 15 s (the rule's `for`) + scrape and evaluation intervals of 5 s each.
        firing = wait_for(
            lambda: [
                a for a in received(http, "/pager", "CronosAIDown") if a["status"] == "firing"
            ],
            60,
            "CronosAIDown delivered to /pager",
        )
    finally:
        start(sandbox, "cronos-ai")
    assert firing[0]["labels"]["severity"] == "critical"
    assert firing[0]["annotations"]["runbook_url"]


def test_reissued_short_lived_certificate_is_served_after_reload(sandbox: Settings) -> None:
    trust = ssl.create_default_context(cafile=str(sandbox.layout().ca_cert))

    def served() -> tuple[float, str | None]:
        with (
            socket.create_connection((HOST, PORTS.https), timeout=5) as raw,
            trust.wrap_socket(raw, server_hostname=HOST) as tls,
        ):
            cert = tls.getpeercert()
            assert cert is not None
            return ssl.cert_time_to_seconds(str(cert["notAfter"])), tls.version()

    not_after, version = served()
    assert version == "TLSv1.3"
    assert not_after - time.time() > 80 * 86400  # the default 90-day certificate
    try:
        issue_server_certificate(sandbox, days=5)
        reload(sandbox, "nginx")
        for _ in range(10):  # every worker serves the new certificate, not just one
            assert abs(served()[0] - (time.time() + 5 * 86400)) < 3600
    finally:
        issue_server_certificate(sandbox, days=90)
        reload(sandbox, "nginx")


def test_wal_segments_are_archived(sandbox: Settings) -> None:
    layout = sandbox.layout()
    # The manager's own path: superuser over the unix socket, peer-mapped.
    with psycopg.connect(
        host=str(layout.pg_socket_dir),
        port=PORTS.postgres,
        user="postgres",
        dbname=DB_NAME,
        connect_timeout=2,
        autocommit=True,
    ) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS wal_probe (at timestamptz DEFAULT now())")
        conn.execute("INSERT INTO wal_probe DEFAULT VALUES")
        row = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()
        assert row is not None
        segment = layout.wal_archive / row[0]
        deadline = time.monotonic() + 15
        while not segment.exists():
            if time.monotonic() > deadline:
                archiver = conn.execute("SELECT * FROM pg_stat_archiver").fetchone()
                log_tail = layout.log("postgres").read_text().splitlines()[-10:]
                pytest.fail(f"{segment.name} not archived in 15 s: {archiver} {log_tail}")
            time.sleep(0.2)
        failed = conn.execute("SELECT failed_count FROM pg_stat_archiver").fetchone()
    assert failed == (0,)


def test_restic_repository_opens_with_the_generated_password(sandbox: Settings) -> None:
    layout = sandbox.layout()
    result = subprocess.run(
        ["restic", "cat", "config"],
        env=restic_env(layout),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert '"id"' in result.stdout


def test_no_secret_reaches_a_config_or_log_file(sandbox: Settings) -> None:
    layout = sandbox.layout()
    secrets = [p.read_text().strip() for p in layout.secrets_dir.iterdir()]
    files = [*layout.config_dir.iterdir(), *layout.log_dir.iterdir()]
    leaks = [str(f) for f in files for secret in secrets if secret in f.read_text(errors="replace")]
    assert not leaks


def test_down_stops_everything_and_up_reuses_the_data(
    sandbox: Settings, http: httpx.Client, auth: dict[str, str]
) -> None:
    item = http.post(f"{SERVICE}/api/v1/items", json={"name": "survivor"}, headers=auth).json()
    pids = processes(sandbox)
    assert len(pids) > len(PROGRAMS)  # supervisord, programs, workers and backends

    down(sandbox)
    assert processes(sandbox) == []
    assert not [pid for pid in pids if running(pid)]
    assert all(c.state == "stopped" for c in status(sandbox))
    assert (sandbox.layout().pg_data / "PG_VERSION").exists()

    up(sandbox)
    assert http.get(f"{SERVICE}/api/v1/items/{item['id']}", headers=auth).json() == item


def test_down_purge_removes_the_state_dir(sandbox: Settings) -> None:
    down(sandbox, purge=True)
    assert not sandbox.layout().root.exists()
    down(sandbox, purge=True)  # safe when nothing runs and nothing is left
