"""The opsverify pytest plugin: every hook in one place.

Flow: profile (configure) → parametrization (generate_tests) → selection and labels
(collection) → per-check reports with metadata (makereport) → results in the controller
(logreport) → score, gate and run folder (sessionfinish) → terminal table.
With pytest-xdist the workers only collect and run; everything that sums up happens in the
controller, from the metadata each report carries.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import socket
import ssl
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from opsverify import gate, interrupt, message
from opsverify import profile as profiles
from opsverify import waiver as waivers
from opsverify.check import (
    FRESH_FOR,
    NOT_APPLICABLE,
    Cadence,
    CheckMeta,
    Unreachable,
    meta_of,
    not_applicable,
)
from opsverify.evidence import REDACTOR, Evidence, safe_name
from opsverify.history import ACTIVITY_WAIT_S, History, HistoryError
from opsverify.report.terminal import Progress
from opsverify.result import CheckResult, Status
from opsverify.run import Run

_PROPERTY = "opsverify"
_EVIDENCE = "opsverify_evidence"
_FIGURES = "opsverify_figures"
_DETAILS = "opsverify_details"
_UNREACHABLE = "opsverify_unreachable"
_PARAMETER = "opsverify_parameter"
_WAIVER = "opsverify_waiver"
_FAILURE = "opsverify_failure"
_REPLAYED = "opsverify_replayed"
_REASON = "opsverify_reason"
_WORKER_KEY = "opsverify_run_dir"
_USAGE = "opsverify_usage_error"
_RUN = pytest.StashKey[Run]()
_PROFILE = pytest.StashKey[profiles.Profile]()
_WAIVERS = pytest.StashKey[waivers.Waivers]()
_USAGE_ERRORS = pytest.StashKey[set[str]]()
_SEEN_IDS = pytest.StashKey[dict[str, str]]()
# A check that hangs despite its drivers' own timeouts is failed by pytest-timeout after this.
DEFAULT_CHECK_TIMEOUT_S = 300


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("opsverify", "operational readiness checks")
    group.addoption("--env", dest="opsverify_env", help="environment profile name or YAML path")
    group.addoption(
        "--cadence",
        dest="opsverify_cadence",
        choices=[str(c) for c in Cadence],
        help="run only the checks scheduled for this cadence",
    )
    group.addoption(
        "--run-dir", dest="opsverify_run_dir", help="run folder (default reports/<env>/<run-id>)"
    )
    group.addoption(
        "--waivers",
        dest="opsverify_waivers",
        help="waiver file (default environments/<env>.waivers.yaml when it exists)",
    )
    group.addoption(
        "--allow-destructive",
        dest="opsverify_allow_destructive",
        action="store_true",
        help="let destructive checks run against a production profile that allows them",
    )
    group.addoption(
        "--min-score",
        dest="opsverify_min_score",
        type=gate.minimum,
        help="override the gate's minimum",
    )
    group.addoption(
        "--opsverify-progress",
        dest="opsverify_progress",
        action="store_true",
        help="one live progress line instead of pytest's per-test output (used by the CLI)",
    )


def _to_terminal(config: pytest.Config, text: str) -> None:
    """Write past pytest's output capture: the operator must see it while a check runs."""
    capture = config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        sys.stderr.write(text)
        sys.stderr.flush()


def _chain(exc: BaseException | None) -> list[BaseException]:
    """An exception and those it was raised from or while handling, outermost first."""
    found: list[BaseException] = []
    while exc is not None and all(exc is not seen for seen in found):
        found.append(exc)
        exc = exc.__cause__ or exc.__context__
    return found


def _unreachable(exc: BaseException) -> bool:
    """Whether a check failed because this runner could not reach its target. A TLS failure
    is not that: the target answered, and its certificate (or protocol) is the finding."""
    import httpx

    chain = _chain(exc)
    if any(isinstance(e, ssl.SSLError | ssl.CertificateError) for e in chain):
        return False
    if any("CERTIFICATE_VERIFY_FAILED" in str(e) or "SSL:" in str(e) for e in chain):
        return False  # httpx keeps only the text of some ssl errors
    unreachable = Unreachable | httpx.TransportError | ConnectionError | TimeoutError
    return isinstance(exc, unreachable | socket.gaierror)


def _reason(exc: BaseException) -> str:
    """What a failure says, from the exception itself: the check's whole message (pytest's
    report keeps only some of its lines), without pytest's assertion explanation, and the
    URL an HTTP error was about."""
    import httpx

    if isinstance(exc, pytest.fail.Exception | pytest.skip.Exception):
        text = exc.msg or ""
    elif isinstance(exc, AssertionError):
        text = str(exc)
        # A rewritten `assert cond, msg` appends "\nassert <explanation>" to msg.
        text = text.split("\nassert ")[0] if not text.startswith("assert ") else text
        text = text.splitlines()[0] if text.startswith("assert ") else text
    else:
        text = f"{type(exc).__name__}: {exc}".rstrip(": ")
    for error in _chain(exc):
        if isinstance(error, httpx.RequestError):
            try:
                request = error.request
            except RuntimeError:  # raised without a request: nothing to name
                continue
            if str(request.url) not in text:
                text += f" ({request.method} {request.url})"
            break
    return message.head(message.one_line(text))


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "traffic: sends traffic or measures latency; never runs beside another"
    )
    config.addinivalue_line(
        "markers", "reads_history: asks whether an activity passed; runs after the activities"
    )
    config.addinivalue_line(
        "markers", "health: a health check of the target; traffic waits for it, not after failure"
    )
    config.addinivalue_line(
        "markers", "exclusive: takes turns with traffic (a restore drill timing its recovery)"
    )
    config.addinivalue_line(
        "markers", "opsverify_replay: an activity of another cadence, read back from history"
    )
    env = config.getoption("opsverify_env")
    if not env:
        return
    path = profiles.resolve_path(env, config.rootpath)
    waiver_path = config.getoption("opsverify_waivers")
    try:
        profile = profiles.load(path)
        config.stash[_WAIVERS] = waivers.load(
            Path(waiver_path) if waiver_path else waivers.default_path(path),
            required=bool(waiver_path),
        )
    except profiles.ProfileError as exc:
        raise pytest.UsageError(str(exc)) from None
    for ref in profile.secret_refs():
        # Unresolvable now means unresolvable at use: that check fails, and nothing leaks.
        with contextlib.suppress(profiles.ProfileError):
            REDACTOR.add(ref.resolve())
    config.stash[_PROFILE] = profile
    # A Ctrl-C is noticed, whatever a library makes of it.
    interrupt.install(say=lambda text: _to_terminal(config, text))
    worker = getattr(config, "workerinput", None)
    if worker is not None:
        run_dir = Path(worker[_WORKER_KEY])
    else:
        try:
            run_dir = Run.new_dir(config.rootpath, profile, config.getoption("opsverify_run_dir"))
        except ValueError as exc:
            raise pytest.UsageError(str(exc)) from None
    run = Run(
        directory=run_dir,
        profile=profile,
        cadence=config.getoption("opsverify_cadence"),
        policy=profile.gate.policy().with_minimum(config.getoption("opsverify_min_score")),
    )
    config.stash[_RUN] = run
    if config.getoption("timeout", None) is None and not config.getini("timeout"):
        config.option.timeout = DEFAULT_CHECK_TIMEOUT_S
    if config.option.collectonly:
        return  # listing checks leaves no run folder behind
    # Our outputs go to the run folder unless the user pointed them elsewhere.
    # (getattr: either plugin may be disabled with -p no:…)
    if not getattr(config.option, "allure_report_dir", "unset"):
        config.option.allure_report_dir = str(run.allure_results)
    if worker is None and not getattr(config.option, "xmlpath", "unset"):
        config.option.xmlpath = str(run.junit_xml)
    if worker is None:
        controller = Controller(
            run, config.stash[_WAIVERS], progress=config.getoption("opsverify_progress")
        )
        config.pluginmanager.register(controller, "opsverify-controller")


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist: workers must write evidence into the controller's run folder."""
    run = node.config.stash.get(_RUN, None)
    if run is not None:
        node.workerinput[_WORKER_KEY] = str(run.directory)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    message = getattr(node, "workeroutput", {}).get(_USAGE)
    if message:
        node.config.stash.setdefault(_USAGE_ERRORS, set()).add(message)


def pytest_sessionfinish(session: pytest.Session) -> None:
    for problem in session.config.stash.get(_USAGE_ERRORS, ()):
        sys.stderr.write(f"ERROR: {problem}\n")
        session.exitstatus = pytest.ExitCode.USAGE_ERROR


@pytest.fixture(scope="session")
def profile(pytestconfig: pytest.Config) -> profiles.Profile:
    """The selected environment profile."""
    found = pytestconfig.stash.get(_PROFILE, None)
    if found is None:
        raise pytest.UsageError("checks need an environment profile: pass --env NAME")
    return found


@pytest.fixture
def history(request: pytest.FixtureRequest, pytestconfig: pytest.Config) -> History:
    """What runs against this environment did (activity records, scores), including every
    activity of this run: it waits, bounded, until each selected one has been recorded (but
    for activities that read the history themselves: two such would wait for each other)."""
    run = pytestconfig.stash[_RUN]
    recording = [
        i
        for i in request.session.items
        if getattr(meta_of(i.function), "records", None) and not _replaying(i)
    ]
    awaited = {
        (meta_of(i.function).id, _parameter_id(i))
        for i in recording
        if not i.get_closest_marker("reads_history")
    }
    deadline = time.monotonic() + ACTIVITY_WAIT_S
    while not awaited <= run.history.recorded(run.id) and time.monotonic() < deadline:
        time.sleep(0.5)
    return run.history


@pytest.fixture
def evidence(request: pytest.FixtureRequest, pytestconfig: pytest.Config) -> Evidence:
    """Attach what the check saw; redacted, kept in Allure and in the run's evidence folder."""
    run = pytestconfig.stash[_RUN]
    meta = meta_of(request.function)
    parameter = _parameter_id(request.node)
    folder = run.evidence / (meta.id if meta else safe_name(request.node.name))
    if parameter:
        folder = folder / safe_name(parameter)
    collected = Evidence(directory=folder, root=run.directory)
    # The same list object travels on every later report of this item.
    request.node.user_properties.append((_EVIDENCE, collected.files))
    request.node.user_properties.append((_FIGURES, collected.figures))
    request.node.user_properties.append((_DETAILS, collected.details))
    return collected


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if meta_of(metafunc.function) is None:
        return
    profile = metafunc.config.stash.get(_PROFILE, None)
    if profile is None:
        return  # collection_modifyitems stops the run with a usage error
    # A check may parametrize an argument itself; the profile then does not.
    explicit = {
        name.strip()
        for marker in metafunc.definition.iter_markers("parametrize")
        for name in (
            marker.args[0].split(",") if isinstance(marker.args[0], str) else marker.args[0]
        )
    }
    for name in metafunc.fixturenames:
        if name not in profiles.SUBJECTS or name in explicit:
            continue
        subjects, reason = profiles.subjects(profile, name)
        if subjects:
            metafunc.parametrize(name, [v for _, v in subjects], ids=[i for i, _ in subjects])
        else:
            skip = pytest.mark.skip(reason=NOT_APPLICABLE + reason)
            metafunc.parametrize(name, [pytest.param(None, marks=skip)], ids=["n/a"])


@pytest.hookimpl(wrapper=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: object) -> Any:
    meta = meta_of(obj)
    if meta is not None:
        seen: dict[str, str] = collector.config.stash.setdefault(_SEEN_IDS, {})
        where = f"{collector.nodeid}::{name}"
        if seen.setdefault(meta.id, where) != where:
            raise collector.CollectError(
                f"duplicate check id {meta.id}: {where} and {seen[meta.id]} (ids must be unique)"
            )
    return (yield)


@pytest.hookimpl(tryfirst=True)  # before -k/-m: they may select by check id
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    checks = [item for item in items if meta_of(getattr(item, "function", None))]
    if checks and _PROFILE not in config.stash:
        message = "checks need an environment profile: pass --env NAME"
        if not hasattr(config, "workerinput"):
            raise pytest.UsageError(message)
        # An xdist worker cannot raise a usage error (the controller calls it a crash):
        # it runs nothing and tells the controller why, which then exits 4.
        config.workeroutput[_USAGE] = message  # type: ignore[attr-defined]
        config.hook.pytest_deselected(items=list(items))
        items[:] = []
        return
    cadence = config.getoption("opsverify_cadence")
    if cadence:
        deselected = {i for i in checks if cadence not in meta_of(i.function).cadences}
        # An activity of another cadence (a monthly drill in a daily run) stays in the run:
        # its result is read back from the history while it is fresh (see _replay).
        for item in [i for i in deselected if meta_of(i.function).fresh_for]:
            deselected.discard(item)
            item.add_marker(pytest.mark.opsverify_replay)
            item.user_properties.append((_REPLAYED, True))
        if deselected:
            config.hook.pytest_deselected(items=[i for i in items if i in deselected])
            items[:] = [i for i in items if i not in deselected]
    # Traffic goes after the checks that measure the environment (CPU, latency SLIs), which
    # must not see the run's own load; readers of the history go last, after this run's own
    # activities (with xdist they may start early elsewhere: the history fixture waits).
    items.sort(key=_phase)
    refusal = _destructive_refusal(config)
    for item in items:
        meta = meta_of(getattr(item, "function", None))
        if meta is None:
            continue
        if meta.destructive and refusal and not _replaying(item):  # reading history is harmless
            item.add_marker(pytest.mark.skip(reason=NOT_APPLICABLE + refusal))
        item.extra_keyword_matches.add(meta.id)
        item.user_properties.append((_PROPERTY, json.dumps(meta.to_dict())))
        item.user_properties.append((_PARAMETER, _parameter_id(item)))
        for marker in _allure_markers(meta):
            item.add_marker(marker)


def _phase(item: pytest.Item) -> int:
    if item.get_closest_marker("reads_history"):
        return 2
    return 1 if _takes_turns(item) else 0


def _takes_turns(item: pytest.Item) -> bool:
    return any(item.get_closest_marker(m) for m in ("traffic", "exclusive"))


def _replaying(item: pytest.Item) -> bool:
    return item.get_closest_marker("opsverify_replay") is not None


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    if not _replaying(pyfuncitem):
        return None
    _replay(pyfuncitem)
    return True  # the check's own function does not run


def _replay(item: pytest.Function) -> None:
    """The newest recorded result of the activity, if it is fresh: it passes or fails as it
    did then; a stale or missing one fails (it earns nothing)."""
    meta = meta_of(item.function)
    run = item.config.stash[_RUN]
    parameter = _parameter_id(item)
    name = f"{meta.id}[{parameter}]" if parameter else meta.id
    try:
        records = [
            r
            for r in run.history.records(meta.records)
            if r.check == meta.id and r.parameter == parameter
        ]
    except HistoryError as exc:
        raise AssertionError(str(exc)) from None
    evidence = item.funcargs.get("evidence")
    newest = records[-1] if records else None
    if evidence is not None:
        record = newest.to_dict() if newest else None
        evidence.json("replayed", {"history": str(run.history.folder), "record": record})
    cadence = next(c for c in meta.cadences if FRESH_FOR.get(c) == meta.fresh_for)
    if newest is None:
        raise AssertionError(
            f"{name} has never run against {run.profile.name}: a {cadence} "
            f"{meta.records} is due (opsverify run --env {run.profile.name} -k {meta.id})"
        )
    age = datetime.now(UTC) - newest.finished
    when = f"run {newest.run} of {newest.finished:%Y-%m-%d %H:%M %Z}"
    if age > meta.fresh_for:
        raise AssertionError(
            f"the newest {meta.records} of {name}, {when}, is {age.days} days old; a "
            f"{cadence} one counts for {meta.fresh_for.days} days"
        )
    if evidence is not None:
        scalars = {k: v for k, v in newest.figures.items() if not isinstance(v, dict | list)}
        evidence.measure(**scalars, replayed_from=newest.run)
    if newest.status == "not_applicable":
        not_applicable(f"as in {when}: {newest.message}")
    assert newest.passed, f"as in {when}: {newest.status}: {newest.message}"


def _destructive_refusal(config: pytest.Config) -> str | None:
    """Why destructive checks may not run here, or None. Decided before anything runs."""
    profile = config.stash.get(_PROFILE, None)
    if profile is None or profile.tier != profiles.Tier.production:
        return None
    if profile.allow_destructive and config.getoption("opsverify_allow_destructive"):
        return None
    return (
        "refused: a destructive check against production needs allow_destructive: true "
        "in the profile and --allow-destructive on the command line"
    )


_ALLURE_SEVERITY = {"critical": "blocker", "high": "critical", "medium": "normal", "low": "minor"}


def _allure_markers(meta: Any) -> list[pytest.MarkDecorator]:
    label = pytest.mark.allure_label
    markers = [
        label(str(meta.category), label_type="epic"),
        # The tree is category → check → its instances; Allure shows the test as the leaf.
        label(f"{meta.id} {meta.title}", label_type="feature"),
        label(_ALLURE_SEVERITY[meta.severity], label_type="severity"),
        label(meta.id, label_type="as_id"),
        label(*meta.controls, *(f"cadence:{c}" for c in meta.cadences), label_type="tag"),
    ]
    if meta.runbook:
        markers.append(pytest.mark.allure_link(meta.runbook, link_type="link", name="runbook"))
    return markers


def _parameter_id(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    return callspec.id if callspec is not None else None


def _redact_exception(exc: BaseException | None) -> None:
    """Mask secrets in an exception chain before pytest, JUnit or Allure render it."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        exc.args = tuple(REDACTOR.text(a) if isinstance(a, str) else a for a in exc.args)
        exc = exc.__cause__ or exc.__context__


HEALTH_WAIT_S = DEFAULT_CHECK_TIMEOUT_S  # for health checks still running on another worker


def _note_health(item: pytest.Item, report: pytest.TestReport) -> None:
    run = item.config.stash.get(_RUN, None)
    if run is None:
        return
    folder = run.health_notes
    folder.mkdir(parents=True, exist_ok=True)
    meta = meta_of(item.function)
    parameter = _parameter_id(item)
    outcome = {
        "check": f"{meta.id}[{parameter}]" if parameter else meta.id,
        "outcome": report.outcome,
        "message": _message(report) if report.failed else "",
    }
    (folder / f"{safe_name(item.nodeid)}.json").write_text(json.dumps(outcome))


def _unhealthy(item: pytest.Item) -> list[str]:
    """The health checks of this run that failed, waiting (bounded) for those still running
    elsewhere (xdist). One that never reports is not held against the target."""
    folder = item.config.stash[_RUN].health_notes
    pending = {
        folder / f"{safe_name(i.nodeid)}.json"
        for i in item.session.items
        if i.get_closest_marker("health")
    }
    deadline = time.monotonic() + HEALTH_WAIT_S
    while any(not p.exists() for p in pending) and time.monotonic() < deadline:
        time.sleep(0.2)
    notes = [json.loads(p.read_text()) for p in sorted(pending) if p.exists()]
    return [f"{n['check']}: {n['message']}" for n in notes if n["outcome"] == "failed"]


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Traffic (load, probes, drills) does not start against a target that failed its health
    checks in this run: it would only pour requests into an outage and burn the error
    budget the SLO checks then judge."""
    if (
        item.get_closest_marker("traffic") is None
        or _replaying(item)
        or _RUN not in item.config.stash
    ):
        return
    failed = _unhealthy(item)
    if failed:
        not_applicable(
            "not started: the target failed its health checks in this run, and no traffic "
            "is sent into an outage: " + message.listing(failed, "failed")
        )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    """Checks marked ``traffic`` (load tests, latency probes) take turns: one's load would
    distort another's latencies. A lock in the environment's history folder holds across
    xdist workers and across concurrent runs against the same environment. (xdist's
    loadgroup would do within one run, but 3.8 cannot group under pytest 9.2.)"""
    run = item.config.stash.get(_RUN, None)
    if run is None or not _takes_turns(item):
        return (yield)
    run.history.folder.mkdir(parents=True, exist_ok=True)
    # Waiting is bounded by the check's own timeout (pytest-timeout).
    with (run.history.folder / ".traffic.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return (yield)


# trylast makes this the innermost wrapper: its redaction happens before allure-pytest's
# wrapper reads the exception and the captured output.
@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    if call.excinfo is not None:
        _redact_exception(call.excinfo.value)
    report = yield
    if report.when == "call" and report.passed and interrupt.received():
        # A Ctrl-C arrived and something swallowed it (asyncio.run turns it into a task
        # cancellation a task may absorb): what ran meanwhile is not a result.
        report.outcome = "failed"
        report.longrepr = f"{interrupt.REASON} while it ran: its result is not trusted"
        report.user_properties.append((_REASON, report.longrepr))
        item.session.shouldstop = interrupt.REASON
    report.sections = [(title, REDACTOR.text(body)) for title, body in report.sections]
    if report.failed and report.longrepr is not None and not isinstance(report.longrepr, tuple):
        # Rendered once and masked: tracebacks may show locals (-l) or reprs holding secrets.
        report.longrepr = REDACTOR.text(str(report.longrepr))
    meta = meta_of(getattr(item, "function", None))
    if call.excinfo is not None and meta is not None:
        report.user_properties.append((_UNREACHABLE, _unreachable(call.excinfo.value)))
        if not isinstance(call.excinfo.value, pytest.skip.Exception):
            report.user_properties.append((_REASON, _reason(call.excinfo.value)))
    if (
        meta is not None
        and item.get_closest_marker("health")
        and (call.when == "call" or (call.when == "setup" and not report.passed))
    ):
        _note_health(item, report)  # before a waiver: a waived failure is still unhealthy
    failed = meta is not None and call.excinfo is not None and report.failed
    if failed and call.when in ("setup", "call"):
        _apply_waiver(item, meta, report)
    return report


def _apply_waiver(item: pytest.Item, meta: CheckMeta, report: pytest.TestReport) -> None:
    """An active waiver turns the failure into a skip every report shows as waived."""
    today = datetime.now(UTC).date()
    decision = item.config.stash[_WAIVERS].decide(meta.id, _parameter_id(item), today)
    if decision is None:
        return
    report.user_properties.append((_WAIVER, decision.to_dict()))
    if decision.active:
        report.user_properties.append((_FAILURE, _message(report)))
        path, line, _ = item.location
        report.outcome = "skipped"
        report.longrepr = (path, (line or 0) + 1, f"Skipped: {decision.waiver.describe()}")


class Controller:
    """Registered in the controller process only: folds reports into results, then finishes.

    With xdist, workers run the checks and this object sees every report they send back.
    """

    def __init__(self, run: Run, waived: waivers.Waivers, progress: bool) -> None:
        self.run = run
        self.waivers = waived
        self.progress = Progress() if progress else None
        self.selected = 0  # items pytest will run, after deselection
        self.finished: set[str] = set()  # items whose last report arrived

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self._selected(len(session.items))

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        self._selected(len(ids))  # every worker collects the whole selection

    def _selected(self, count: int) -> None:
        self.selected = max(self.selected, count)
        if self.progress:
            self.progress.start(self.selected)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        # The CLI hides pytest's tracebacks: a suite that cannot load must still say why.
        if report.failed:
            self.run.notes.append(f"collection error in {report.nodeid}: {_message(report)}")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when not in ("setup", "call"):
            self.finished.add(report.nodeid)  # "???" is xdist's report of a crashed worker
        props = dict(report.user_properties)
        result = self.run.results.get(report.nodeid)
        if _PROPERTY not in props:
            if report.failed and report.when not in ("setup", "call", "teardown"):
                self._crashed(report, result)
            return
        if result is None:
            meta = CheckMeta.from_dict(json.loads(props[_PROPERTY]))
            # Error until its call phase reports: a check that never finished never passed.
            result = CheckResult(
                meta, report.nodeid, props.get(_PARAMETER), Status.error, "did not finish"
            )
            self.run.results[report.nodeid] = result
        result.duration += report.duration
        if report.when == "call" and report.passed:
            result.status, result.message = Status.passed, ""
        result.evidence = list(props.get(_EVIDENCE, result.evidence))
        result.figures = dict(props.get(_FIGURES, result.figures))
        result.details = dict(props.get(_DETAILS, result.details))
        waiver = props.get(_WAIVER)
        if waiver is not None:
            result.waiver = waiver
        if report.skipped and waiver is not None:
            result.status = Status.waived
            result.message = f"{_message(report)} (failure: {props.get(_FAILURE, '')})"
        elif report.skipped and hasattr(report, "wasxfail"):
            result.status = Status.failed  # a known failure is a failure; accept it by waiver
            result.message = f"expected to fail (xfail): {report.wasxfail or 'no reason given'}"
        elif report.skipped:
            result.status = Status.not_applicable
            result.message = _message(report).removeprefix(NOT_APPLICABLE)
        elif report.failed and (report.when != "teardown" or result.status is Status.passed):
            # An unreachable target fails the check, in whichever phase it was found out.
            result.unreachable = bool(props.get(_UNREACHABLE))
            failed = report.when == "call" or result.unreachable
            result.status = Status.failed if failed else Status.error
            prefix = "" if failed else f"{report.when} error: "
            if waiver is not None:  # present but not active: it expired
                prefix = f"waiver expired on {waiver['expires']}; " + prefix
            result.message = prefix + _message(report)
        if report.when == "teardown" and not props.get(_REPLAYED):  # it was recorded then
            self.run.record(result)
            if self.progress:
                self.progress.advance(result)

    def _crashed(self, report: pytest.TestReport, result: CheckResult | None) -> None:
        message = _message(report)
        if result is None:  # it died before its first report: we cannot even name the check
            self.run.notes.append(f"{report.nodeid}: {message}")
        else:
            result.status, result.message = Status.error, message

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        """Score, gate and run folder; trylast so JUnit's file exists for the manifest."""
        if self.progress:
            self.progress.stop()
        ran = {r.meta.id for r in self.run.results.values()}
        self.run.notes += [
            f"waiver for {w.check} ({self.waivers.source}) matches no check of this run"
            for w in self.waivers.entries
            if w.check not in ran
        ]
        stopped = self._stopped(session, exitstatus)
        self.run.finish(stopped=stopped)
        if self.run.verdict.reasons == (interrupt.REASON,):
            session.exitstatus = pytest.ExitCode.INTERRUPTED  # whatever pytest saw of it
        elif not self.run.interrupted:
            passed = self.run.verdict.passed
            session.exitstatus = pytest.ExitCode.OK if passed else pytest.ExitCode.TESTS_FAILED

    def _stopped(self, session: pytest.Session, exitstatus: int) -> str | None:
        """Why this run is incomplete, if it is; an incomplete run never passes the gate."""
        if interrupt.received():
            return interrupt.REASON
        if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
            return "no check was selected"
        if exitstatus not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
            return f"the run stopped early (pytest exit code {int(exitstatus)})"
        if session.shouldstop or session.shouldfail:
            return f"the run stopped early: {session.shouldstop or session.shouldfail}"
        missing = self.selected - len(self.finished)
        if missing > 0:
            return f"{missing} of {self.selected} selected checks did not finish"
        return None

    def pytest_terminal_summary(self) -> None:
        from opsverify.report import terminal

        terminal.print_summary(self.run)


def _message(report: pytest.TestReport | pytest.CollectReport) -> str:
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    # The newest reason this item's reports carry (a teardown's follows its call's).
    properties = getattr(report, "user_properties", [])  # a CollectReport has none
    reasons = [value for key, value in properties if key == _REASON]
    if report.failed and reasons:
        return reasons[-1]
    text = report.longreprtext or ""
    # The last block of exception lines ("E   ...") says more than the whole traceback.
    blocks: list[list[str]] = [[]]
    for line in text.splitlines():
        if line.startswith("E "):
            blocks[-1].append(line[1:].strip())
        elif blocks[-1]:
            blocks.append([])
    last = next((b for b in reversed(blocks) if b), None)
    return message.head(" ".join(last)) if last else message.tail(text)


def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config) -> Any:
    """In progress mode our live line replaces pytest's per-test letters."""
    if not config.getoption("opsverify_progress"):
        return None
    if report.when == "call":
        return report.outcome, "", ""
    if report.skipped:
        return "skipped", "", ""
    return ("error" if report.failed else ""), "", ""
