"""Helpers for opsverify's own tests: run the real CLI in a subprocess, build small suites."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OPSVERIFY = Path(sys.executable).parent / "opsverify"


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def opsverify(
    *args: str, cwd: Path = ROOT, env: dict[str, str] | None = None, timeout: float = 300
) -> Outcome:
    """The real console script, as a user runs it; bounded in time."""
    merged = {**os.environ, "COLUMNS": "200", **(env or {})}
    done = subprocess.run(
        [str(OPSVERIFY), *args],
        cwd=cwd,
        env=merged,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Outcome(done.returncode, done.stdout, done.stderr)


def latest_run(root: Path, env: str) -> Path:
    runs = sorted(p for p in (root / "reports" / env).iterdir() if p.name != "history")
    return runs[-1]


def readiness(run_dir: Path) -> dict:
    return json.loads((run_dir / "readiness.json").read_text())


@dataclass
class Suite:
    """A throwaway project: a profile under environments/ and check files under checks/."""

    root: Path

    def profile(self, text: str, name: str = "t") -> Path:
        path = self.root / "environments" / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
        return path

    def checks(self, filename: str, source: str) -> Path:
        path = self.root / "checks" / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
        return path

    def run(self, *args: str, env: dict[str, str] | None = None) -> Outcome:
        return opsverify("run", "--env", "t", *args, cwd=self.root, env=env)

    def latest(self) -> Path:
        return latest_run(self.root, "t")


def sandbox_ports(base: int):  # noqa: ANN201 - imports the sandbox only when a test needs it
    """A port block away from the defaults, so tests run beside a user's own sandbox.

    Keep ``base`` below 32768: above it lies Linux's ephemeral range, where any outgoing
    connection may hold a port for a while and ``up`` then refuses it as taken.

    ``OPSVERIFY_TEST_PORT_SHIFT`` (a multiple of 10, up to 80) moves every block, so that two
    checkouts can run the same test module at once: a block uses only base+0, 1, 100, 190,
    193, 195, 432 and 443, which no two shifts of 0..80 make meet."""
    from opsverify.sandbox import Ports

    base += int(os.environ.get("OPSVERIFY_TEST_PORT_SHIFT", "0"))

    offsets = dict(service=0, dr_service=1, https=443, postgres=432, prometheus=190)
    offsets |= dict(alertmanager=193)
    return Ports(
        **{k: base + v for k, v in offsets.items()}, node_exporter=base + 100, webhook=base + 195
    )


def write_profile(settings, folder: Path, **changes: object) -> Path:  # noqa: ANN001
    """environments/local.yaml, moved to a test sandbox's ports and state folder.

    ``changes`` set keys by path, parts joined with ``__`` (``service__endpoints__0__url``).
    """
    import yaml

    from opsverify.sandbox import Ports

    text = (ROOT / "environments" / "local.yaml").read_text()
    defaults = Ports().model_dump()
    for name, port in settings.ports.model_dump().items():
        text = text.replace(str(defaults[name]), str(port))
    text = text.replace("../.sandbox", str(settings.state_dir))
    text = text.replace("../", f"{ROOT}/")  # the repository's own files (docs/, runbooks/)
    data = yaml.safe_load(text)
    data["name"] = "e2e"
    if "documentation" in data:  # reviewed "today": the shipped dates age, the tests must not
        docs = folder / "docs"
        shutil.copytree(ROOT / "docs", docs, dirs_exist_ok=True)
        restamp_reviews(docs)
        for key, value in data["documentation"].items():
            if isinstance(value, str) and value.startswith(f"{ROOT}/docs/"):
                data["documentation"][key] = str(docs / value.removeprefix(f"{ROOT}/docs/"))
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        node = data
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[leaf] = value
    path = folder / "e2e.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@contextlib.contextmanager
def running_sandbox(base_port: int, name: str) -> Iterator:  # noqa: ANN401 - sandbox.Settings
    """A sandbox of the test's own on ports base_port+…, purged afterwards, running the
    backup schedule of environments/local.yaml (as `sandbox up --env local` does).

    Its state is not under pytest's tmp dir: every new pytest session (each `opsverify run`
    is one) resets that to 0700, and the postgres user could no longer reach its data.
    """
    from opsverify import profile as profiles
    from opsverify import sandbox

    local = profiles.load(ROOT / "environments" / "local.yaml").sandbox_settings()
    state_dir = Path(tempfile.mkdtemp(prefix=f"opsverify-{name}-"))
    settings = sandbox.Settings(
        state_dir=state_dir, ports=sandbox_ports(base_port), backups=local.backups
    )
    try:
        sandbox.up(settings, timeout=180)
        yield settings
    finally:
        try:
            sandbox.down(settings, purge=True)
        except sandbox.SandboxError:
            if any(state_dir.iterdir()):
                raise
            state_dir.rmdir()  # up stopped before creating anything: its error is the story


def superuser(settings, dbname: str = "cronos_ai"):  # noqa: ANN001, ANN201 - psycopg, lazily
    """A connection to a sandbox's PostgreSQL as its superuser: the unix socket, peer-mapped
    for the user who started it (as the sandbox manager administers it)."""
    import psycopg

    return psycopg.connect(
        host=str(settings.layout().pg_socket_dir),
        port=settings.ports.postgres,
        user="postgres",
        dbname=dbname,
        connect_timeout=5,
        autocommit=True,
    )


def with_wrong_password(settings, folder: Path) -> tuple[Path, str]:  # noqa: ANN001
    """A sandbox's profile whose restic password file holds a fresh, wrong value; returns the
    profile and that value (to prove it reaches no file)."""
    import secrets

    wrong_value = secrets.token_urlsafe(24)
    wrong = folder / "wrong-password"
    wrong.write_text(wrong_value + "\n")
    profile = write_profile(
        settings, folder, backup__repositories__0__password={"file": str(wrong)}
    )
    return profile, wrong_value


def files_holding(folder: Path, value: str) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and value.encode() in p.read_bytes()]


_REVIEWED = re.compile(r"(?i)(last[ _]reviewed\W*)\d{4}-\d{2}-\d{2}")


def restamp_reviews(docs: Path) -> None:
    """Set every 'Last reviewed' date in a copy of docs/ to today."""
    today = datetime.now(UTC).date().isoformat()
    for path in docs.rglob("*"):
        if path.is_file() and path.suffix in (".md", ".yaml", ".yml"):
            path.write_text(_REVIEWED.sub(lambda m: m[1] + today, path.read_text()))


def run_selected(profile: Path, run_dir: Path, select: str) -> dict[str, list[dict]]:
    """Run the shipped checks matching ``select`` (-k) against ``profile``; results by id."""
    outcome = opsverify(
        "run", "--env", str(profile), "--run-dir", str(run_dir), "-k", select, cwd=ROOT
    )
    assert outcome.code in (0, 1), outcome.output
    results: dict[str, list[dict]] = {}
    for check in readiness(run_dir)["checks"]:
        results.setdefault(check["id"], []).append(check)
    return results


# --- the sandbox's Prometheus rules and reloads ------------------------------------------------


def wait_until(condition, what: str, timeout: float = 15):  # noqa: ANN001, ANN201
    """``condition()``'s first truthy value, polled every 0.1 s; fails after ``timeout``."""
    import time

    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s")
        time.sleep(0.1)
    return value


def _rule_signature(groups: list[dict]) -> list[tuple]:
    """What identifies a rule set: each rule's group, name, labels and annotations."""
    return sorted(
        (
            group["name"],
            rule.get("alert") or rule.get("record") or rule.get("name"),
            tuple(sorted((rule.get("labels") or {}).items())),
            tuple(sorted((rule.get("annotations") or {}).items())),
        )
        for group in groups
        for rule in group["rules"]
    )


def _served_rules(settings) -> list[tuple]:  # noqa: ANN001
    import httpx

    url = f"http://127.0.0.1:{settings.ports.prometheus}/api/v1/rules"
    return _rule_signature(httpx.get(url, timeout=5).json()["data"]["groups"])


def reload_succeeded(url: str, component: str) -> float:
    """``<component>_config_last_reload_successful`` as ``url``/metrics exports it."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{url}/metrics", timeout=5).text
    name = f"{component}_config_last_reload_successful"
    return next(
        s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == name
    )


@contextlib.contextmanager
def rules_served(settings, text: str) -> Iterator[None]:  # noqa: ANN001
    """The sandbox's rule file replaced by ``text``; Prometheus reloaded and serving exactly
    those rules; the original file back (and served) afterwards."""
    import yaml

    from opsverify import sandbox

    path = settings.layout().config_dir / "alert_rules.yml"
    original = path.read_text()
    try:
        path.write_text(text)
        sandbox.reload(settings, "prometheus")
        wanted = _rule_signature(yaml.safe_load(text)["groups"])
        wait_until(lambda: _served_rules(settings) == wanted, "rules reloaded")
        yield
    finally:
        path.write_text(original)
        sandbox.reload(settings, "prometheus")
        wanted = _rule_signature(yaml.safe_load(original)["groups"])
        wait_until(lambda: _served_rules(settings) == wanted, "rules restored")


@contextlib.contextmanager
def config_rejected(settings, name: str, file: str, text: str) -> Iterator[None]:  # noqa: ANN001
    """An operator's bad edit: ``file`` in the sandbox's config folder overwritten with
    ``text`` and ``name`` (prometheus or alertmanager) sent SIGHUP, which it refuses (its
    reload metric drops to 0); the original back and reloaded afterwards."""
    from opsverify import sandbox

    path = settings.layout().config_dir / file
    url = f"http://127.0.0.1:{getattr(settings.ports, name)}"
    original = path.read_text()
    try:
        path.write_text(text)
        sandbox.reload(settings, name)
        wait_until(lambda: reload_succeeded(url, name) == 0, f"{name} refused the reload")
        yield
    finally:
        path.write_text(original)
        sandbox.reload(settings, name)
        wait_until(lambda: reload_succeeded(url, name) == 1, f"{name} reloaded")
