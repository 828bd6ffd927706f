"""INF-003, INF-004, BKP-001 and OPS-002 through the real CLI: a real tmpfs, a real sshd on
127.0.0.1, a real restic repository. Each fault fails exactly the check that exists to catch it.
(INF-001 runs against the sandbox's nginx in test_e2e.py.)"""

from __future__ import annotations

import secrets
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from tests.helpers import ROOT, opsverify, readiness

SELECT = "INF-003 or INF-004 or BKP-001 or OPS-002"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("infra")


@pytest.fixture(scope="module")
def data_mount(workdir: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs: small enough to fill, a real filesystem to measure."""
    mount = workdir / "data"
    mount.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], check=True, timeout=30
    )
    yield mount
    subprocess.run(["umount", str(mount)], check=False, timeout=30)


@pytest.fixture(scope="module")
def sshd(workdir: Path) -> Iterator[tuple[int, Path]]:
    """sshd on 127.0.0.1 with a throwaway host key and client key; yields (port, ssh_config)."""
    keys = workdir / "ssh"
    keys.mkdir()
    for name in ("host", "client"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / name)],
            check=True,
            timeout=30,
        )
    (keys / "authorized_keys").write_text((keys / "client.pub").read_text())
    port = free_port()
    (keys / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {keys / 'host'}\n"
        f"AuthorizedKeysFile {keys / 'authorized_keys'}\nPermitRootLogin prohibit-password\n"
        f"PasswordAuthentication no\nUsePAM no\nStrictModes no\nPidFile {keys / 'sshd.pid'}\n"
    )
    (keys / "ssh_config").write_text(
        f"Host 127.0.0.1\n  IdentityFile {keys / 'client'}\n  StrictHostKeyChecking no\n"
        "  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)
    server = subprocess.Popen(
        ["/usr/sbin/sshd", "-D", "-e", "-f", str(keys / "sshd_config")], stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 15
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                pytest.fail("sshd did not start")
            time.sleep(0.1)
    yield port, keys / "ssh_config"
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture(scope="module")
def repository(workdir: Path) -> Path:
    """A restic repository with one snapshot; its password in a file."""
    password = workdir / "restic-password"
    password.write_text(secrets.token_urlsafe(24) + "\n")  # generated: no literal secret
    repo = workdir / "restic"
    env = {
        "RESTIC_REPOSITORY": str(repo),
        "RESTIC_PASSWORD_FILE": str(password),
        "PATH": "/usr/bin:/bin",
    }
    subprocess.run(["restic", "init"], env=env, check=True, capture_output=True, timeout=120)
    subprocess.run(
        ["restic", "backup", str(password.parent / "ssh")],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    return repo


def profile(
    workdir: Path, data_mount: Path, sshd: tuple[int, Path], repository: Path, **changes
) -> Path:
    port, ssh_config = sshd
    data = {
        "name": "infra",
        "tier": "staging",
        "dns": {
            "records": [
                {"name": "localhost", "addresses": ["127.0.0.1", "::1"], "all_required": False}
            ]
        },
        "hosts": [
            {"name": "local", "url": "local://", "mounts": [{"path": str(data_mount)}]},
            {
                "name": "remote",
                "url": f"ssh://root@127.0.0.1:{port}",
                "ssh_config": str(ssh_config),
                "mounts": [{"path": str(data_mount)}],
            },
        ],
        "backup": {
            "repositories": [
                {
                    "name": "r",
                    "repository": str(repository),
                    "password": {"file": str(workdir / "restic-password")},
                }
            ]
        },
        **changes,
    }
    path = workdir / f"infra-{len(list(workdir.glob('infra-*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def run(path: Path, tmp_path: Path) -> dict[str, str]:
    outcome = opsverify(
        "run", "--env", str(path), "--run-dir", str(tmp_path / "run"), "-k", SELECT, cwd=ROOT
    )
    assert outcome.code in (0, 1), outcome.output
    return {
        f"{c['id']}[{c['parameter']}]": c["status"] for c in readiness(tmp_path / "run")["checks"]
    }


HEALTHY = {
    "INF-003[localhost]": "passed",
    "INF-004[local:{mount}]": "passed",
    "INF-004[remote:{mount}]": "passed",
    "BKP-001[r]": "passed",
    "OPS-002[r]": "passed",
}


def expected(mount: Path, **failing: str) -> dict[str, str]:
    result = {k.format(mount=mount): v for k, v in HEALTHY.items()}
    result.update({k.format(mount=mount): v for k, v in failing.items()})
    return result


@pytest.fixture
def setup(workdir, data_mount, sshd, repository):
    return workdir, data_mount, sshd, repository


def test_healthy_infrastructure_passes(setup, tmp_path: Path) -> None:
    workdir, mount, ssh, repo = setup
    assert run(profile(workdir, mount, ssh, repo), tmp_path) == expected(mount)


def test_a_filled_data_mount_fails_the_storage_check_on_every_host(setup, tmp_path) -> None:
    workdir, mount, ssh, repo = setup
    filler = mount / "filler"
    filler.write_bytes(b"\0" * (1800 * 1024))  # 1.8 of 2 MiB: about 12% left
    try:
        statuses = run(profile(workdir, mount, ssh, repo), tmp_path)
    finally:
        filler.unlink()
    assert statuses == expected(
        mount, **{"INF-004[local:{mount}]": "failed", "INF-004[remote:{mount}]": "failed"}
    )
    message = next(c for c in readiness(tmp_path / "run")["checks"] if c["id"] == "INF-004")
    assert "% free, at least 20% required" in message["message"]


def test_a_read_only_mount_fails_the_storage_check(setup, tmp_path) -> None:
    workdir, mount, ssh, repo = setup
    subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True, timeout=30)
    try:
        statuses = run(profile(workdir, mount, ssh, repo), tmp_path)
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(mount)], check=True, timeout=30)
    assert statuses == expected(
        mount, **{"INF-004[local:{mount}]": "failed", "INF-004[remote:{mount}]": "failed"}
    )


def test_an_unexpected_dns_answer_fails_the_dns_check(setup, tmp_path) -> None:
    workdir, mount, ssh, repo = setup
    wrong = {"records": [{"name": "localhost", "addresses": ["127.0.0.2"]}]}
    statuses = run(profile(workdir, mount, ssh, repo, dns=wrong), tmp_path)
    assert statuses == expected(mount, **{"INF-003[localhost]": "failed"})


def test_a_name_that_does_not_resolve_fails_the_dns_check(setup, tmp_path) -> None:
    workdir, mount, ssh, repo = setup
    missing = {"records": [{"name": "no-such-host.invalid", "addresses": ["127.0.0.1"]}]}
    statuses = run(profile(workdir, mount, ssh, repo, dns=missing), tmp_path)
    assert statuses["INF-003[no-such-host.invalid]"] == "failed"


def test_a_wrong_backup_password_fails_the_backup_check(setup, tmp_path) -> None:
    workdir, mount, ssh, repo = setup
    wrong = workdir / "wrong-password"
    wrong_value = secrets.token_urlsafe(24)
    wrong.write_text(wrong_value + "\n")
    repos = {
        "repositories": [{"name": "r", "repository": str(repo), "password": {"file": str(wrong)}}]
    }
    statuses = run(profile(workdir, mount, ssh, repo, backup=repos), tmp_path)
    assert statuses == expected(mount, **{"BKP-001[r]": "failed", "OPS-002[r]": "failed"})
    check = next(c for c in readiness(tmp_path / "run")["checks"] if c["id"] == "BKP-001")
    assert "wrong password" in check["message"]
    assert wrong_value not in (tmp_path / "run" / "readiness.json").read_text()


def test_an_empty_backup_repository_fails_the_backup_check(setup, tmp_path) -> None:
    workdir, mount, ssh, repo = setup
    empty = tmp_path / "empty-repo"
    env = {
        "RESTIC_REPOSITORY": str(empty),
        "RESTIC_PASSWORD_FILE": str(workdir / "restic-password"),
        "PATH": "/usr/bin:/bin",
    }
    subprocess.run(["restic", "init"], env=env, check=True, capture_output=True, timeout=120)
    repos = {
        "repositories": [
            {
                "name": "r",
                "repository": str(empty),
                "password": {"file": str(workdir / "restic-password")},
            }
        ]
    }
    statuses = run(profile(workdir, mount, ssh, repo, backup=repos), tmp_path)
    assert statuses == expected(mount, **{"BKP-001[r]": "failed", "OPS-002[r]": "failed"})


def test_a_backup_older_than_a_day_fails_the_daily_completion_check(setup, tmp_path) -> None:
    workdir, mount, ssh, repo = setup
    stale = tmp_path / "stale-repo"
    env = {
        "RESTIC_REPOSITORY": str(stale),
        "RESTIC_PASSWORD_FILE": str(workdir / "restic-password"),
        "PATH": "/usr/bin:/bin",
    }
    subprocess.run(["restic", "init"], env=env, check=True, capture_output=True, timeout=120)
    # A real snapshot, taken as if two days ago: restic records the time it is given.
    two_days_ago = (datetime.now(UTC) - timedelta(days=2)).strftime("%Y-%m-%d %H:%M:%S")
    subprocess.run(
        ["restic", "backup", "--time", two_days_ago, str(workdir / "ssh")],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    repos = {
        "repositories": [
            {
                "name": "r",
                "repository": str(stale),
                "password": {"file": str(workdir / "restic-password")},
            }
        ]
    }
    statuses = run(profile(workdir, mount, ssh, repo, backup=repos), tmp_path)
    assert statuses == expected(mount, **{"OPS-002[r]": "failed"})
