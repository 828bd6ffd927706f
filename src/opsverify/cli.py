"""The ``opsverify`` command: run, list, gate, sandbox.

Exit codes are pytest's, so CI tooling reads them naturally: 0 gate passed, 1 gate failed,
2 interrupted, 3 internal error, 4 usage or configuration error, 5 nothing selected.
Heavy modules (pytest, the plugin, the sandbox) are imported inside the commands.
"""

from __future__ import annotations

import contextlib
import re
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="Operational readiness checks: run a handbook against an environment.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
sandbox_app = typer.Typer(help="The local reference system on 127.0.0.1.", no_args_is_help=True)
app.add_typer(sandbox_app, name="sandbox")
backup_app = typer.Typer(help="Backups of an environment.", no_args_is_help=True)
app.add_typer(backup_app, name="backup")

USAGE_ERROR = 4
SUITES = ("checks", "drills", "load", "chaos")

EnvOption = Annotated[str, typer.Option("--env", "-e", help="profile name or YAML path")]


class CadenceChoice(StrEnum):  # mirrors opsverify.check.Cadence, which the CLI must not import
    predeploy = "predeploy"
    daily = "daily"
    weekly = "weekly"
    monthly = "monthly"
    quarterly = "quarterly"


CadenceOption = Annotated[CadenceChoice | None, typer.Option(help="which checks to run")]


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg="red")
    return typer.Exit(USAGE_ERROR)


def _suites(root: Path) -> list[str]:
    found = [str(root / name) for name in SUITES if (root / name).is_dir()]
    if not found:
        raise _fail(f"no check suite ({', '.join(SUITES)}) under {root}")
    return found


def _pytest_args(env: str, cadence: CadenceChoice | None) -> list[str]:
    """Options as --name=value, and the root pinned to the current folder: pytest would
    otherwise pick its root (and so the reports folder) from any path among its arguments."""
    args = [
        f"--rootdir={Path.cwd()}",
        f"--env={env}",
        "-p",
        "no:cacheprovider",
        # The CLI imports opsverify before pytest starts; that warning is noise.
        "-W",
        "ignore::pytest.PytestAssertRewriteWarning",
    ]
    return args + ([f"--cadence={cadence.value}"] if cadence else [])


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def run(
    ctx: typer.Context,
    env: EnvOption,
    cadence: CadenceOption = None,
    min_score: Annotated[float | None, typer.Option(help="override the gate's minimum")] = None,
    run_dir: Annotated[Path | None, typer.Option(help="run folder (default reports/…)")] = None,
) -> None:
    """Run the checks against ENV; extra arguments go to pytest (-k, -n 2, --maxfail …)."""
    import pytest

    root = Path.cwd()
    args = _suites(root) + _pytest_args(env, cadence)
    args += ["--opsverify-progress", "-q", "--no-header", "--tb=no", "-rN"]
    if min_score is not None:
        args.append(f"--min-score={min_score}")
    if run_dir is not None:
        args.append(f"--run-dir={run_dir}")
    raise typer.Exit(int(pytest.main(args + list(ctx.args))))


@app.command("list")
def list_checks(env: EnvOption, cadence: CadenceOption = None) -> None:
    """Print the checks a run would select, with their parameters."""
    import pytest

    from opsverify.report.terminal import print_selection

    collected: list[pytest.Item] = []

    class Collect:
        def pytest_collection_finish(self, session: pytest.Session) -> None:
            collected.extend(session.items)

    args = _suites(Path.cwd()) + _pytest_args(env, cadence) + ["--collect-only"]
    code = pytest.main(args + ["-p", "no:terminal"], plugins=[Collect()])
    if code == pytest.ExitCode.INTERRUPTED:
        # Collection failed: rerun with pytest's terminal so the user sees why.
        raise typer.Exit(int(pytest.main(args)))
    if code not in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        raise typer.Exit(int(code))  # a usage error has already said what is wrong
    print_selection(collected)
    raise typer.Exit(int(code))


@app.command()
def gate(
    readiness: Annotated[Path, typer.Argument(help="a run's readiness.json")],
    min_score: Annotated[float | None, typer.Option(help="minimum score to require")] = None,
) -> None:
    """Re-evaluate a stored run (score, gate, evidence hashes) for a separate CI step."""
    from opsverify.report.replay import replay

    try:
        passed = replay(readiness, min_score)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    raise typer.Exit(0 if passed else 1)


@app.command()
def controls(
    run: Annotated[Path, typer.Option("--run", help="a run folder or its readiness.json")],
) -> None:
    """Per compliance control: its checks, their status and evidence files."""
    from opsverify.report import controls as view
    from opsverify.report.terminal import print_controls

    try:
        folder, data = view.load(run)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    print_controls(folder, data)


class BackupKind(StrEnum):  # the snapshot kinds of opsverify.drivers.repository
    full = "full"
    incremental = "incremental"
    configuration = "configuration"


_TAG = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


@backup_app.command("create")
def backup_create(
    env: EnvOption,
    tag: Annotated[list[str] | None, typer.Option(help="extra tag, e.g. pre-deploy")] = None,
    kind: Annotated[BackupKind, typer.Option(help="what to back up")] = BackupKind.full,
    repository: Annotated[str | None, typer.Option(help="repository name (default: first)")] = None,
) -> None:
    """Take a backup now, with its manifest (before a deployment: --tag pre-deploy)."""
    from opsverify import backups
    from opsverify import profile as profiles
    from opsverify.drivers.postgres import PostgresError
    from opsverify.drivers.repository import RepositoryError, open_repository
    from opsverify.evidence import REDACTOR

    tag = tag or []
    bad = [t for t in tag if not _TAG.match(t)]
    if bad:
        raise _fail(f"--tag {bad[0]!r}: letters, digits and . _ : - only (at most 64)")
    path = profiles.resolve_path(env)
    try:
        loaded = profiles.load(path)
    except profiles.ProfileError as exc:
        raise _fail(str(exc)) from None
    backup = loaded.backup
    if backup is None or backup.sources is None or not backup.repositories:
        raise _fail(f"{path}: backup.sources and backup.repositories are required to back up")
    chosen = next(
        (r for r in backup.repositories if repository in (None, r.name)),
        None,
    )
    if chosen is None:
        names = ", ".join(r.name for r in backup.repositories)
        raise _fail(f"{path}: backup.repositories has no {repository!r} (it has {names})")
    for ref in loaded.secret_refs():
        with contextlib.suppress(profiles.ProfileError):
            REDACTOR.add(ref.resolve())
    try:
        created = backups.create(open_repository(chosen), backup.sources, kind.value, tag)
    except (backups.BackupError, RepositoryError, PostgresError, profiles.ProfileError) as exc:
        typer.secho(f"backup failed: {REDACTOR.text(str(exc))}", err=True, fg="red")
        raise typer.Exit(1) from None
    manifest = created.manifest
    tables = len(manifest.get("database", {}).get("tables", {}))
    typer.echo(
        f"{kind.value} backup {created.snapshot_id[:8]} in {chosen.name} "
        f"(tags {', '.join(manifest['tags'])}): {len(manifest['files'])} files, "
        f"{tables} tables, {created.seconds:.1f} s"
    )


@app.command()
def drills(
    env: EnvOption,
    history: Annotated[
        Path | None, typer.Option(help="history folder (default reports/ENV/history)")
    ] = None,
) -> None:
    """Past drills of ENV from its run history: status, measured RTO and RPO, trend."""
    from opsverify import profile as profiles
    from opsverify.drill import ACTIVITIES
    from opsverify.history import FOLDER, History, HistoryError
    from opsverify.report.terminal import print_drills
    from opsverify.run import REPORTS_DIR

    try:
        name = profiles.load(profiles.resolve_path(env)).name
    except profiles.ProfileError as exc:
        raise _fail(str(exc)) from None
    folder = history or Path.cwd() / REPORTS_DIR / name / FOLDER
    try:
        found = sorted(
            (r for activity in ACTIVITIES for r in History(folder).records(activity)),
            key=lambda r: r.finished,
        )
    except HistoryError as exc:
        raise _fail(str(exc)) from None
    print_drills(name, found)


def _sandbox_settings(env: str):  # noqa: ANN202 - pydantic model, imported lazily
    from opsverify import profile as profiles

    try:
        loaded = profiles.load(profiles.resolve_path(env))
    except profiles.ProfileError as exc:
        raise _fail(str(exc)) from None
    settings = loaded.sandbox_settings()
    if settings is None:
        raise _fail(f"profile {env!r} has no sandbox section: it is not a sandbox")
    return settings


@sandbox_app.command()
def up(
    env: EnvOption = "local",
    timeout: Annotated[float, typer.Option(help="seconds to wait for health")] = 180,
) -> None:
    """Start the sandbox (idempotent) and wait until every part is healthy."""
    from opsverify import sandbox
    from opsverify.report.terminal import print_components

    try:
        components = sandbox.up(_sandbox_settings(env), timeout=timeout)
    except sandbox.SandboxError as exc:
        typer.secho(f"sandbox: {exc}", err=True, fg="red")
        raise typer.Exit(1) from None
    print_components(components)


@sandbox_app.command()
def down(
    env: EnvOption = "local",
    purge: Annotated[bool, typer.Option(help="also delete the sandbox's data")] = False,
) -> None:
    """Stop exactly what `up` started; keep the data unless --purge."""
    from opsverify import sandbox

    try:
        sandbox.down(_sandbox_settings(env), purge=purge)
    except sandbox.SandboxError as exc:
        typer.secho(f"sandbox: {exc}", err=True, fg="red")
        raise typer.Exit(1) from None
    typer.echo("sandbox stopped" + (" and purged" if purge else " (data kept)"))


@sandbox_app.command()
def status(env: EnvOption = "local") -> None:
    """What runs where: component, state, PID, address."""
    from opsverify import sandbox
    from opsverify.report.terminal import print_components

    print_components(sandbox.status(_sandbox_settings(env)))


def main() -> None:
    # Click says 2 for a usage error; 2 means "interrupted" here, so usage errors exit 4.
    try:
        code = app(standalone_mode=False)
    except typer.Abort:
        typer.echo("interrupted", err=True)
        sys.exit(2)
    except typer.TyperException as exc:
        exc.show()  # type: ignore[attr-defined]
        code = exc.exit_code  # type: ignore[attr-defined]
        sys.exit(USAGE_ERROR if code == 2 else code)
    sys.exit(code or 0)
