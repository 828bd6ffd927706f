"""Handbook › Daily Operations › "Check resource utilization", "Review error rates";
Monitoring › Infrastructure Metrics (CPU < 80 %, memory < 85 %, disk > 20 % free,
network < 80 %), measured by node-exporter through Prometheus."""

from opsverify import family, not_applicable
from opsverify.drivers import prometheus as prom

daily = family(
    category="operations",
    controls=["SOC2:A1.1", "ISO27001:A.8.6"],
    runbook="runbooks/operations.md",
    cadences=["daily"],
)

# Pseudo filesystems say nothing about the data disks.
REAL_FILESYSTEMS = 'fstype!~"tmpfs|devtmpfs|overlay|squashfs|nsfs|ramfs|fuse.*|proc|sysfs"'


def window(profile) -> str:
    return f"{int(profile.resources.window.total_seconds())}s"


def measure(prometheus, evidence, promql: str, source="node-exporter") -> list[tuple[dict, float]]:
    """Run the query, keep it and its answer as evidence; no series at all is a failure."""
    series = [(s["metric"], float(s["value"][1])) for s in prom.query(prometheus, promql)]
    evidence.json("query", {"promql": promql, "series": series})
    assert series, f"no data for {promql!r}: is {source} scraped?"
    return series


def over(series, limit: float, what: str) -> list[str]:
    return [
        f"{labels.get('instance', '')} {what} {value:.1f}%"
        for labels, value in series
        if value > limit
    ]


@daily("OPS-010", "CPU utilisation is below its limit on every node", severity="high")
def test_cpu(prometheus, profile, evidence):
    promql = (
        "100 * (1 - avg by (instance) "
        f'(rate(node_cpu_seconds_total{{mode="idle"}}[{window(profile)}])))'
    )
    hot = over(measure(prometheus, evidence, promql), profile.resources.cpu_max, "CPU")
    assert not hot, f"above {profile.resources.cpu_max:g}%: {hot}"


@daily("OPS-011", "Memory utilisation is below its limit on every node", severity="high")
def test_memory(prometheus, profile, evidence):
    promql = "100 * (1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes)"
    full = over(measure(prometheus, evidence, promql), profile.resources.memory_max, "memory")
    assert not full, f"above {profile.resources.memory_max:g}%: {full}"


@daily("OPS-012", "Every filesystem keeps enough free space", severity="high")
def test_disk(prometheus, profile, evidence):
    promql = (
        f"100 * node_filesystem_avail_bytes{{{REAL_FILESYSTEMS}}}"
        f" / node_filesystem_size_bytes{{{REAL_FILESYSTEMS}}}"
    )
    series = measure(prometheus, evidence, promql)
    short = [
        f"{m.get('instance', '')}:{m.get('mountpoint')} {v:.1f}% free"
        for m, v in series
        if v < profile.resources.disk_min_free
    ]
    assert not short, f"below {profile.resources.disk_min_free:g}% free: {short}"


@daily("OPS-013", "Network bandwidth is below its limit on every interface", severity="medium")
def test_network(prometheus, profile, evidence):
    # Virtual NICs report no link speed (node-exporter: -1 or absent): nothing to compare to.
    span = window(profile)
    promql = (
        f"100 * max by (instance, device) (rate(node_network_receive_bytes_total[{span}])"
        f" or rate(node_network_transmit_bytes_total[{span}]))"
        " / (node_network_speed_bytes > 0)"
    )
    series = [(s["metric"], float(s["value"][1])) for s in prom.query(prometheus, promql)]
    evidence.json("query", {"promql": promql, "series": series})
    if not series:
        not_applicable("no interface reports a link speed (node_network_speed_bytes)")
    busy = over(series, profile.resources.network_max, "network")
    assert not busy, f"above {profile.resources.network_max:g}%: {busy}"


@daily(
    "OPS-014",
    "The service's 5xx ratio over the last 24 h is below the error budget",
    severity="critical",
    controls=["SOC2:A1.1", "ISO27001:A.8.16"],
)
def test_error_ratio(prometheus, profile, evidence):
    # No 5xx series at all means none happened: count it as zero, not as missing data.
    promql = (
        '(sum(increase(cronos_ai_http_requests_total{status=~"5.."}[24h])) or vector(0))'
        " / sum(increase(cronos_ai_http_requests_total[24h]))"
    )
    series = measure(prometheus, evidence, promql, source="the service")
    ratio = 100 * series[0][1]
    assert ratio == ratio, "no request in the last 24 h: the ratio is undefined"  # NaN
    assert ratio < profile.slo.error_rate, (
        f"5xx ratio {ratio:.2f}% over 24 h, the objective is below {profile.slo.error_rate:g}%"
    )
