"""Allure 3 CLI driver: the only module in opsverify that knows how to call Allure.

It turns an ``allure-results`` directory (written by allure-pytest) into one self-contained
HTML file that opens from file:// without a server. ``allure open`` / ``allure serve`` are
never used: they bind all interfaces.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from opsverify import message

__all__ = ["ENV_VAR", "AllureError", "find_cli", "generate_html"]

ENV_VAR = "OPSVERIFY_ALLURE"

# The report tree: category (epic) -> feature -> story; the leaves are the tests. Allure drops
# a level that no result carries, so results without a story simply sit one level higher.
GROUP_BY = ("epic", "feature", "story")

# Allure 3.18's awesome template hard-codes a Google Analytics loader (plugin-awesome
# generators.js, `analyticsEnable: true`, no switch). An ops report must not phone home when
# opened, so the block is removed from the generated HTML.
_ANALYTICS = re.compile(
    r"\s*<script async src=\"https://www\.googletagmanager\.com/gtag/js[^\"]*\"></script>"
    r"\s*<script>.*?</script>",
    re.DOTALL,
)

# Belt and braces for what we cannot strip (a test's descriptionHtml or an HTML attachment
# pointing at a remote image): the single-file report only needs inline and data:/blob:
# content, so the browser is told to refuse every other load.
_CSP = (
    "default-src 'none'; script-src 'unsafe-inline' data: blob:; "
    "style-src 'unsafe-inline' data: blob:; img-src data: blob:; font-src data: blob:; "
    "media-src data: blob:; connect-src data: blob:; frame-src data: blob:; "
    "worker-src data: blob:"
)
# After <meta charset>, which browsers want first; the policy covers every later element.
_HEAD = re.compile(r"<head>(\s*<meta charset=[^>]*>)?", re.IGNORECASE)

# The CLI takes results directories as glob patterns (no escaping on any platform), so a
# path with glob syntax would silently match nothing or something else.
_GLOB_SYNTAX = re.compile(r"[*?\[\]{}]|[+@!]\(")

_VERSION_TIMEOUT = 30.0
_TAIL_CHARS = 2000


class AllureError(RuntimeError):
    """The Allure CLI is missing, failed, timed out or produced no report."""


def find_cli(project_root: Path | None = None) -> Path | None:
    """Locate an Allure 3 CLI, or return None.

    Order: ``$OPSVERIFY_ALLURE`` (a path or a command name; an unusable value raises
    AllureError rather than silently falling back), then ``node_modules/.bin/allure`` under
    ``project_root`` (default: the current directory, i.e. what ``npm ci`` installed), then
    ``allure`` on PATH if it reports a 3.x version (an Allure 2 install is ignored).
    """
    override = os.environ.get(ENV_VAR)
    if override:
        found = shutil.which(override)
        if found is None:
            raise AllureError(f"{ENV_VAR}={override!r} is not an executable file")
        return Path(found)

    local = (project_root or Path.cwd()) / "node_modules" / ".bin" / "allure"
    if local.is_file() and os.access(local, os.X_OK):
        return local

    on_path = shutil.which("allure")
    if on_path is not None and _major_version(Path(on_path)) == 3:
        return Path(on_path)
    return None


def generate_html(
    results_dir: Path,
    output_dir: Path,
    *,
    report_name: str,
    timeout: float = 120,
    cli: Path | None = None,
) -> Path:
    """Render ``results_dir`` into ``output_dir/index.html`` and return that path.

    The HTML is a single file (the awesome plugin's ``singleFile``) that opens from file://.
    ``cli`` defaults to :func:`find_cli`. A ``categories.json`` in ``results_dir`` (the
    Allure 2 format) is passed to Allure 3 through its config, because Allure 3's awesome
    report ignores that file; ``environment.properties`` and ``executor.json`` are read by
    Allure 3 itself. Only ``index.html`` lands in ``output_dir``, replaced atomically, so a
    failed run never leaves a half-written report behind.
    """
    results_dir = results_dir.resolve()
    if not results_dir.is_dir():
        raise AllureError(f"results directory not found: {results_dir}")
    if _GLOB_SYNTAX.search(str(results_dir)):
        raise AllureError(f"results directory path has glob characters: {results_dir}")
    executable = cli or find_cli()
    if executable is None:
        raise AllureError(
            "Allure 3 CLI not found: run `npm ci` in the opsverify checkout "
            f"or set {ENV_VAR} to the allure executable"
        )

    config: dict[str, object] = {
        "name": report_name,
        "plugins": {
            "awesome": {
                "options": {
                    "singleFile": True,
                    "reportName": report_name,
                    "groupBy": list(GROUP_BY),
                }
            }
        },
    }
    categories = _read_categories(results_dir / "categories.json")
    if categories is not None:
        config["categories"] = categories

    # Everything the CLI writes lives in this directory: the config (never a user's
    # allurerc in the repo root), the raw report, and its error logs. It is also the CLI's
    # cwd and HOME: otherwise Allure runs git in the cwd (it probes `git remote get-url
    # origin` and embeds the repository name and branch in the report, so the report would
    # depend on where it was generated) and writes error logs to ~/.allure.
    with tempfile.TemporaryDirectory(prefix="opsverify-allure-") as tmp:
        work = Path(tmp)
        config_file = work / "allurerc.mjs"
        config_file.write_text(f"export default {json.dumps(config, indent=2)};\n")
        raw_report = work / "report"
        env = {**os.environ, "HOME": str(work), "NO_COLOR": "1"}
        argv = [
            str(executable),
            "generate",
            "--config",
            str(config_file),
            "--output",
            str(raw_report),
            str(results_dir),
        ]
        returncode, stderr = _run(argv, cwd=work, env=env, timeout=timeout)
        if returncode != 0:
            raise AllureError(
                f"allure generate exited with {returncode}:\n{_tail(stderr)}{_logs(work)}"
            )
        html_file = raw_report / "index.html"
        if not html_file.is_file():
            raise AllureError(f"allure generate wrote no index.html:\n{_tail(stderr)}")
        html = _make_offline(html_file.read_text(encoding="utf-8"))

    output_dir.mkdir(parents=True, exist_ok=True)
    target = output_dir / "index.html"
    partial = output_dir / ".index.html.partial"
    partial.write_text(html, encoding="utf-8")
    partial.replace(target)
    return target


def _read_categories(path: Path) -> list[Mapping[str, object]] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AllureError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, list) or not all(isinstance(rule, dict) for rule in data):
        raise AllureError(f"{path} must be a JSON array of objects")
    return data


def _make_offline(html: str) -> str:
    html = _ANALYTICS.sub("", html, count=1)
    if _HEAD.search(html) is None:
        # Unknown template (a new Allure version): refuse rather than ship it unguarded.
        raise AllureError("generated report has no <head>; cannot add its offline policy")
    meta = f'\n    <meta http-equiv="Content-Security-Policy" content="{_CSP}">'
    return _HEAD.sub(lambda head: head.group(0) + meta, html, count=1)


def _major_version(executable: Path) -> int | None:
    try:
        returncode, output = _run(
            [str(executable), "--version"], timeout=_VERSION_TIMEOUT, merge_stdout=True
        )
    except AllureError:
        return None
    match = re.search(r"\b(\d+)\.\d+", output)
    return int(match.group(1)) if returncode == 0 and match else None


def _run(
    argv: Sequence[str],
    *,
    timeout: float,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    merge_stdout: bool = False,
) -> tuple[int, str]:
    """Run ``argv``; return (exit code, stderr or merged output). Kill it all on timeout."""
    try:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if merge_stdout else subprocess.DEVNULL,
            stderr=subprocess.STDOUT if merge_stdout else subprocess.PIPE,
            text=True,
            errors="replace",
            # Its own process group, so a timeout also kills node's children (git).
            start_new_session=True,
        )
    except OSError as exc:
        raise AllureError(f"cannot run {argv[0]}: {exc}") from exc
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, stderr = proc.communicate()
        raise AllureError(
            f"{Path(argv[0]).name} {argv[1]} timed out after {timeout:g}s:\n{_tail(stderr or '')}"
        ) from None
    return proc.returncode, (stdout if merge_stdout else stderr) or ""


def _tail(text: str) -> str:
    text = text.strip()
    return message.tail(text, _TAIL_CHARS) if text else "(no output)"


def _logs(home: Path) -> str:
    # On an unexpected error the CLI prints one line and puts the stack in ~/.allure/logs.
    logs = sorted((home / ".allure" / "logs").glob("*.log"))
    return "".join(f"\n{log.name}:\n{_tail(log.read_text(errors='replace'))}" for log in logs)
