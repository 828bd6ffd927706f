"""DR failover drills (DRL-002): fail the primary, bring the DR site up, switch the load
balancer to it, prove it serves, fail back, and measure what the failover cost.

Steps, each timed and kept in the step log, in this order: inject (the failure: the primary
stops; the drill then sees the load balancer stop answering healthy), activate (the DR site
comes up from the backups), switch (the load balancer, or DNS, points at the DR site), the
first healthy answer through the load balancer, the DR site's newest heartbeat from before
the disaster, a short probe through the load balancer, verify (the environment's own
check), then failback and cleanup, which run however the drill ended (a failed step,
a timeout, Ctrl-C).

- **RTO** is from the start of inject to the first healthy answer through the load balancer.
- **RPO** is the moment the load balancer stopped answering healthy (the disaster) minus the
  newest heartbeat the DR site's database holds from before it: the data the failover lost.
- **Outage** is what users saw: the health URL through the load balancer, asked every 0.2 s
  (``opsverify.outage``) from the end of inject to the end of failback, counted down from the
  start of inject to the first healthy answer (the failover) and whenever it was unhealthy
  after (failback). The drill's record declares its window (inject to the end of failback)
  with these outages: SLO-001 counts them instead of the primary's stopped scrape targets.

A step is the profile's hook (a command or an HTTP call, within its timeout) or, on a
sandbox profile, the sandbox's own (``opsverify.sandbox.dr``). Live data is fingerprinted
before and after, as in the restore drill.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from opsverify import drill, interrupt, message, outage
from opsverify import probe as probing
from opsverify.drivers import commands, http, postgres
from opsverify.history import WINDOW_KEY, DeclaredWindow
from opsverify.profile import FAILOVER_STEPS, Command, Failover, Hook, PostgresSource, Profile

# However long health_timeout is: a failure that does not show within this is not one.
DOWN_TIMEOUT_S = 60.0
_POLL_S = 0.2
_ANSWER_EXCERPT = 1000

Action = Callable[[dict[str, Any]], None]  # does a step, filling in its details


@dataclass
class Outcome(drill.Outcome):
    probe: dict[str, Any] | None = None  # the probe's evidence
    probe_p95_ms: float | None = None
    failback: timedelta | None = None  # from failback's start to healthy again
    failed_step: str | None = None
    left_behind: str | None = None  # the state failback left, and what restores it
    window: DeclaredWindow | None = None  # inject to failback, with the outages users saw

    def outage_s(self, during: str) -> float | None:
        if self.window is None:
            return None
        return round(sum(o.seconds for o in self.window.outages if o.during == during), 3)


class StepFailed(drill.DrillError):
    def __init__(self, step: str, reason: str) -> None:
        super().__init__(f"step {step} failed: {reason}")
        self.step = step


# --- hooks ---------------------------------------------------------------------------------


def hook_action(hook: Hook, step: str, env: dict[str, str], folder: Path) -> Action:
    """A profile hook as a step: ``folder`` is where a command runs unless ``cwd`` says."""

    def act(detail: dict[str, Any]) -> None:
        if hook.command is not None:
            command = Command(name=step, argv=hook.command, cwd=hook.cwd or folder)
            done = commands.run(command.model_copy(update={"timeout": hook.timeout}), env)
            detail.update(done.evidence())
            if done.timed_out:
                raise RuntimeError(f"{hook.command[0]} did not finish in {hook.timeout}")
            if done.start_error is not None:
                raise RuntimeError(f"{hook.command[0]} could not start: {done.start_error}")
            if not done.ok:
                last = done.output.strip().splitlines()[-1:] or ["no output"]
                raise RuntimeError(f"{hook.command[0]} exited {done.exit_code}: {last[0]}")
            return
        call = hook.http
        assert call is not None
        detail.update(method=call.method, url=str(call.url))
        answer = http.get(
            str(call.url),
            timeout=hook.timeout.total_seconds(),
            ca_file=call.ca_file,
            headers={**(call.auth.headers() if call.auth else {}), "X-Opsverify-Step": step},
            method=call.method,
            json=call.body,
        )
        detail.update(status=answer.status_code, answer=message.head(answer.text, _ANSWER_EXCERPT))
        if answer.status_code not in call.expect:
            expected = ", ".join(map(str, call.expect))
            raise RuntimeError(f"{call.url} answered {answer.status_code}, expected {expected}")

    return act


# --- the drill -----------------------------------------------------------------------------


@dataclass
class Plan:
    """What each step does here, and where the DR site's database is read."""

    actions: dict[str, Action]
    database: Callable[[], PostgresSource]
    # What puts the primary back by hand, should failback not complete.
    restore: str = "the environment's failback procedure"


def plan(profile: Profile, scratch: drill.Scratch | None, outcome: Outcome) -> Plan:
    """The profile's hooks; on a sandbox profile, the sandbox's steps where it has none."""
    failover = _failover(profile)
    env = {"OPSVERIFY_ENV": profile.name}
    if scratch is not None and scratch.folder is not None:
        env["OPSVERIFY_DR_SCRATCH"] = str(scratch.folder)
    actions: dict[str, Action] = {}
    given = failover.database
    database: Callable[[], PostgresSource] | None = (lambda: given) if given else None
    if profile.sandbox is not None:
        from opsverify.sandbox import dr

        settings = profile.sandbox_settings()
        assert settings is not None and scratch is not None
        site = dr.Site(settings, profile, scratch)
        ports = settings.ports

        def failback(detail: dict[str, Any]) -> None:
            # Each part however the others end: the load balancer must never stay on a DR
            # site that is gone.
            try:
                detail.update(dr.restore_primary(settings))
            finally:
                try:
                    detail.update(dr.switch(settings, ports.service))
                finally:
                    detail.update(site.stop())

        actions = {
            "inject": lambda d: d.update(dr.fail_primary(settings)),
            "activate": lambda d: d.update(site.activate(outcome)),
            "switch": lambda d: d.update(dr.switch(settings, ports.dr_service)),
            "failback": failback,
        }
        database = database or site.heartbeat_source
    folder = profile.source.parent if profile.source else Path.cwd()
    for step in FAILOVER_STEPS:
        hook = getattr(failover, step)
        if hook is not None:
            actions[step] = hook_action(hook, step, {**env, "OPSVERIFY_DR_STEP": step}, folder)
    if database is None:
        raise drill.DrillError("no DR site database to read the heartbeat from")
    return Plan(actions, database, _restore(profile, failover.failback))


def _restore(profile: Profile, failback: Hook | None) -> str:
    if failback is None:  # the sandbox's own: `up` starts the primary and switches back
        return f"opsverify sandbox up --env {profile.source or profile.name}"
    if failback.command is not None:
        return " ".join(failback.command) + (f" (in {failback.cwd})" if failback.cwd else "")
    assert failback.http is not None
    return f"{failback.http.method} {failback.http.url}"


def _failover(profile: Profile) -> Failover:
    assert profile.dr is not None and profile.dr.failover is not None
    return profile.dr.failover


def failover_drill(profile: Profile, outcome: Outcome) -> None:
    """Run the drill, recording into ``outcome`` (its problems empty: it passed)."""
    assert profile.dr is not None
    sources = profile.backup.sources if profile.backup else None
    scratch = drill.Scratch(profile.dr.scratch, "dr-failover-") if profile.dr.scratch else None
    with (
        drill.live_data_untouched(sources, outcome, profile.dr.scratch),
        scratch or contextlib.nullcontext(),
    ):
        _drill(profile, plan(profile, scratch, outcome), outcome)


def _drill(profile: Profile, plan: Plan, outcome: Outcome) -> None:
    failover, actions = _failover(profile), plan.actions
    health = _Health(failover.health, failover.ca_file or _service_ca(profile))
    started = datetime.now(UTC)
    watch = outage.Watch(str(health.url), health.ca_file, since=started)
    try:
        try:
            _step(outcome, "inject", "failover", actions["inject"])
        finally:
            # Watched from here: during inject its requests would meet a half-failed primary
            # and count among its 5xx; the outage counts from the start of inject anyway.
            watch.start()
        with _timed(outcome, "the load balancer stops answering healthy", "failover") as d:
            d.update(health.wait(healthy=False, timeout=DOWN_TIMEOUT_S))
        outcome.reference = datetime.now(UTC)
        _step(outcome, "activate", "failover", actions["activate"])
        _step(outcome, "switch", "failover", actions["switch"])
        with _timed(outcome, "first healthy answer through the load balancer", "failover") as d:
            d.update(health.wait(healthy=True, timeout=failover.health_timeout.total_seconds()))
        outcome.rto = datetime.now(UTC) - started
        with _timed(outcome, "the DR site's newest heartbeat before the disaster", "verify") as d:
            source = plan.database()
            assert source.heartbeat is not None
            with postgres.connect(source, statement_timeout=source.timeout) as conn:
                newest = postgres.newest_heartbeat(conn, source.heartbeat, outcome.reference)
            outcome.newest_heartbeat = newest
            d.update(database=postgres.describe(source), newest_heartbeat=newest and str(newest))
        if newest is not None:
            outcome.rpo = outcome.reference - newest
        if failover.probe is not None:
            _probe(profile, failover.probe, outcome)
        if "verify" in actions:
            _step(outcome, "verify", "verify", actions["verify"])
    finally:
        try:
            _fail_back(outcome, plan, health, failover.health_timeout.total_seconds())
        finally:
            watch.stop()
            began = {s.name: s.started for s in outcome.log.steps}
            parts = {"failover": started, "failback": began.get("failback")}
            outcome.window = watch.window(parts)


def _fail_back(outcome: Outcome, plan: Plan, health: _Health, timeout: float) -> None:
    """Failback, then cleanup, whatever happened before; their failures are problems too.
    A Ctrl-C meanwhile waits for them: stopping halfway would leave users on a DR site that
    is about to go. Should failback not complete, the message says so first, with the state
    left behind and what restores it."""
    began = time.monotonic()
    actions = plan.actions
    with interrupt.deferred("failing back to the primary: stopping now would leave it down"):
        try:
            _step(outcome, "failback", "failback", actions["failback"])
            with _timed(
                outcome, "healthy through the load balancer after failback", "failback"
            ) as d:
                d.update(health.wait(healthy=True, timeout=timeout))
            outcome.failback = timedelta(seconds=time.monotonic() - began)
        except drill.DrillError as exc:
            outcome.left_behind = (
                f"FAILBACK DID NOT COMPLETE ({exc}): the load balancer may still send users to "
                f"the DR site, and the primary may be down; restore it with: {plan.restore}"
            )
            outcome.problems.insert(0, outcome.left_behind)
            # Said now, in red: an interrupted run may never get to report this check.
            interrupt.alert(outcome.left_behind)
        finally:
            if "cleanup" in actions:
                try:
                    _step(outcome, "cleanup", "failback", actions["cleanup"])
                except drill.DrillError as exc:
                    outcome.problems.append(str(exc))


def keep(outcome: Outcome, profile: Profile, evidence: Any) -> None:
    """The drill's evidence and record (``drill.keep``), with the failover's own figures and
    the window it declares (SLO-001 reads it from the history)."""
    if outcome.probe is not None:
        evidence.json("probe", outcome.probe)
    if outcome.window is not None:
        evidence.json("outages", outcome.window.to_dict())
        evidence.remember(**{WINDOW_KEY: outcome.window.to_dict()})
    drill.keep(
        outcome,
        profile,
        evidence,
        failed_step=outcome.failed_step,
        failback_incomplete=outcome.left_behind,
        failback_s=outcome.failback and round(outcome.failback.total_seconds(), 3),
        probe_p95_ms=outcome.probe_p95_ms and round(outcome.probe_p95_ms, 3),
        failover_outage_s=outcome.outage_s("failover"),
        failback_outage_s=outcome.outage_s("failback"),
    )


def _probe(profile: Profile, name: str, outcome: Outcome) -> None:
    probe = next(p for p in profile.probes or [] if p.name == name)
    with _timed(outcome, f"probe {name} through the load balancer", "verify") as detail:
        auth = profile.service.auth if probe.auth and profile.service else None
        headers = auth.headers() if auth else {}
        result = probing.run(probe, headers)
        outcome.probe, outcome.probe_p95_ms = result.evidence(), result.percentile(95)
        detail.update(result.figures())
    if result.shortfalls():
        outcome.problems.append(f"probe {name} on the DR site: {result.message()}")


def _step(outcome: Outcome, name: str, phase: str, action: Action) -> None:
    with _timed(outcome, name, phase) as detail:
        action(detail)


@contextlib.contextmanager
def _timed(outcome: Outcome, name: str, phase: str) -> Iterator[dict[str, Any]]:
    """A step of the log; whatever it raises stops the drill as that step's failure."""
    try:
        with outcome.log.step(name, phase) as detail:
            yield detail
    except Exception as exc:
        outcome.failed_step = outcome.failed_step or name
        if isinstance(exc, StepFailed):
            raise
        raise StepFailed(name, str(exc) or type(exc).__name__) from None
    except BaseException:  # interrupted (Ctrl-C, the check's timeout): it stopped here
        outcome.failed_step = outcome.failed_step or name
        raise


def _service_ca(profile: Profile) -> Path | None:
    return profile.service.ca_file if profile.service else None


@dataclass
class _Health:
    """The health URL through the load balancer, asked until it answers as awaited."""

    url: Any
    ca_file: Path | None

    def wait(self, healthy: bool, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        asked, last = 0, "no answer"
        while True:
            asked += 1
            ok, last = outage.ask(str(self.url), self.ca_file)
            if ok == healthy:
                return {"url": str(self.url), "requests": asked, "last": last}
            if time.monotonic() > deadline:
                wanted = "healthy" if healthy else "unhealthy"
                raise drill.DrillError(
                    f"{self.url} not {wanted} within {timeout:g} s ({asked} requests, "
                    f"the last {last})"
                )
            time.sleep(_POLL_S)
