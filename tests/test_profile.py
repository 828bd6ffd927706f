"""Profiles: the shipped ones load with the handbook's numbers; broken ones stop with exit 4."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from opsverify import profile as profiles
from tests.helpers import ROOT, opsverify

BROKEN = sorted((ROOT / "tests" / "data" / "profiles" / "broken").glob("*.yaml"))


def _expected(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: "), f"{path} must start with '# expect: <message>'"
    return first.removeprefix("# expect: ")


@pytest.mark.parametrize("path", BROKEN, ids=[p.stem for p in BROKEN])
def test_broken_profile_is_a_usage_error_naming_file_and_key(path: Path) -> None:
    outcome = opsverify("list", "--env", str(path), timeout=60)
    assert outcome.code == 4, outcome.output
    assert str(path) in outcome.stderr
    assert _expected(path) in outcome.stderr
    assert "Traceback" not in outcome.output


def test_broken_profile_stops_a_run_before_any_check(tmp_path: Path) -> None:
    outcome = opsverify("run", "--env", str(BROKEN[0]), cwd=ROOT, timeout=60)
    assert outcome.code == 4, outcome.output
    assert "Traceback" not in outcome.output


@pytest.mark.parametrize("name", ["inline_secret", "yaml_error_with_secret", "url_credentials"])
def test_inline_secret_value_is_not_echoed(name: str) -> None:
    path = ROOT / f"tests/data/profiles/broken/{name}.yaml"
    outcome = opsverify("list", "--env", str(path), timeout=60)
    assert outcome.code == 4
    assert "hunter2" not in outcome.output


def test_missing_profile_names_the_path(tmp_path: Path) -> None:
    outcome = opsverify("list", "--env", "nosuchenv", cwd=ROOT, timeout=60)
    assert outcome.code == 4
    assert "environments/nosuchenv.yaml: profile not found" in outcome.stderr


@pytest.mark.parametrize("name", ["staging.example", "production.example"])
def test_examples_carry_the_handbook_numbers(name: str) -> None:
    p = profiles.load(ROOT / "environments" / f"{name}.yaml")
    assert p.slo is not None and p.resources is not None and p.dr is not None
    assert (p.slo.availability, p.slo.error_rate, p.slo.throughput_rps) == (99.9, 1, 1000)
    assert p.slo.latency_p95 == timedelta(milliseconds=500)
    assert (p.resources.cpu_max, p.resources.memory_max, p.resources.disk_min_free) == (80, 85, 20)
    assert (p.dr.rto, p.dr.rpo) == (timedelta(hours=4), timedelta(minutes=15))
    assert p.kubernetes is not None and p.kubernetes.hpa is not None
    hpa = p.kubernetes.hpa
    assert (hpa.min_replicas, hpa.max_replicas, hpa.target_cpu) == (3, 20, 70)
    assert p.backup is not None
    schedule = {str(e.type): e for e in p.backup.schedule}
    assert schedule["full"].frequency == timedelta(days=1) and schedule["full"].at == "02:00"
    assert schedule["full"].retention == timedelta(days=30)
    assert schedule["incremental"].frequency == timedelta(hours=1)
    assert schedule["incremental"].retention == timedelta(days=7)
    assert schedule["transaction_logs"].frequency == timedelta(minutes=15)
    assert schedule["transaction_logs"].retention == timedelta(hours=24)
    assert schedule["configuration"].frequency == "on_change"
    assert schedule["configuration"].retention == timedelta(days=90)
    assert p.service is not None and "cronos-ai.com" in str(p.service.base_url)


def test_relative_paths_resolve_against_the_profile_folder() -> None:
    p = profiles.load(ROOT / "environments" / "local.yaml")
    assert p.tls is not None and p.tls.ca_file == ROOT / ".sandbox" / "pki" / "ca.pem"
    assert p.backup is not None
    assert p.backup.repositories[0].repository == str(ROOT / ".sandbox" / "restic")


def test_local_profile_urls_use_the_sandbox_ports() -> None:
    """The local profile and its sandbox block must agree, or checks probe the wrong port."""
    p = profiles.load(ROOT / "environments" / "local.yaml")
    assert p.sandbox is not None and p.service is not None and p.tls is not None
    ports = p.sandbox.ports
    assert {e.url.port for e in p.service.endpoints} == {ports.https}
    assert [e.port for e in p.tls.endpoints] == [ports.https]
    assert p.monitoring.prometheus is not None and p.monitoring.alertmanager is not None
    assert p.monitoring.prometheus.url.port == ports.prometheus
    assert p.monitoring.alertmanager.url.port == ports.alertmanager


def test_secret_reference_resolves_env_and_file(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("OPSVERIFY_TEST_SECRET", "s3cret-value")
    (tmp_path / "token").write_text("from-file\n")
    assert profiles.SecretRef(env="OPSVERIFY_TEST_SECRET").resolve() == "s3cret-value"
    assert profiles.SecretRef(file=tmp_path / "token").resolve() == "from-file"
    with pytest.raises(profiles.ProfileError, match="NOT_SET_ANYWHERE is not set"):
        profiles.SecretRef(env="NOT_SET_ANYWHERE").resolve()


def test_an_http_hooks_body_is_sent_as_written(tmp_path: Path) -> None:
    """Keys of a hook's JSON body that look like path keys (file, folder) are the receiver's
    data: they are not made absolute against the profile's folder."""
    path = tmp_path / "dr.yaml"
    path.write_text(
        "name: dr\ntier: sandbox\ndr:\n  rto: 4h\n  rpo: 15m\n  failover:\n"
        "    health: https://127.0.0.1:18443/ready\n"
        "    database: {host: 127.0.0.1, dbname: d, user: u, heartbeat: heartbeat.at}\n"
        "    inject: {command: [./fence.sh]}\n    failback: {command: [./failback.sh]}\n"
        "    activate: {command: [./activate.sh], cwd: scripts}\n"
        "    switch: {http: {url: 'https://127.0.0.1:9/switch', body: {file: zone-a}}}\n"
    )
    failover = profiles.load(path).dr.failover
    assert failover.switch.http.body == {"file": "zone-a"}
    assert failover.activate.cwd == tmp_path / "scripts"  # a real path key still moves
