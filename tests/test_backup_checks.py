"""BKP-002..BKP-007 against a real sandbox: its scheduler's restic repository, PostgreSQL's
WAL archive, the manifests. Each seeded fault fails exactly the check (and instance) that
exists to catch it. Faults in the repository are seeded in a copy of it, so the sandbox's
own schedule runs on undisturbed; the profile of such a test points at the copy.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from opsverify import backups, sandbox
from tests.helpers import (
    ROOT,
    files_holding,
    opsverify,
    readiness,
    running_sandbox,
    superuser,
    with_wrong_password,
    write_profile,
)

SELECT = "BKP or OPS-002"
REPOSITORY = "sandbox-restic"
ROWS = ("full", "incremental", "transaction_logs", "configuration")
HEALTHY = {
    f"BKP-001[{REPOSITORY}]": "passed",
    **{f"BKP-002[{row}]": "passed" for row in ROWS},
    "BKP-003[cronos_ai]": "passed",
    **{f"BKP-004[{row}]": "passed" for row in ROWS},
    f"BKP-005[{REPOSITORY}]": "passed",
    f"BKP-006[{REPOSITORY}]": "passed",
    f"BKP-007[{REPOSITORY}]": "passed",
    f"OPS-002[{REPOSITORY}]": "passed",
}
MONTHLY = {f"BKP-006[{REPOSITORY}]"}
PREDEPLOY_ONLY = {f"BKP-007[{REPOSITORY}]"}
DAILY = {k: v for k, v in HEALTHY.items() if k not in MONTHLY | PREDEPLOY_ONLY}


@pytest.fixture(scope="module")
def settings() -> Iterator[sandbox.Settings]:
    # Named so that no path of it contains "bkp": -k would select checks by such paths.
    with running_sandbox(20000, "backups") as state:
        yield state


# BKP-007 wants a full backup made right before a deployment: a minute at the sandbox's time
# scale. These profiles accept the scheduler's own full backups (every 24 minutes) instead;
# the pre-deployment tests below make theirs.
ANY_RECENT_FULL = {"backup__predeploy_within": "2d"}


@pytest.fixture(scope="module")
def profile(settings: sandbox.Settings, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_profile(settings, tmp_path_factory.mktemp("profile"), **ANY_RECENT_FULL)


def run(profile: Path, tmp_path: Path, *args: str, env: dict | None = None) -> dict[str, str]:
    """Run the backup checks; status by ``ID[parameter]``."""
    folder = tmp_path / f"run-{len(list(tmp_path.glob('run-*')))}"
    outcome = opsverify(
        "run",
        "--env",
        str(profile),
        "--run-dir",
        str(folder),
        "-k",
        SELECT,
        *args,
        cwd=ROOT,
        env=env,
    )
    assert outcome.code in (0, 1), outcome.output
    return {f"{c['id']}[{c['parameter']}]": c["status"] for c in readiness(folder)["checks"]}


def message(tmp_path: Path, key: str) -> str:
    folder = sorted(tmp_path.glob("run-*"))[-1]
    return next(
        c["message"] for c in readiness(folder)["checks"] if f"{c['id']}[{c['parameter']}]" == key
    )


def failing(expected: dict[str, str], *keys: str) -> dict[str, str]:
    return {**expected, **dict.fromkeys(keys, "failed")}


# --- restic on a copy of the sandbox's repository ---------------------------------------------


def restic(repo: Path, settings: sandbox.Settings, *args: str) -> str:
    env = {
        "PATH": os.environ["PATH"],
        "RESTIC_REPOSITORY": str(repo),
        "RESTIC_PASSWORD_FILE": str(settings.layout().restic_password),
        "RESTIC_CACHE_DIR": str(repo.parent / "restic-cache"),
    }
    done = subprocess.run(
        ["restic", *args], env=env, capture_output=True, text=True, timeout=120, check=True
    )
    return done.stdout


@pytest.fixture
def copy(settings: sandbox.Settings, tmp_path: Path) -> Path:
    """A copy of the sandbox's repository, taken between two backups of its scheduler."""
    sandbox.stop(settings, "backup-scheduler")  # it finishes the backup in progress first
    try:
        shutil.copytree(settings.layout().restic_repo, tmp_path / "repo")
    finally:
        sandbox.start(settings, "backup-scheduler")
    return tmp_path / "repo"


def run_on_copy(settings: sandbox.Settings, copy: Path, tmp_path: Path, *args: str) -> dict:
    """``run`` with the sandbox's profile pointed at the copy."""
    # Snapshots seeded days old would leave parts of the data unread for longer than
    # read_all_within: BKP-005's own tests below hold it to its limit.
    profile = write_profile(
        settings,
        tmp_path,
        backup__repositories__0__repository=str(copy),
        backup__read_all_within="3650d",
        **ANY_RECENT_FULL,
    )
    # restic's cache is per repository id: the copy must not share the sandbox's.
    return run(profile, tmp_path, *args, env={"XDG_CACHE_HOME": str(tmp_path / "cache")})


def old_snapshot(repo: Path, settings: sandbox.Settings, tmp_path: Path, kind: str, ago) -> None:
    """A real snapshot of ``kind``, dated ``ago`` in the past."""
    folder = tmp_path / f"old-{kind}"
    folder.mkdir()
    (folder / "file").write_text(f"a {kind} backup of {ago} ago\n")
    snapshot(repo, settings, folder, kind, ago=ago)


def snapshot(repo: Path, settings: sandbox.Settings, folder: Path, *tags: str, ago=None) -> str:
    args = ["backup", "--json", *(f"--tag={t}" for t in tags)]
    if ago is not None:  # restic records the time it is given, in local time
        args.append("--time=" + (datetime.now() - ago).strftime("%Y-%m-%d %H:%M:%S"))
    lines = restic(repo, settings, *args, str(folder)).splitlines()
    return json.loads(lines[-1])["snapshot_id"]


def ids(repo: Path, settings: sandbox.Settings, tag: str) -> list[str]:
    found = json.loads(restic(repo, settings, "snapshots", "--json", f"--tag={tag}"))
    return [s["id"] for s in found]


def data_pack_in(
    repo: Path, settings: sandbox.Settings, tmp_path: Path, part: int, parts: int, inside=True
) -> Path:
    """A pack of nothing but new random data in (or, ``inside`` False, outside) part ``part``
    of ``parts`` (restic's subset k/n: the packs whose id's first byte % n is k-1): new
    untagged snapshots until one lands there."""
    for attempt in range(40):
        before = set(restic(repo, settings, "list", "packs").split())
        probe = tmp_path / f"probe-{attempt}"
        probe.mkdir()
        (probe / "random.bin").write_bytes(os.urandom(2 << 20))
        snapshot(repo, settings, probe)
        new = set(restic(repo, settings, "list", "packs").split()) - before
        packs = [repo / "data" / p[:2] / p for p in new]
        pack = max(packs, key=lambda p: p.stat().st_size)  # the data pack; trees are small
        if (int(pack.name[:2], 16) % parts + 1 == part) == inside:
            return pack
    pytest.fail("40 random packs and none in the wanted part of the data")


def corrupt(pack: Path) -> None:
    pack.chmod(0o600)
    data = bytearray(pack.read_bytes())
    data[len(data) // 2] ^= 0xFF
    pack.write_bytes(bytes(data))


# --- the healthy sandbox -------------------------------------------------------------------


def test_every_backup_check_passes_on_a_healthy_sandbox(profile: Path, tmp_path: Path) -> None:
    assert run(profile, tmp_path) == HEALTHY
    folder = sorted(tmp_path.glob("run-*"))[-1]
    checks = {f"{c['id']}[{c['parameter']}]": c for c in readiness(folder)["checks"]}
    # What was measured is in the figures: the WAL's age against the 15 s the RPO becomes.
    assert 0 <= checks["BKP-003[cronos_ai]"]["figures"]["newest_wal_age_s"] <= 15
    assert checks[f"BKP-005[{REPOSITORY}]"]["figures"]["subset"].endswith("/3")


def test_the_scheduler_backs_up_a_configuration_change_within_seconds(
    settings: sandbox.Settings, tmp_path: Path
) -> None:
    layout = settings.layout()
    added = layout.config_dir / "feature-flags.conf"
    content = f"flag = {secrets.token_hex(4)}\n".encode()
    added.write_bytes(content)
    try:
        deadline = time.monotonic() + 30
        while True:
            repo = layout.restic_repo
            newest = ids(repo, settings, "configuration")[-1]
            listing = restic(repo, settings, "ls", "--json", newest)
            if str(added) in listing:
                break
            assert time.monotonic() < deadline, "no configuration backup of the change in 30 s"
            time.sleep(1)
    finally:
        added.unlink()
    manifest = json.loads(
        restic(repo, settings, "dump", newest, str(layout.backup_staging / backups.MANIFEST))
    )
    assert manifest["kind"] == "configuration"
    assert manifest["files"][str(added)]["sha256"] == hashlib.sha256(content).hexdigest()


def test_a_manifest_describes_the_database_as_dumped(
    settings: sandbox.Settings, profile: Path
) -> None:
    outcome = opsverify("backup", "create", "--env", str(profile), "--kind", "incremental")
    assert outcome.code == 0, outcome.output
    layout = settings.layout()
    manifest = json.loads((layout.backup_staging / backups.MANIFEST).read_text())
    tables = manifest["database"]["tables"]
    assert set(tables) == {"public.heartbeat", "public.items"}
    taken = datetime.fromisoformat(manifest["database"]["taken"])
    heartbeat = datetime.fromisoformat(manifest["database"]["heartbeat"])
    assert timedelta(0) <= taken - heartbeat < timedelta(seconds=5)  # one every 2 s
    with superuser(settings) as conn:
        row = conn.execute("SELECT count(*) FROM heartbeat WHERE at <= %s", (heartbeat,)).fetchone()
    assert row == (tables["public.heartbeat"]["rows"],)
    dump = Path(manifest["database"]["dump"])
    assert manifest["files"][str(dump)]["sha256"] == backups.Hasher().sha256(dump)


# --- seeded faults ---------------------------------------------------------------------------


def test_a_stale_full_backup_fails_freshness_of_the_full_row(
    settings: sandbox.Settings, copy: Path, tmp_path: Path
) -> None:
    # Full backups stopped two hours ago (at the sandbox's scale, five days): the copy keeps
    # none of the recent ones and one from then.
    restic(copy, settings, "forget", *ids(copy, settings, "full"))
    old_snapshot(copy, settings, tmp_path, "full", ago=timedelta(hours=2))
    statuses = run_on_copy(settings, copy, tmp_path, "--cadence", "daily")
    assert statuses == failing(DAILY, "BKP-002[full]")
    assert "the newest full backup" in message(tmp_path, "BKP-002[full]")
    assert "the limit is 0:25:00 (1 day, 0:00:00 + 1:00:00 grace at time scale 60)" in message(
        tmp_path, "BKP-002[full]"
    )


def test_a_configuration_change_without_backup_fails_the_configuration_row(
    settings: sandbox.Settings, profile: Path, tmp_path: Path
) -> None:
    layout = settings.layout()
    added = layout.config_dir / "forgotten.conf"
    sandbox.stop(settings, "backup-scheduler")  # the schedule paused: nobody backs it up
    try:
        added.write_text("changed by hand\n")
        ten_minutes_ago = time.time() - 600  # longer ago than the grace (1 h / 60)
        os.utime(added, (ten_minutes_ago, ten_minutes_ago))
        statuses = run(profile, tmp_path, "--cadence", "daily")
    finally:
        added.unlink()
        sandbox.start(settings, "backup-scheduler")
    assert statuses == failing(DAILY, "BKP-002[configuration]")
    text = message(tmp_path, "BKP-002[configuration]")
    assert "configuration changed after its newest backup" in text and str(added) in text


def test_broken_wal_archiving_fails_the_rpo_check(
    settings: sandbox.Settings, profile: Path, tmp_path: Path
) -> None:
    layout = settings.layout()

    def admin(statement: str) -> None:
        with superuser(settings, "postgres") as conn:
            conn.execute(statement)
            conn.execute("SELECT pg_reload_conf()")

    admin("ALTER SYSTEM SET archive_command = 'false'")
    try:
        # The RPO is 15 min / 60 = 15 s: wait until the newest archived segment is older.
        deadline = time.monotonic() + 60
        while (
            datetime.now(UTC) - backups.archived_segments(layout.wal_archive)[-1].archived
        ) < timedelta(seconds=17):
            assert time.monotonic() < deadline, "segments still archived 60 s after the fault"
            time.sleep(0.5)
        statuses = run(profile, tmp_path, "--cadence", "daily")
    finally:
        admin("ALTER SYSTEM RESET archive_command")
    assert statuses == failing(DAILY, "BKP-003[cronos_ai]")
    text = message(tmp_path, "BKP-003[cronos_ai]")
    assert "the limit is 0:00:15 (RPO 0:15:00 at time scale 60)" in text
    assert "archive_command is failing" in text
    # Archiving resumes: the backlog reaches the archive again.
    deadline = time.monotonic() + 30
    while datetime.now(UTC) - backups.archived_segments(layout.wal_archive)[-1].archived > (
        timedelta(seconds=10)
    ):
        assert time.monotonic() < deadline, "archiving did not resume"
        time.sleep(0.5)


def test_a_retention_configured_otherwise_fails_the_retention_check(
    settings: sandbox.Settings, tmp_path: Path
) -> None:
    policy = json.loads(settings.layout().backup_schedule.read_text())
    next(r for r in policy["schedule"] if r["type"] == "full")["retention"] = "10d"
    deployed = tmp_path / "deployed-policy.json"
    deployed.write_text(json.dumps(policy))
    profile = write_profile(settings, tmp_path, backup__repositories__0__policy_file=str(deployed))
    assert run(profile, tmp_path, "--cadence", "daily") == failing(DAILY, "BKP-004[full]")
    assert "full retention configured 10 days, 0:00:00, the handbook says 30 days" in message(
        tmp_path, "BKP-004[full]"
    )


def test_snapshots_beyond_retention_fail_the_retention_check(
    settings: sandbox.Settings, copy: Path, tmp_path: Path
) -> None:
    # An incremental backup of a day ago (at scale: two months) that forget never removed.
    old_snapshot(copy, settings, tmp_path, "incremental", ago=timedelta(days=1))
    statuses = run_on_copy(settings, copy, tmp_path, "--cadence", "daily")
    assert statuses == failing(DAILY, "BKP-004[incremental]")
    assert "`restic forget` is not applied" in message(tmp_path, "BKP-004[incremental]")


def test_a_corrupted_pack_fails_the_monthly_full_read(
    settings: sandbox.Settings, copy: Path, tmp_path: Path
) -> None:
    # Outside part 1/3, the one a daily check without history reads: only the full read
    # finds it.
    corrupt(data_pack_in(copy, settings, tmp_path, 1, parts=3, inside=False))
    statuses = run_on_copy(settings, copy, tmp_path)
    assert statuses == failing(HEALTHY, f"BKP-006[{REPOSITORY}]")
    assert "restic check --read-data found the repository damaged" in message(
        tmp_path, f"BKP-006[{REPOSITORY}]"
    )


def test_a_corrupted_pack_in_the_part_read_fails_the_daily_check(
    settings: sandbox.Settings, copy: Path, tmp_path: Path
) -> None:
    corrupt(data_pack_in(copy, settings, tmp_path, 1, parts=3))
    statuses = run_on_copy(settings, copy, tmp_path, "--cadence", "daily")
    assert statuses == failing(DAILY, f"BKP-005[{REPOSITORY}]")
    failure = message(tmp_path, f"BKP-005[{REPOSITORY}]")
    assert "--read-data-subset=1/3 found the repository damaged" in failure
    assert "Pack ID does not match" in failure


def test_daily_checks_read_the_parts_in_turn_and_find_a_corruption_in_the_next(
    settings: sandbox.Settings, copy: Path, tmp_path: Path
) -> None:
    corrupt(data_pack_in(copy, settings, tmp_path, 2, parts=3))
    # One history for the runs below (tmp_path/history): the second daily check reads 2/3.
    first = run_on_copy(settings, copy, tmp_path, "--cadence", "daily", "-k", "BKP-005")
    second = run_on_copy(settings, copy, tmp_path, "--cadence", "daily", "-k", "BKP-005")
    assert (first, second) == ({f"BKP-005[{REPOSITORY}]": "passed"},) + (
        {f"BKP-005[{REPOSITORY}]": "failed"},
    )
    assert "--read-data-subset=2/3 found the repository damaged" in message(
        tmp_path, f"BKP-005[{REPOSITORY}]"
    )


def test_data_not_all_read_within_the_limit_fails_the_daily_check_until_read_in_full(
    settings: sandbox.Settings, profile: Path, tmp_path: Path
) -> None:
    oldest = json.loads(restic(settings.layout().restic_repo, settings, "snapshots", "--json"))
    age = datetime.now(UTC) - min(datetime.fromisoformat(s["time"]) for s in oldest)
    # A limit of half the repository's age, at the sandbox's time scale of 60.
    limit = f"{int(age.total_seconds() * 60 / 2)}s"
    strict = write_profile(settings, tmp_path, backup__read_all_within=limit, **ANY_RECENT_FULL)
    assert run(strict, tmp_path, "--cadence", "daily", "-k", "BKP-005") == {
        f"BKP-005[{REPOSITORY}]": "failed"
    }
    failure = message(tmp_path, f"BKP-005[{REPOSITORY}]")
    assert f"{REPOSITORY}: 2 parts: not read back within" in failure
    assert "2/3; 3/3; never all of it; read 1/3 now: run BKP-006" in failure
    # The monthly full read counts for every part; the daily check then passes.
    assert run(strict, tmp_path, "--cadence", "monthly", "-k", "BKP-006") == {
        f"BKP-006[{REPOSITORY}]": "passed"
    }
    assert run(strict, tmp_path, "--cadence", "daily", "-k", "BKP-005") == {
        f"BKP-005[{REPOSITORY}]": "passed"
    }
    folder = sorted(tmp_path.glob("run-*"))[-1]
    [check] = readiness(folder)["checks"]
    # Every part was read by the full read: the daily check read the first of them again.
    assert check["figures"]["subset"] == "1/3" and check["figures"]["all_read_since"]


def test_no_recent_full_backup_fails_the_predeploy_check_until_one_is_made(
    settings: sandbox.Settings, tmp_path: Path
) -> None:
    strict = write_profile(settings, tmp_path, backup__predeploy_within="1s")
    predeploy = {
        k: v for k, v in HEALTHY.items() if k.split("[")[0] in ("BKP-001", "BKP-003", "BKP-007")
    }
    assert run(strict, tmp_path, "--cadence", "predeploy") == failing(
        predeploy, f"BKP-007[{REPOSITORY}]"
    )
    assert "--tag pre-deploy` first" in message(tmp_path, f"BKP-007[{REPOSITORY}]")
    made = opsverify("backup", "create", "--env", str(strict), "--tag", "pre-deploy")
    assert made.code == 0, made.output
    assert "full backup" in made.stdout and "pre-deploy" in made.stdout
    within = write_profile(settings, tmp_path, backup__predeploy_within="2h")  # 2 min scaled
    assert run(within, tmp_path, "--cadence", "predeploy") == predeploy


def test_a_dead_scheduler_fails_the_predeploy_and_daily_checks_at_the_sandboxs_time_scale(
    settings: sandbox.Settings, tmp_path: Path
) -> None:
    # 30 minutes of the handbook are 30 s at time scale 60: without the scale both pass.
    strict = write_profile(
        settings, tmp_path, backup__predeploy_within="30m", backup__completed_within="30m"
    )
    checks = {f"BKP-007[{REPOSITORY}]", f"OPS-002[{REPOSITORY}]"}
    sandbox.stop(settings, "backup-scheduler")
    try:
        made = opsverify("backup", "create", "--env", str(strict), "--tag", "pre-deploy")
        assert made.code == 0, made.output
        taken = time.monotonic()
        assert run(strict, tmp_path, "-k", "BKP-007 or OPS-002") == dict.fromkeys(checks, "passed")
        time.sleep(max(0.0, 32 - (time.monotonic() - taken)))
        assert run(strict, tmp_path, "-k", "BKP-007 or OPS-002") == dict.fromkeys(checks, "failed")
    finally:
        sandbox.start(settings, "backup-scheduler")
    assert "(0:30:00 at time scale 60) before this deployment" in message(
        tmp_path, f"BKP-007[{REPOSITORY}]"
    )
    assert "the limit is 0:00:30 (0:30:00 at time scale 60)" in message(
        tmp_path, f"OPS-002[{REPOSITORY}]"
    )


def test_a_wrong_repository_password_fails_clearly_and_leaks_nothing(
    settings: sandbox.Settings, tmp_path: Path
) -> None:
    profile, wrong_value = with_wrong_password(settings, tmp_path)
    statuses = run(profile, tmp_path)
    # Only the WAL archive, which is no restic repository, still checks out.
    untouched = {"BKP-002[transaction_logs]", "BKP-003[cronos_ai]"}
    assert statuses == failing(HEALTHY, *(k for k in HEALTHY if k not in untouched))
    folder = sorted(tmp_path.glob("run-*"))[-1]
    for check in readiness(folder)["checks"]:
        if check["status"] == "failed":
            assert "wrong password or no key found" in check["message"], check
    assert files_holding(folder, wrong_value) == []
    made = opsverify("backup", "create", "--env", str(profile))
    assert made.code == 1 and "wrong password or no key found" in made.stderr
    assert wrong_value not in made.output


def test_backup_create_without_sources_is_a_usage_error(tmp_path: Path) -> None:
    profile = tmp_path / "nosources.yaml"
    profile.write_text("name: nosources\ntier: staging\n")
    outcome = opsverify("backup", "create", "--env", str(profile))
    assert outcome.code == 4
    assert f"{profile}: backup.sources and backup.repositories are required" in outcome.stderr
