"""Handbook › Infrastructure › "Storage provisioned and tested"; Infrastructure Metrics ›
"Disk space > 20% free"."""

from opsverify import check
from opsverify.drivers import hosts


@check(
    "INF-004",
    "Data mount is present, writable and has enough free space",
    category="infrastructure",
    severity="high",
    cadences=["predeploy", "daily"],
    controls=["SOC2:A1.1", "ISO27001:A.8.6"],
    runbook="runbooks/infrastructure.md",
)
def test_data_mount(mount, evidence):
    host, spec = mount
    remote = hosts.connect(host)
    path = str(spec.path)
    assert remote.file(path).is_directory, f"{host.name}: {path} is not a directory"
    disk = hosts.disk(remote, path)
    writable = remote.run("test -w %s", path).rc == 0
    evidence.json(
        "disk",
        {
            **vars(disk),
            "free_percent": round(disk.free_percent, 2),
            "writable_by_check_user": writable,
        },
    )
    if spec.writable:
        assert not disk.read_only, f"{host.name}: {disk.mount_point} is mounted read-only"
        assert writable, f"{host.name}: {path} is not writable"
    assert disk.free_percent >= spec.min_free, (
        f"{host.name}: {disk.mount_point} has {disk.free_percent:.1f}% free, "
        f"at least {spec.min_free:g}% required"
    )
