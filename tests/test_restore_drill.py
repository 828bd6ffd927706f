"""DRL-001, the restore drill, against a real sandbox (port block 32000): restic, PostgreSQL
point-in-time recovery in scratch instances, manifests. Healthy, it passes with measured RTO
and RPO inside the objectives; each seeded fault fails it for its own reason; interrupted,
it leaves nothing behind and live data as it was.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from opsverify import backups, drill, sandbox
from opsverify import profile as profiles
from opsverify.drivers import restic
from opsverify.drivers.repository import open_repository
from tests.helpers import (
    OPSVERIFY,
    ROOT,
    files_holding,
    opsverify,
    readiness,
    running_sandbox,
    superuser,
    with_wrong_password,
    write_profile,
)

DRILL = "DRL-001[sandbox-restic]"
ITEMS = 500


@pytest.fixture(scope="module")
def settings() -> Iterator[sandbox.Settings]:
    with running_sandbox(32000, "drills") as state:
        yield state


@pytest.fixture(scope="module")
def profile(settings: sandbox.Settings, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sandbox with data worth restoring: files (one of 20 MiB) and 500 items, in a
    full backup taken now."""
    uploads = settings.layout().data_dir / "uploads"
    uploads.mkdir()
    (uploads / "report.csv").write_text("".join(f"{n},{n * n}\n" for n in range(2000)))
    (uploads / "model.bin").write_bytes(os.urandom(20 << 20))
    with superuser(settings) as conn:
        conn.execute(
            "INSERT INTO items (name, description) SELECT 'item ' || n, repeat('x', n %% 300)"
            " FROM generate_series(1, %s) AS n",
            (ITEMS,),
        )
    path = write_profile(settings, tmp_path_factory.mktemp("profile"))
    made = opsverify("backup", "create", "--env", str(path))
    assert made.code == 0, made.output
    return path


def drill_run(profile: Path, tmp_path: Path, *args: str) -> dict:
    folder = tmp_path / f"run-{len(list(tmp_path.glob('run-*')))}"
    outcome = opsverify(
        "run", "--env", str(profile), "--run-dir", str(folder), "-k", "DRL-001", *args, cwd=ROOT
    )
    assert outcome.code in (0, 1), outcome.output
    return next(c for c in readiness(folder)["checks"] if c["id"] == "DRL-001")


def evidence(tmp_path: Path, result: dict, name: str):
    folder = sorted(tmp_path.glob("run-*"))[-1]
    path = next(folder / e for e in result["evidence"] if e.endswith(f"-{name}.json"))
    return json.loads(path.read_text())


def scratch_of(profile: Path) -> Path:
    loaded = profiles.load(profile)
    assert loaded.dr is not None and loaded.dr.scratch is not None
    return loaded.dr.scratch


def test_a_drill_on_a_healthy_sandbox_passes_inside_the_objectives(
    profile: Path, tmp_path: Path
) -> None:
    result = drill_run(profile, tmp_path)
    assert result["status"] == "passed", result["message"]
    figures = result["figures"]
    assert 0 < figures["rto_s"] <= figures["rto_objective_s"] == 240  # 4 h at time scale 60
    assert 0 <= figures["rpo_s"] <= figures["rpo_objective_s"] == 15  # 15 min at time scale 60
    assert figures["live_data_identical"] is True
    assert figures["drill_s"] >= figures["recover_s"] + figures["verify_s"] - 0.01
    steps = evidence(tmp_path, result, "steps")
    assert [s["outcome"] for s in steps] == ["ok"] * 10
    assert {s["phase"] for s in steps} == {"prove", "recover", "verify"}
    verification = evidence(tmp_path, result, "verification")
    assert verification["files"]["differing"] == [] and verification["files"]["checked"] > 10
    items = next(t for t in verification["tables"] if t["table"] == "public.items")
    assert items == {
        "table": "public.items",
        "rows_expected": ITEMS,
        "rows_restored": ITEMS,
        "checksum_matches": True,
    }
    assert evidence(tmp_path, result, "live-data")["identical"] is True
    assert list(scratch_of(profile).iterdir()) == []  # the drill's folder is gone
    # The history keeps the drill; `opsverify drills` shows it with what it measured.
    history = tmp_path / "history"
    listed = opsverify("drills", "--env", str(profile), "--history", str(history))
    assert listed.code == 0, listed.output
    assert DRILL in listed.stdout and "passed" in listed.stdout and "of 240 s" in listed.stdout
    # A daily run does not repeat the monthly drill: it reads this one back.
    replayed = drill_run(profile, tmp_path, "--cadence", "daily")
    assert replayed["status"] == "passed"
    assert replayed["figures"]["replayed_from"] == "run-0"
    assert replayed["figures"]["rto_s"] == figures["rto_s"]
    records = (history / "records.jsonl").read_text().splitlines()
    assert len(records) == 1  # a read-back result is not recorded again
    # The record: verdict, measured RTO/RPO and objectives, and the steps with their times.
    record = json.loads(records[0])
    assert record["status"] == "passed" and record["figures"]["rpo_s"] == figures["rpo_s"]
    assert [s["seconds"] >= 0 and "started" in s for s in record["details"]["steps"]] == [True] * 10
    assert record["details"]["objectives"] == {"rto": "4:00:00", "rpo": "0:15:00", "time_scale": 60}


def test_a_file_changed_after_its_manifest_fails_the_drill_naming_it(
    settings: sandbox.Settings, profile: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded = profiles.load(profile)
    assert loaded.backup is not None and loaded.backup.sources is not None
    victim = settings.layout().data_dir / "uploads" / "report.csv"
    original = victim.read_bytes()
    store = restic.Restic.backup

    def changing_while_backed_up(self, paths, tags, *, full):  # noqa: ANN001, ANN202
        victim.write_bytes(original + b"written after the manifest was taken\n")
        return store(self, paths, tags, full=full)

    monkeypatch.setattr(restic.Restic, "backup", changing_while_backed_up)
    try:
        repository = open_repository(loaded.backup.repositories[0])
        backups.create(repository, loaded.backup.sources, "full")
    finally:
        monkeypatch.undo()
    try:
        result = drill_run(profile, tmp_path)
    finally:
        victim.write_bytes(original)
        assert opsverify("backup", "create", "--env", str(profile)).code == 0
    assert result["status"] == "failed"
    assert f"restored file {victim}: content differs from the manifest" in result["message"]
    differing = evidence(tmp_path, result, "verification")["files"]["differing"]
    assert differing == [{"path": str(victim), "problem": "content differs from the manifest"}]


def test_broken_wal_archiving_fails_the_drills_rpo_and_wal_freshness(
    settings: sandbox.Settings, profile: Path, tmp_path: Path
) -> None:
    with superuser(settings, "postgres") as conn:
        conn.execute("ALTER SYSTEM SET archive_command = 'false'")
        conn.execute("SELECT pg_reload_conf()")
    try:
        deadline = time.monotonic() + 90
        archive = settings.layout().wal_archive
        while datetime.now(UTC) - backups.archived_segments(archive)[-1].archived < timedelta(
            seconds=20
        ):
            assert time.monotonic() < deadline, "WAL still archived 90 s after the fault"
            time.sleep(0.5)
        result = drill_run(profile, tmp_path, "-k", "DRL-001 or BKP-003")
        wal = next(
            c
            for c in readiness(sorted(tmp_path.glob("run-*"))[-1])["checks"]
            if c["id"] == "BKP-003"
        )
    finally:
        with superuser(settings, "postgres") as conn:
            conn.execute("ALTER SYSTEM RESET archive_command")
            conn.execute("SELECT pg_reload_conf()")
    assert result["status"] == "failed" and wal["status"] == "failed"
    assert "of data, the RPO is 0:00:15" in result["message"]
    assert result["figures"]["rpo_s"] > 20
    assert result["figures"]["rto_s"] <= 240  # the restore itself was quick


def test_an_interrupted_drill_leaves_no_scratch_and_live_data_untouched(
    profile: Path, tmp_path: Path
) -> None:
    loaded = profiles.load(profile)
    assert loaded.backup is not None and loaded.backup.sources is not None
    scratch = scratch_of(profile)
    until = datetime.now(UTC)
    before = drill.fingerprint(loaded.backup.sources, until)
    process = subprocess.Popen(
        [str(OPSVERIFY), "run", "--env", str(profile), "--run-dir", str(tmp_path / "run-0")]
        + ["-k", "DRL-001"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # Ctrl-C while the database is being recovered in its scratch instance.
        deadline = time.monotonic() + 120
        while not list(scratch.glob("restore-drill-*/pitr/data/PG_VERSION")):
            assert process.poll() is None, "the drill ended before it was interrupted"
            assert time.monotonic() < deadline, "the drill never reached the recovery"
            time.sleep(0.02)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=120) == 2  # interrupted
    finally:
        if process.poll() is None:
            process.kill()
    assert list(scratch.iterdir()) == []
    leftovers = subprocess.run(
        ["pgrep", "-f", str(scratch)], capture_output=True, text=True, timeout=10, check=False
    )
    assert leftovers.stdout == ""  # no scratch PostgreSQL left running
    after = drill.fingerprint(loaded.backup.sources, until)
    assert drill.differences(before, after) == [] and after["digest"] == before["digest"]
    # The run says the drill did not finish; its step log, on disk, says where it stopped.
    assert readiness(tmp_path / "run-0")["checks"][0]["status"] == "error"
    steps = json.loads(
        next((tmp_path / "run-0").glob("evidence/DRL-001/*/*-steps.json")).read_text()
    )
    assert [s["outcome"] for s in steps][-2:] == ["interrupted", "ok"]
    assert steps[-1]["name"] == "fingerprint live data (after)"


def test_a_wrong_repository_password_fails_the_drill_clearly_and_leaks_nothing(
    settings: sandbox.Settings, tmp_path: Path
) -> None:
    profile, wrong_value = with_wrong_password(settings, tmp_path)
    result = drill_run(profile, tmp_path)
    assert result["status"] == "failed"
    assert "the drill stopped" in result["message"]
    assert "wrong password or no key found" in result["message"]
    folder = sorted(tmp_path.glob("run-*"))[-1]
    assert files_holding(folder, wrong_value) == []
    assert list(scratch_of(profile).iterdir()) == []


def test_users_writing_to_live_data_during_the_drill_are_not_the_drills_doing(
    settings: sandbox.Settings, profile: Path, tmp_path: Path
) -> None:
    """A production database is written to all the time (here: a concurrent run's load
    test, or users): the drill still passes, its sessions on live data proven read-only, and
    what others changed meanwhile is listed as theirs."""
    stop = threading.Event()
    written = []

    def users() -> None:
        with superuser(settings) as conn:
            while not stop.wait(0.05) and len(written) < 5000:  # bounded in count and time
                conn.execute("INSERT INTO items (name) VALUES ('written meanwhile')")
                written.append(1)

    writer = threading.Thread(target=users, daemon=True)
    writer.start()
    try:
        result = drill_run(profile, tmp_path)
    finally:
        stop.set()
        writer.join(timeout=30)
    assert written, "nobody wrote while the drill ran"
    assert result["status"] == "passed", result["message"]
    assert result["figures"]["live_data_identical"] is False
    live = evidence(tmp_path, result, "live-data")
    assert live["read_only_sessions"] == [True, True]
    assert live["changed_by_others"] == ["table public.items changed"]
