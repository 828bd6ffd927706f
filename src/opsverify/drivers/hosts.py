"""Hosts driver (pytest-testinfra): reach a machine by URL and ask it about files and disks."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import testinfra

from opsverify.profile import Host

CONNECT_TIMEOUT_S = 10  # commands are bounded by the check's own timeout (pytest-timeout)


def connect(host: Host) -> Any:
    """A testinfra host; ssh:// uses the profile's ssh_config (known hosts, keys) when given.

    testinfra ignores --ssh-extra-args (FIELD_NOTES), so the config file is the way in.
    Connections are reused per URL within a process.
    """
    return _connect(host.url, str(host.ssh_config) if host.ssh_config else None)


@cache
def _connect(url: str, ssh_config: str | None) -> Any:
    options: dict[str, Any] = {}
    if url.startswith(("ssh://", "paramiko://")):
        options["timeout"] = CONNECT_TIMEOUT_S
        if ssh_config:
            options["ssh_config"] = ssh_config
    return testinfra.get_host(url, **options)


@dataclass(frozen=True)
class Disk:
    path: str
    mount_point: str
    filesystem: str
    options: tuple[str, ...]
    size_kib: int
    available_kib: int

    @property
    def free_percent(self) -> float:
        return 100 * self.available_kib / self.size_kib if self.size_kib else 0.0

    @property
    def read_only(self) -> bool:
        return "ro" in self.options


def disk(remote: Any, path: str) -> Disk:
    """The filesystem holding ``path``: findmnt for the mount, df for the space (POSIX -P)."""
    mount = remote.check_output("findmnt -n -o TARGET,FSTYPE,OPTIONS --target %s", path).split()
    df = remote.check_output("df -P -k %s", path).splitlines()[-1].split()
    return Disk(
        path=path,
        mount_point=mount[0],
        filesystem=mount[1],
        options=tuple(mount[2].split(",")),
        size_kib=int(df[1]),
        available_kib=int(df[3]),
    )
