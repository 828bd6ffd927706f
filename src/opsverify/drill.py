"""Restore drills: bring the newest full backup back in scratch space, prove it, and measure
how long that took (RTO) and how much data it lost (RPO), against the DR objectives.

The disaster is declared at the reference time: what the WAL archive holds then is all that
survives. From there the drill restores the snapshot's files (``restic restore``), recovers
the database to the newest possible moment from the base backup and that WAL (point-in-time
recovery in a scratch instance): the time this takes is the measured RTO, and the reference
time minus the newest heartbeat the recovered database holds is the measured data loss.
Then it verifies every restored file against the snapshot's manifest, and every table (row
count and checksum) of the dump restored into a second scratch instance. Live data is
fingerprinted before and after (files by SHA-256, tables by checksum; of the heartbeat table
the rows up to the first fingerprint): the two must be equal.

Everything happens in a folder of the drill's own below ``dr.scratch``; its scratch
PostgreSQL instances listen on a unix socket in that folder only and archive nothing. The
folder and the instances go when the drill ends, however it ends (failure, timeout, Ctrl-C).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pwd
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from opsverify import backups, message
from opsverify.drivers import postgres
from opsverify.drivers.repository import Repository, Snapshot, newest, open_repository
from opsverify.profile import BackupRepository, BackupSources, PostgresSource, Profile

# What drills are recorded as in the history (``@check(..., records=...)``).
ACTIVITIES = ("restore-drill", "dr-failover")
SUPERUSER = "postgres"  # of the scratch instances, which only the drill can reach
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 30
_POLL_S = 0.2


class DrillError(RuntimeError):
    """The drill could not go on: says which step and why."""


# --- the step log ------------------------------------------------------------------------


@dataclass
class Step:
    name: str
    phase: str  # recover (what the RTO measures), verify, or prove (live data untouched)
    started: datetime
    seconds: float = 0.0
    outcome: str = "running"  # ok, failed, interrupted
    detail: dict[str, Any] = field(default_factory=dict)
    within: str | None = None  # the step this one is part of

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.detail,  # first: what a step reports never hides when and how it ran
            "name": self.name,
            "phase": self.phase,
            "started": self.started.isoformat(),
            "seconds": round(self.seconds, 3),
            "outcome": self.outcome,
            **({"within": self.within} if self.within else {}),
        }


@dataclass
class StepLog:
    steps: list[Step] = field(default_factory=list)
    _open: list[Step] = field(default_factory=list)

    @contextlib.contextmanager
    def step(self, name: str, phase: str) -> Iterator[dict[str, Any]]:
        """Time one step; what it yields to is kept with it (sizes, counts, ids). A step
        taken while another runs is part of it."""
        within = self._open[-1].name if self._open else None
        current = Step(name, phase, datetime.now(UTC), within=within)
        self.steps.append(current)
        self._open.append(current)
        started = time.monotonic()
        try:
            yield current.detail
            current.outcome = "ok"
        except Exception as exc:
            current.outcome, current.detail["error"] = "failed", str(exc)
            raise
        except BaseException:
            current.outcome = "interrupted"
            raise
        finally:
            current.seconds = time.monotonic() - started
            self._open.pop()

    def seconds(self, *phases: str) -> float:
        """Time spent in steps of ``phases`` (all), each counted once (not again as parts)."""
        return sum(
            s.seconds for s in self.steps if s.within is None and (not phases or s.phase in phases)
        )


# --- live data ---------------------------------------------------------------------------


def fingerprint(sources: BackupSources, until: datetime) -> dict[str, Any]:
    """What live data is now: SHA-256 of every data and configuration file, and every
    table's row count and checksum (of the heartbeat table, the rows up to ``until``)."""
    found: dict[str, Any] = {
        "files": {
            path: entry["sha256"]
            for path, entry in backups.Hasher()
            .files([*sources.data_paths, *sources.config_paths])
            .items()
        }
    }
    database = sources.postgres
    if database is not None:
        growing = (database.heartbeat, until) if database.heartbeat else None
        with postgres.consistent_view(database) as (conn, _):
            sums = postgres.table_sums(conn, growing)
            row = conn.execute("SHOW transaction_read_only").fetchone()
        found["tables"] = {name: s.to_dict() for name, s in sums.items()}
        found["read_only"] = row is not None and row[0] == "on"
    found["digest"] = hashlib.sha256(json.dumps(found, sort_keys=True).encode()).hexdigest()
    return found


def differences(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    found = []
    for key in ("files", "tables"):
        old, new = before.get(key, {}), after.get(key, {})
        found += [
            f"{key[:-1]} {name} changed" for name in old if name in new and old[name] != new[name]
        ]
        found += [f"{key[:-1]} {name} disappeared" for name in old if name not in new]
        found += [f"{key[:-1]} {name} appeared" for name in new if name not in old]
    return found


# --- scratch space and scratch PostgreSQL instances ------------------------------------------


def _postgres_user() -> pwd.struct_passwd | None:
    """PostgreSQL refuses to run as root: as root, scratch instances run as postgres."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SUPERUSER)
    except KeyError:
        raise DrillError(
            "running as root needs the user 'postgres' for scratch instances"
        ) from None


def _chown_tree(path: Path, user: pwd.struct_passwd | None) -> None:
    if user is None:
        return
    for folder, dirs, files in os.walk(path):
        os.chown(folder, user.pw_uid, user.pw_gid)
        for name in dirs + files:
            os.chown(os.path.join(folder, name), user.pw_uid, user.pw_gid, follow_symlinks=False)


@dataclass
class Instance:
    """A scratch PostgreSQL instance: data and socket in the drill's folder, no TCP."""

    folder: Path
    user: pwd.struct_passwd | None
    process: subprocess.Popen[bytes] | None = None

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def socket_dir(self) -> Path:
        return self.folder / "run"

    @property
    def log(self) -> Path:
        return self.folder / "postgres.log"

    def source(self, dbname: str = "postgres") -> PostgresSource:
        return PostgresSource(socket_dir=self.socket_dir, port=5432, dbname=dbname, user=SUPERUSER)

    def _as_owner(self) -> dict[str, Any]:
        if self.user is None:
            return {}
        return {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}

    def prepare(self) -> None:
        for path in (self.folder, self.socket_dir):
            path.mkdir(mode=0o700, exist_ok=True)
        _chown_tree(self.folder, self.user)

    def initdb(self) -> None:
        argv = [postgres.tool("initdb"), f"--pgdata={self.data}", f"--username={SUPERUSER}"]
        argv += ["--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync"]
        _run(argv, cwd=self.folder, timeout=120, what="initdb", **self._as_owner())

    def from_base_backup(self, base_tar: Path, wal: Path) -> None:
        """The base backup's files, set to recover from ``wal`` to the end of it."""
        self.data.mkdir(mode=0o700)
        with tarfile.open(base_tar) as tar:
            tar.extractall(self.data)  # noqa: S202 - our own backup's tar, restored and verified
        (self.data / "recovery.signal").touch()
        (self.folder / "recovery.conf").write_text(
            f"restore_command = 'cp {wal}/%f %p'\nrecovery_target_timeline = 'current'\n"
        )
        _chown_tree(self.folder, self.user)
        self.data.chmod(0o700)

    def start(self) -> None:
        (self.folder / "pg_hba.conf").write_text("local all all trust\n")
        (self.folder / "pg_ident.conf").write_text("")
        extra = self.folder / "recovery.conf"
        include = f"include '{extra}'\n" if extra.exists() else ""
        (self.folder / "postgresql.conf").write_text(
            # Recovery needs max_connections & co. at least the original's: defaults (100).
            "timezone = 'UTC'\nlog_timezone = 'UTC'\nlc_messages = 'C'\n" + include
        )
        _chown_tree(self.folder, self.user)
        # On the command line: nothing in the restored configuration can override these.
        settings = {
            "config_file": self.folder / "postgresql.conf",
            "hba_file": self.folder / "pg_hba.conf",
            "ident_file": self.folder / "pg_ident.conf",
            "listen_addresses": "",
            "unix_socket_directories": self.socket_dir,
            "port": 5432,
            "archive_mode": "off",
        }
        argv = [postgres.tool("postgres"), "-D", str(self.data)]
        for name, value in settings.items():
            argv += ["-c", f"{name}={value}"]
        with self.log.open("ab") as out:
            # A session of its own: a Ctrl-C at the terminal reaches the drill, which stops
            # the instance itself, in order.
            self.process = subprocess.Popen(
                argv,
                cwd=self.folder,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **self._as_owner(),
            )
        self._wait(lambda conn: True, START_TIMEOUT_S, "accept connections")

    def wait_recovered(self, timeout: float) -> None:
        """Until recovery has replayed all the WAL it was given and the instance is promoted."""

        def promoted(conn: psycopg.Connection) -> bool:
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
            return row is not None and not row[0]

        self._wait(promoted, timeout, "finish recovery")

    def _wait(self, ready: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process is not None and self.process.poll() is not None:
                raise DrillError(f"scratch PostgreSQL exited ({self._tail()})")
            with (
                contextlib.suppress(postgres.PostgresError, psycopg.Error),
                postgres.connect(self.source(), autocommit=True) as conn,
            ):
                if ready(conn):
                    return
            if time.monotonic() > deadline:
                raise DrillError(f"scratch PostgreSQL did not {what} in {timeout:g} s")
            time.sleep(_POLL_S)

    def _tail(self) -> str:
        """Why it stopped: its FATAL and PANIC lines, else the end of its log."""
        try:
            lines = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return "no log"
        fatal = [line for line in lines if "FATAL:" in line or "PANIC:" in line]
        return " | ".join((fatal or lines)[-5:])

    def stop(self) -> None:
        """Fast shutdown (SIGINT), then SIGKILL for whatever of its process group is left."""
        process, self.process = self.process, None
        stop_group(process, signal.SIGINT)


def stop_group(process: subprocess.Popen[bytes] | None, sig: signal.Signals) -> None:
    """Stop a process started in a session of its own: ``sig`` to its group, then, after
    STOP_TIMEOUT_S, SIGKILL for whatever is left."""
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def _run(argv: list[str], cwd: Path, timeout: float, what: str, **owner: Any) -> None:
    try:
        done = subprocess.run(
            argv,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            **owner,
        )
    except subprocess.TimeoutExpired:
        raise DrillError(f"{what} did not finish in {timeout:g} s") from None
    if done.returncode != 0:
        raise DrillError(f"{what} exited {done.returncode}: {message.tail(done.stderr, 1500)}")


@dataclass
class Scratch:
    """The drill's own folder below ``dr.scratch`` and the instances it started in it."""

    base: Path
    prefix: str = "restore-drill-"
    folder: Path | None = None
    instances: list[Instance] = field(default_factory=list)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)  # stopped at exit
    user: pwd.struct_passwd | None = None
    _owned: bool = False

    def __enter__(self) -> Scratch:
        self.base.mkdir(parents=True, exist_ok=True)
        self.folder = Path(tempfile.mkdtemp(prefix=self.prefix, dir=self.base))
        return self

    def owner(self) -> pwd.struct_passwd | None:
        """Who the scratch instances run as (None: this user), asked the first time an
        instance needs it: a drill that starts none needs no postgres user."""
        from opsverify.sandbox.provision import grant_traversal

        assert self.folder is not None
        if not self._owned:
            self.user, self._owned = _postgres_user(), True
            if self.user is not None:  # the scratch instances' user must reach their folders
                grant_traversal(self.folder, self.user)
        return self.user

    def instance(self, name: str) -> Instance:
        assert self.folder is not None
        created = Instance(self.folder / name, self.owner())
        created.prepare()
        self.instances.append(created)
        return created

    def __exit__(self, *exc: object) -> None:
        for process in self.processes:
            with contextlib.suppress(Exception):
                stop_group(process, signal.SIGTERM)
        for instance in self.instances:
            with contextlib.suppress(Exception):
                instance.stop()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)


# --- the drill -----------------------------------------------------------------------------


@dataclass
class Outcome:
    """What a drill did and found, filled in as it goes (so that a failed or interrupted
    drill still shows its steps); ``problems`` empty means it passed."""

    log: StepLog = field(default_factory=StepLog)
    reference: datetime | None = None  # the moment of the disaster
    snapshot: Snapshot | None = None
    files: dict[str, Any] = field(default_factory=dict)
    tables: list[dict[str, Any]] = field(default_factory=list)
    rto: timedelta | None = None
    rpo: timedelta | None = None
    newest_heartbeat: datetime | None = None
    live: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def verification(self) -> dict[str, Any]:
        return {"files": self.files, "tables": self.tables}


def restore_drill(profile: Profile, config: BackupRepository, outcome: Outcome) -> None:
    """Run the drill against one repository, recording into ``outcome``."""
    backup, dr = profile.backup, profile.dr
    assert backup is not None and backup.sources is not None
    assert dr is not None and dr.scratch is not None
    sources = backup.sources
    repository = open_repository(config)
    with live_data_untouched(sources, outcome, dr.scratch):
        outcome.reference = datetime.now(UTC)
        with Scratch(dr.scratch) as scratch:
            manifest = _recover(outcome, repository, sources, scratch, config.data_timeout)
            _verify(outcome, manifest, scratch)


@contextlib.contextmanager
def live_data_untouched(
    sources: BackupSources | None, outcome: Outcome, scratch: Path | None = None
) -> Iterator[None]:
    """The proof that the drill left live data alone, sound while users write to it: the
    drill reads live data through read-only sessions only (PostgreSQL refuses a write in
    them; each is verified read-only) and writes only below ``scratch``, which lies apart
    from every live path, links resolved. Fingerprints before and after are kept, also after
    a failure or an interruption: on a system nobody writes to they are identical; whatever
    differs was written by others (the drill could write nothing there), and is listed so."""
    if sources is None:
        yield
        return
    log = outcome.log
    with log.step("fingerprint live data (before)", "prove") as detail:
        before_at = datetime.now(UTC)
        before = fingerprint(sources, before_at)
        detail.update(files=len(before["files"]), tables=len(before.get("tables", {})))
    outcome.live = {"before": before["digest"], "heartbeat_rows_until": before_at.isoformat()}
    if scratch is not None:
        outcome.live["scratch"] = str(scratch)
        if overlaps := _overlapping(scratch, sources):  # through a link: stop before writing
            raise DrillError(f"scratch {scratch} overlaps live data: {', '.join(overlaps)}")
    try:
        yield
    finally:
        try:
            with log.step("fingerprint live data (after)", "prove") as detail:
                after = fingerprint(sources, before_at)
                changed = differences(before, after)
                detail.update(identical=not changed)
        except Exception as exc:  # noqa: BLE001 - whatever ended the drill must go on
            outcome.live.update(identical=None, error=str(exc))
            outcome.problems.append(f"live data could not be fingerprinted after the drill: {exc}")
        else:
            sessions = [before.get("read_only"), after.get("read_only")]
            outcome.live.update(
                identical=not changed,
                read_only_sessions=sessions,
                changed_by_others=changed,
            )
            if any(session is False for session in sessions):
                outcome.problems.append("a session of the drill on live data was not read-only")


def _overlapping(scratch: Path, sources: BackupSources) -> list[str]:
    """Live paths the scratch folder is, holds or lies in, links resolved."""
    mine = scratch.resolve()
    found = []
    for live in (sources.staging, *sources.data_paths, *sources.config_paths):
        theirs = live.resolve()
        if mine == theirs or theirs in mine.parents or mine in theirs.parents:
            found.append(str(live))
    return found


def _recover(
    outcome: Outcome,
    repository: Repository,
    sources: BackupSources,
    scratch: Scratch,
    data_timeout: timedelta,
) -> dict[str, Any]:
    """The recovery itself, timed from the reference time (the measured RTO); returns the
    restored snapshot's manifest."""
    manifest, database = recover(outcome, repository, sources, scratch, data_timeout)
    heartbeat = sources.postgres.heartbeat if sources.postgres else None
    if database is not None and heartbeat:
        with outcome.log.step("read the newest heartbeat", "recover") as detail:
            assert sources.postgres is not None
            with postgres.connect(database.source(sources.postgres.dbname)) as conn:
                outcome.newest_heartbeat = postgres.newest_heartbeat(conn, heartbeat)
            detail.update(newest_heartbeat=_iso(outcome.newest_heartbeat))
    if outcome.reference is not None and outcome.newest_heartbeat is not None:
        outcome.rpo = outcome.reference - outcome.newest_heartbeat
    assert outcome.reference is not None
    outcome.rto = datetime.now(UTC) - outcome.reference
    return manifest


def recover(
    outcome: Outcome,
    repository: Repository,
    sources: BackupSources,
    scratch: Scratch,
    data_timeout: timedelta,
) -> tuple[dict[str, Any], Instance | None]:
    """Restore the newest full backup's files into the scratch folder and recover its
    database, in a scratch instance, from the base backup and the WAL archived up to the
    reference time; returns the snapshot's manifest and the recovered instance (None when
    the backup holds no base backup or nothing archives WAL)."""
    log, folder, reference = outcome.log, scratch.folder, outcome.reference
    assert folder is not None and reference is not None
    database = sources.postgres
    with log.step("choose the newest full backup", "recover") as detail:
        snapshot = newest(repository.snapshots(), ("full",))
        if snapshot is None:
            raise DrillError("the repository holds no full backup to restore")
        outcome.snapshot = snapshot
        detail.update(snapshot=snapshot.short_id, time=snapshot.time.isoformat())
    with log.step("restore the snapshot's files", "recover") as detail:
        repository.restore(snapshot.id, folder / "files")
        detail.update(bytes=_size(folder / "files"))
    manifest_file = folder / "files" / backups.manifest_path(sources).lstrip("/")
    try:
        manifest = json.loads(manifest_file.read_text())
    except (OSError, ValueError) as exc:
        raise DrillError(f"snapshot {snapshot.short_id}: no readable manifest ({exc})") from None
    base = manifest.get("base_backup")
    if database is None or database.wal_archive is None or base is None:
        return manifest, None
    with log.step("collect the WAL archived before the reference time", "recover") as detail:
        wal = folder / "wal"
        wal.mkdir()
        for entry in os.scandir(database.wal_archive):
            archived = datetime.fromtimestamp(entry.stat().st_mtime, UTC)
            needed = entry.name >= base["wal_start"] or entry.name.endswith(".history")
            if entry.is_file() and needed and archived <= reference:
                shutil.copyfile(entry.path, wal / entry.name)
        _chown_tree(wal, scratch.owner())
        detail.update(files=len(os.listdir(wal)), from_segment=base["wal_start"])
    with log.step("recover the database to its newest moment", "recover"):
        pitr = scratch.instance("pitr")
        pitr.from_base_backup(folder / "files" / base["folder"].lstrip("/") / "base.tar", wal)
        pitr.start()
        pitr.wait_recovered(data_timeout.total_seconds())
    return manifest, pitr


def _verify(outcome: Outcome, manifest: dict[str, Any], scratch: Scratch) -> None:
    """Every restored file against the manifest, and the dump's tables."""
    log, folder = outcome.log, scratch.folder
    assert folder is not None
    with log.step("verify every file against the manifest", "verify") as detail:
        hasher, bad = backups.Hasher(), []
        for path, entry in sorted(manifest["files"].items()):
            restored = folder / "files" / path.lstrip("/")
            if not restored.is_file():
                bad.append({"path": path, "problem": "missing"})
            elif hasher.sha256(restored) != entry["sha256"]:
                bad.append({"path": path, "problem": "content differs from the manifest"})
        outcome.files.update(checked=len(manifest["files"]), differing=bad)
        detail.update(files=len(manifest["files"]), differing=len(bad))
    for item in bad:
        outcome.problems.append(f"restored file {item['path']}: {item['problem']}")
    expected = manifest.get("database")
    if expected is None:
        return
    with log.step("restore the dump into a scratch instance", "verify") as detail:
        restored = scratch.instance("dump")
        restored.initdb()
        restored.start()
        with postgres.connect(restored.source(), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(expected["name"])))
        target = restored.source(expected["name"])
        dump = folder / "files" / expected["dump"].lstrip("/")
        argv = [postgres.tool("pg_restore"), "-h", str(target.socket_dir), "-p", "5432"]
        argv += ["-U", SUPERUSER, "--no-owner", "--no-privileges", "--jobs=2"]
        argv += [f"--dbname={target.dbname}", str(dump)]
        _run(argv, cwd=folder, timeout=target.timeout.total_seconds(), what="pg_restore")
        detail.update(bytes=dump.stat().st_size)
    with log.step("verify every table against the manifest", "verify") as detail:
        with postgres.consistent_view(target) as (conn, _):
            found = postgres.table_sums(conn)
        for name, want in sorted(expected["tables"].items()):
            got = found.get(name)
            row = {
                "table": name,
                "rows_expected": want["rows"],
                "rows_restored": got.rows if got else None,
                "checksum_matches": bool(got and got.checksum == want["checksum"]),
            }
            outcome.tables.append(row)
            if got is None:
                outcome.problems.append(f"restored table {name}: missing")
            elif got.rows != want["rows"] or got.checksum != want["checksum"]:
                outcome.problems.append(
                    f"restored table {name}: {got.rows} rows, checksum "
                    f"{'matches' if row['checksum_matches'] else 'differs'}; the manifest "
                    f"says {want['rows']} rows"
                )
        detail.update(tables=len(expected["tables"]))


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


# --- what a drill keeps and how it is judged --------------------------------------------------


def keep(outcome: Outcome, profile: Profile, evidence: Any, **figures: Any) -> None:
    """The step log, the live-data proof and the measured figures, as evidence and as the
    record the history keeps (``figures``: the drill's own, besides RTO and RPO)."""
    assert profile.dr is not None
    scale = profile.backup.time_scale if profile.backup else 1
    rto, rpo = profile.dr.rto / scale, profile.dr.rpo / scale
    steps = [s.to_dict() for s in outcome.log.steps]
    evidence.json("steps", steps)
    evidence.remember(
        steps=steps,
        reference=outcome.reference,
        objectives={"rto": str(profile.dr.rto), "rpo": str(profile.dr.rpo), "time_scale": scale},
        live_data=outcome.live,
    )
    evidence.json("live-data", outcome.live)
    evidence.measure(
        rto_s=outcome.rto and round(outcome.rto.total_seconds(), 3),
        rpo_s=outcome.rpo and round(outcome.rpo.total_seconds(), 3),
        rto_objective_s=rto.total_seconds(),
        rpo_objective_s=rpo.total_seconds(),
        drill_s=round(outcome.log.seconds(), 3),
        live_data_identical=outcome.live.get("identical"),
        **figures,
    )


def shortfalls(outcome: Outcome, profile: Profile) -> list[str]:
    """The drill's problems, then the measured RTO and RPO against the objectives (as the
    environment lives them: a sandbox's compressed time)."""
    assert profile.dr is not None
    scale = profile.backup.time_scale if profile.backup else 1
    rto, rpo = profile.dr.rto / scale, profile.dr.rpo / scale
    scaled = f" ({profile.dr.rto}, {profile.dr.rpo} at time scale {scale:g})"
    said = "" if scale == 1 else scaled
    problems = list(outcome.problems)
    if outcome.rto is not None and outcome.rto > rto:
        problems.append(f"recovery took {outcome.rto}, the RTO is {rto}{said}")
    if outcome.rpo is None and not outcome.problems:
        problems.append("data loss not measured: no heartbeat in the recovered database")
    elif outcome.rpo is not None and outcome.rpo > rpo:
        problems.append(f"the recovery lost {outcome.rpo} of data, the RPO is {rpo}{said}")
    return problems
