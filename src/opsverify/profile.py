"""Environment profiles: what every check needs to know about one target environment.

A profile is YAML validated by pydantic on load. Unknown keys are errors (a typo must not
silently switch a check off), durations are written like ``500ms``/``15m``/``4h``/``30d``,
and secrets are only ever references (``{env: NAME}`` or ``{file: PATH}``) resolved at use.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    IPvAnyAddress,
    PlainValidator,
    PrivateAttr,
    Strict,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from opsverify import gate, thresholds, userfile
from opsverify.check import Cadence, Category, Severity
from opsverify.evidence import REDACTOR
from opsverify.sandbox.settings import BackupPlan, BackupRow
from opsverify.sandbox.settings import Settings as SandboxSettings

ENVIRONMENTS_DIR = "environments"


class ProfileError(Exception):
    """A profile that cannot be used: names the file, the key path and what was expected."""


class Tier(StrEnum):
    sandbox = "sandbox"
    staging = "staging"
    production = "production"


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


# No duration in a profile means anything beyond ten years; a longer one is a typo.
LONGEST = timedelta(days=3650)


def _parse_duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match[1]) * _UNIT_SECONDS[match[2]]
        if seconds > LONGEST.total_seconds():
            raise ValueError("expected a duration of at most 3650d")
        return timedelta(seconds=seconds)
    raise ValueError("expected a duration such as 500ms, 10s, 15m, 4h or 30d")


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError(
            "expected a duration above 0 (a zero timeout, window or interval means nothing)"
        )
    return value


# Timeouts, windows, intervals, objectives: above zero. Where zero means something (a grace
# of none, no delay), the field says DurationOrZero.
DurationOrZero = Annotated[timedelta, BeforeValidator(_parse_duration)]
Duration = Annotated[timedelta, BeforeValidator(_parse_duration), AfterValidator(_positive)]


def _every(value: Any) -> timedelta | Literal["on_change"]:
    if value == "on_change":
        return "on_change"
    try:
        return _positive(_parse_duration(value))
    except ValueError as exc:
        raise ValueError(f"{exc}, or on_change") from None


# How often a backup runs or is verified: a duration above 0, or on_change.
Every = Annotated[timedelta | Literal["on_change"], PlainValidator(_every)]
# A TCP port: an integer, not `true` (which YAML reads as 1) nor "443".
Port = Annotated[int, Strict(), Field(ge=1, le=65535)]


def _no_credentials(url: AnyHttpUrl) -> AnyHttpUrl:
    # A password in a URL is an inline secret, and URLs end up in every report.
    if url.username or url.password:
        raise ValueError("credentials in a URL are inline secrets: use an auth reference")
    return url


Url = Annotated[AnyHttpUrl, AfterValidator(_no_credentials)]
Percent = Annotated[float, Field(ge=0, le=100)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SecretRef(Model):
    """Where a secret lives. The value itself never appears in a profile."""

    env: str | None = None
    file: Path | None = None

    @model_validator(mode="before")
    @classmethod
    def _reference_only(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            raise ValueError(
                "expected a secret reference {env: NAME} or {file: PATH}, not an inline value"
            )
        if len(data) != 1 or not ({"env", "file"} & data.keys()):
            raise ValueError("expected exactly one of {env: NAME} or {file: PATH}")
        return data

    def describe(self) -> str:
        return f"env:{self.env}" if self.env else f"file:{self.file}"

    def resolve(self) -> str:
        """The secret's value; raises ProfileError naming the reference (never the value)."""
        if self.env is not None:
            value = os.environ.get(self.env)
            if not value:
                raise ProfileError(f"secret environment variable {self.env} is not set")
            return value
        assert self.file is not None
        try:
            return self.file.read_text().strip()
        except OSError as exc:
            raise ProfileError(f"secret file {self.file} cannot be read: {exc.strerror}") from None


class Auth(Model):
    header: str = "Authorization"
    scheme: str = "Bearer"
    token: SecretRef

    def headers(self) -> dict[str, str]:
        """The request header carrying the credential, resolved now (at use)."""
        return {self.header: f"{self.scheme} {self.token.resolve()}".strip()}


class EndpointKind(StrEnum):
    liveness = "liveness"
    readiness = "readiness"
    api = "api"
    metrics = "metrics"


class Endpoint(Model):
    name: str
    url: Url
    kind: EndpointKind = EndpointKind.api
    method: Literal["GET", "HEAD"] = "GET"
    expect_status: int = Field(200, ge=100, le=599)
    timeout: Duration = timedelta(seconds=5)
    auth: bool = False  # send the service's credentials with this request


class Service(Model):
    name: str
    base_url: Url
    auth: Auth | None = None
    ca_file: Path | None = None  # trust for the service's TLS; None = system trust store
    endpoints: list[Endpoint] = []

    @model_validator(mode="after")
    def _credentials_exist(self) -> Service:
        needing = [e.name for e in self.endpoints if e.auth]
        if needing and self.auth is None:
            raise ValueError(f"endpoints {needing} set auth: true but service.auth is missing")
        return self


class TlsEndpoint(Model):
    name: str
    host: str
    port: Port = 443
    server_name: str | None = None  # SNI and the name the certificate must match; default host
    timeout: Duration = timedelta(seconds=5)


class Tls(Model):
    ca_file: Path | None = None
    min_days_left: int = Field(30, ge=0)
    min_version: Literal["TLSv1.2", "TLSv1.3"] = "TLSv1.2"
    endpoints: list[TlsEndpoint] = []


class Command(Model):
    """A command a check runs (a config validator, say): argv, never a shell string."""

    name: str
    argv: list[str] = Field(min_length=1)
    cwd: Path | None = None
    timeout: Duration = timedelta(seconds=60)


class LoadBalancer(Model):
    name: str
    url: Url  # a health URL answered *through* the load balancer
    ca_file: Path | None = None
    expect_status: int = Field(200, ge=100, le=599)
    timeout: Duration = timedelta(seconds=5)


class DnsRecord(Model):
    name: str
    addresses: list[IPvAnyAddress] = Field(min_length=1)  # what the name may resolve to
    all_required: bool = True  # and must every one of them be among the answers?


class Dns(Model):
    resolver: IPvAnyAddress | None = None  # None: the system resolver
    port: Port = 53
    timeout: Duration = timedelta(seconds=5)
    records: list[DnsRecord] = []


def _absolute(path: PurePosixPath) -> PurePosixPath:
    if not path.is_absolute():  # a path on the host, which may be remote: no base to join
        raise ValueError("expected an absolute path on the host")
    return path


HostPath = Annotated[PurePosixPath, AfterValidator(_absolute)]


class Mount(Model):
    path: HostPath
    min_free: Percent = 20
    writable: bool = True


class Host(Model):
    """A machine reached with pytest-testinfra: local://, ssh://user@host:port, paramiko://…"""

    name: str
    url: str = Field(pattern=r"^(local|ssh|paramiko|docker|podman|kubectl|ansible)://")
    ssh_config: Path | None = None
    mounts: list[Mount] = []
    secret_files: list[HostPath] = []  # must exist and not be readable by others


class JunitArtifact(Model):
    name: str
    file: Path
    max_age: Duration = timedelta(days=7)


class ScanReport(Model):
    name: str
    file: Path
    format: Literal["trivy", "grype", "sarif", "pip-audit"]
    max_age: Duration = timedelta(days=7)
    # Why no complete scan can be made where this report comes from (an offline build with
    # no route to the vulnerability database): an incomplete report is then not applicable,
    # with this reason. Without it an incomplete scan fails: it is no clean scan.
    incomplete_because: str | None = Field(None, min_length=1)


class Security(Model):
    scans: list[ScanReport] = []
    fail_on: list[Literal["CRITICAL", "HIGH", "MEDIUM", "LOW"]] = ["CRITICAL"]
    scan_paths: list[Path] = []  # folders scanned for plaintext secrets


class RequiredAlert(Model):
    """An alert the handbook needs (MON-003): a loaded alerting rule of this name, carrying
    these labels and with these fragments in its expression (whitespace aside)."""

    alert: Annotated[str, Field(pattern=r"^[A-Za-z_:][A-Za-z0-9_:]*$")]
    purpose: str = ""  # what it watches, for messages: "service down"
    labels: dict[str, str] = {}
    expr_contains: list[str] = []


class Prometheus(Model):
    url: Url
    timeout: Duration = timedelta(seconds=10)
    expected_jobs: list[str] = []
    rule_groups: list[str] = []  # alert rule groups that must be loaded
    required_alerts: list[RequiredAlert] = []


class Alertmanager(Model):
    url: Url
    timeout: Duration = timedelta(seconds=10)
    paging_receiver: str | None = None  # where severity=critical must be routed
    # Where a synthetic page can be seen arriving (the sandbox's webhook receiver); real
    # environments leave it out, and the end-to-end paging check is then not applicable.
    delivery_probe: Url | None = None


OneOrMore = Annotated[
    list[str], BeforeValidator(lambda v: [v] if isinstance(v, str) else v), Field(min_length=1)
]


class IncidentSeverity(Model):
    level: Literal["P1", "P2", "P3", "P4"]
    # Labels of the alerts of this level; a list accepts any of its values.
    matchers: dict[str, OneOrMore] = Field(min_length=1)
    respond_within: Duration

    def label_sets(self) -> list[dict[str, str]]:
        """Every label set an alert of this level may carry (one per combination of values)."""
        sets: list[dict[str, str]] = [{}]
        for name, values in self.matchers.items():
            sets = [{**labels, name: value} for labels in sets for value in values]
        return sets

    def matches(self, labels: dict[str, str]) -> bool:
        return any(all(labels.get(k) == v for k, v in s.items()) for s in self.label_sets())


class Incident(Model):
    severities: list[IncidentSeverity] = []
    # Alerts of the alerting pipeline itself, at no incident level (INC-002): kube-prometheus's
    # Watchdog (always firing, a dead man's switch) and InfoInhibitor.
    pipeline_alerts: list[str] = []


def _distinct(values: list[str]) -> list[str]:
    if repeated := sorted({v for v in values if values.count(v) > 1}):
        raise ValueError(f"listed more than once: {repeated}")
    return values


class HttpBackend(Model):
    """A system opsverify asks over HTTP(S): where, with which credential and trust, how long."""

    url: Url
    auth: Auth | None = None
    ca_file: Path | None = None  # trust for its TLS; None = system trust store
    timeout: Duration = timedelta(seconds=10)


class Grafana(HttpBackend):
    """The Grafana the dashboards must be deployed in, asked through its HTTP API (a
    service-account token with the Viewer role is enough)."""

    # The dashboards that must be deployed; default: the uids of the files in the folder.
    uids: (
        Annotated[
            list[Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,40}$")]],
            Field(min_length=1),
            AfterValidator(_distinct),
        ]
        | None
    ) = None


class Dashboards(Model):
    """Grafana dashboards: JSON files in the repository (what gets provisioned) and, when the
    profile names a Grafana, the dashboards deployed there."""

    folder: Path | None = None
    # Grafana's own variables have no meaning to Prometheus: what to put in their place.
    variables: dict[str, str] = {"__rate_interval": "1m", "__interval": "1m", "__range": "1h"}
    grafana: Grafana | None = None

    @model_validator(mode="after")
    def _something_to_check(self) -> Dashboards:
        if self.folder is None and (self.grafana is None or self.grafana.uids is None):
            raise ValueError(
                "set folder (the dashboard files) or grafana.uids (the dashboards that must"
                " be deployed)"
            )
        return self


class ObservabilityBackend(HttpBackend):
    """Where the service's logs or traces can be queried, and how fresh the newest must be."""

    within: Duration = timedelta(minutes=15)  # the newest log line / trace may be this old
    service: str | None = None  # the service's name in the backend; default: service.name


class LogBackend(ObservabilityBackend):
    """Log aggregation (the handbook's Kibana): Elasticsearch/OpenSearch indices, or Loki."""

    kind: Literal["elasticsearch", "opensearch", "loki"]
    index: str | None = None  # elasticsearch/opensearch: the index pattern, e.g. logs-*
    service_field: str = "service.name"  # ECS
    timestamp_field: str = "@timestamp"
    # loki: a LogQL stream selector, e.g. {service="cronos-ai"}; it alone chooses the lines,
    # the service name only names them in messages.
    selector: str | None = None

    @model_validator(mode="after")
    def _fits_kind(self) -> LogBackend:
        search_keys = sorted({"index", "service_field", "timestamp_field"} & self.model_fields_set)
        if self.kind == "loki" and not self.selector:
            raise ValueError(
                'kind loki needs selector: a LogQL stream selector such as {service="cronos-ai"}'
            )
        if self.kind == "loki" and search_keys:
            raise ValueError(
                f"{', '.join(search_keys)}: for elasticsearch/opensearch; kind loki uses selector"
            )
        if self.kind != "loki" and not self.index:
            raise ValueError(f"kind {self.kind} needs index: an index pattern such as logs-*")
        if self.kind != "loki" and self.selector is not None:
            raise ValueError(f"selector: LogQL, for loki; kind {self.kind} uses index")
        return self


class TraceBackend(ObservabilityBackend):
    """Distributed tracing (the handbook's Jaeger): its query API, or Tempo's, or Zipkin's."""

    kind: Literal["jaeger", "tempo", "zipkin"]


class Monitoring(Model):
    prometheus: Prometheus | None = None
    alertmanager: Alertmanager | None = None
    dashboards: Dashboards | None = None
    logs: LogBackend | None = None
    tracing: TraceBackend | None = None


# Where an SLO query's range goes: {{window}}, Sloth's {{.window}}, or $window.
WINDOW_PLACEHOLDER = re.compile(r"\{\{\s*\.?window\s*\}\}|\$\{window\}|\$window\b")
METRIC_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_MATCHER = r'\s*[a-zA-Z_][a-zA-Z0-9_]*\s*(?:=~|!~|!=|=)\s*"(?:[^"\\]|\\.)*"\s*'
# Label matchers without the braces, e.g. job="cronos-ai",route!="/metrics".
SELECTOR = rf"(?:{_MATCHER}(?:,{_MATCHER})*,?)?\s*"


def _matching(pattern: str, expected: str) -> AfterValidator:
    """A string that must match ``pattern``; the error says what was expected in words."""
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise ValueError(f"expected {expected}")
        return value

    return AfterValidator(check)


MetricName = Annotated[str, _matching(METRIC_NAME, "a metric name such as http_requests_total")]
Selector = Annotated[str, _matching(SELECTOR, 'label matchers such as job="api",code!~"5.."')]
ObjectiveName = Annotated[
    str, _matching(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", "a name of letters, digits, . _ or -")
]
ObjectivePercent = Annotated[float, Field(gt=0, lt=100)]  # 100 % would leave no error budget


def _windowed(query: str) -> str:
    if not WINDOW_PLACEHOLDER.search(query):
        raise ValueError(
            "expected a PromQL query with a {{window}} placeholder where its range goes,"
            " e.g. sum(rate(http_requests_total[{{window}}]))"
        )
    return query


WindowedQuery = Annotated[str, AfterValidator(_windowed)]


class SliMetrics(Model):
    """How the service's requests read in Prometheus: what SLO-001..005 measure."""

    requests: MetricName  # a counter of answered requests with a status-code label
    duration: MetricName  # a histogram of request duration in seconds (without _bucket)
    selector: Selector = ""  # the service's series, e.g. job="cronos-ai"
    code_label: Annotated[str, _matching(r"[a-zA-Z_]\w*", "a label name such as code")] = "code"
    # The service's scrape targets (up{…}): a process that is down answers nothing and counts
    # no failed request, so availability also holds the share of successful scrapes.
    targets: Selector | None = None


class LatencySli(Model):
    """Requests answered within ``threshold`` are good: one bucket of a duration histogram."""

    histogram: MetricName  # without _bucket/_count
    selector: Selector = ""
    threshold: Duration  # one of the histogram's bucket bounds (its le values)


class SloObjective(Model):
    """An SLO with an error budget: the share of good events over a window, from Prometheus.
    Its ``key`` (service/name) tells it apart from another service's SLO of the same name."""

    name: ObjectiveName
    service: str | None = Field(None, min_length=1)  # imported: the spec's service
    objective: ObjectivePercent  # % of events that must be good
    window: Duration | None = None  # default: slo.window
    description: str = ""
    good: WindowedQuery | None = None  # counts of events over {{window}}: good or bad…
    bad: WindowedQuery | None = None
    total: WindowedQuery | None = None  # …and all of them
    error_ratio: WindowedQuery | None = None  # or the bad/total ratio itself (0..1)
    latency: LatencySli | None = None  # or requests within a latency threshold
    _origin: str = PrivateAttr("")  # where it is defined: "FILE: KEY" (set by the importers)

    @property
    def key(self) -> str:
        return f"{self.service}/{self.name}" if self.service else self.name

    @model_validator(mode="after")
    def _one_indicator(self) -> SloObjective:
        counts = any(q is not None for q in (self.good, self.bad, self.total))
        ratio = self.total is not None and (self.good is None) != (self.bad is None)
        kinds = [counts, self.error_ratio is not None, self.latency is not None]
        if sum(kinds) != 1 or (counts and not ratio):
            raise ValueError(
                "expected exactly one indicator: good and total, bad and total, error_ratio,"
                " or latency"
            )
        return self


class SloSpec(Model):
    """An OpenSLO (openslo/v1) or Sloth (prometheus/v1) file, imported unchanged. Its SLOs are
    read when the profile loads, so a bad spec stops the run naming the file and its key."""

    file: Path
    objectives: tuple[SloObjective, ...]

    @model_validator(mode="before")
    @classmethod
    def _import(cls, data: Any) -> Any:
        if not isinstance(data, str):
            raise ValueError("expected the path of an OpenSLO or Sloth spec file")
        from opsverify import slo  # the importers build on this module's models

        return {"file": Path(data), "objectives": slo.import_spec(Path(data))}


class Slo(Model):
    """The handbook's SLIs (SLO-001..005) and the SLOs with error budgets (SLO-006, 007)."""

    window: Duration = timedelta(days=30)  # what the SLIs are measured over
    availability: Percent
    latency_p95: Duration
    latency_p99: Duration | None = None  # SLO-003 is not applicable without it
    error_rate: Percent
    throughput_rps: float = Field(gt=0)
    metrics: SliMetrics | None = None
    objectives: list[SloObjective] = []
    specs: list[SloSpec] = []

    @model_validator(mode="after")
    def _consistent(self) -> Slo:
        if self.latency_p99 is not None and self.latency_p99 < self.latency_p95:
            raise ValueError("latency_p99 must not be below latency_p95")
        places: dict[str, list[str]] = {}
        for index, objective in enumerate(self.objectives):
            places.setdefault(objective.key, []).append(f"slo.objectives[{index}]")
        for objective in (o for spec in self.specs for o in spec.objectives):
            places.setdefault(objective.key, []).append(objective._origin)
        if twice := [(key, where) for key, where in places.items() if len(where) > 1]:
            raise ValueError(
                "; ".join(
                    f"objective {key} is defined {'twice' if len(w) == 2 else f'{len(w)} times'}:"
                    f" {', '.join(w[:-1])} and {w[-1]}"
                    for key, w in twice
                )
            )
        return self

    def definitions(self) -> list[SloObjective]:
        """Every objective, inline then imported, each with its window."""
        found = [*self.objectives, *(o for spec in self.specs for o in spec.objectives)]
        return [o if o.window else o.model_copy(update={"window": self.window}) for o in found]


class ProbeObjectives(Model):
    """What an active probe must meet. p95 and success_ratio default to the profile's slo."""

    p95: Duration | None = None  # default: slo.latency_p95
    p99: Duration | None = None  # no default: checked only when given
    # % of the measured requests answered with expect_status; default: slo.availability
    success_ratio: Percent | None = None


class Probe(Model):
    """An active probe (SLO-010): a bounded burst of real requests through the load balancer,
    its latency percentiles and success ratio held against the objectives."""

    name: str
    url: Url  # through the load balancer: the path clients take
    method: Literal["GET", "HEAD"] = "GET"
    auth: bool = False  # send the service's credentials (service.auth)
    ca_file: Path | None = None  # trust for its TLS; default: service.ca_file
    requests: int = Field(200, ge=1, le=10_000)  # measured, after the warm-up
    concurrency: int = Field(4, ge=1, le=32)  # requests in flight, one connection each
    warmup: int = Field(10, ge=0, le=1000)  # not measured: they open the connections
    timeout: Duration = timedelta(seconds=5)  # per request, up to the last byte of the body
    # The whole probe; below the check's own 300 s timeout, so the probe reports, not pytest.
    deadline: Duration = Field(timedelta(seconds=60), le=timedelta(minutes=4))
    expect_status: int = Field(200, ge=100, le=599)
    objectives: ProbeObjectives = ProbeObjectives()


def _complete_probes(probes: list[Probe], info: ValidationInfo) -> list[Probe]:
    """Fill in what a probe leaves to the rest of the profile (trust, objectives) and refuse
    what it cannot do without it. Profile declares service and slo before probes, so pydantic
    has validated them by now."""
    _distinct([p.name for p in probes])
    if "service" not in info.data or "slo" not in info.data:
        return probes  # they failed validation themselves: that error says enough
    service, slo = info.data["service"], info.data["slo"]
    defaults = {"p95": "latency_p95", "success_ratio": "availability"}  # objective: slo key
    completed = []
    for probe in probes:
        missing = {k: v for k, v in defaults.items() if getattr(probe.objectives, k) is None}
        if missing and slo is None:
            needed = " and ".join(f"objectives.{k}" for k in missing)
            raise ValueError(f"probe {probe.name}: needs {needed}: the profile has no slo")
        objectives = probe.objectives.model_copy(
            update={k: getattr(slo, v) for k, v in missing.items()}
        )
        if probe.auth and (service is None or service.auth is None):
            raise ValueError(f"probe {probe.name}: auth: true but service.auth is missing")
        ca_file = probe.ca_file or (service.ca_file if service else None)
        completed.append(probe.model_copy(update={"objectives": objectives, "ca_file": ca_file}))
    return completed


Probes = Annotated[list[Probe], AfterValidator(_complete_probes)]


class Resources(Model):
    cpu_max: Percent = 80
    memory_max: Percent = 85
    disk_min_free: Percent = 20
    network_max: Percent = 80
    window: Duration = timedelta(minutes=5)  # rates (CPU, network) are averaged over this


class HttpHook(Model):
    """An HTTP call a drill step makes (a DNS provider's API, a deployment system's hook)."""

    url: Url
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    auth: Auth | None = None
    body: dict[str, Any] | None = None  # sent as JSON
    ca_file: Path | None = None
    expect: list[int] = Field([200, 201, 202, 204], min_length=1)  # statuses that mean done


class Hook(Model):
    """One step of a failover drill: a command (argv, never a shell string; it runs in the
    profile's folder unless ``cwd`` says otherwise) or an HTTP call, within ``timeout``."""

    command: list[str] | None = Field(None, min_length=1)
    cwd: Path | None = None
    http: HttpHook | None = None
    timeout: Duration = timedelta(minutes=10)

    @model_validator(mode="after")
    def _one_action(self) -> Hook:
        if (self.command is None) == (self.http is None):
            raise ValueError("set exactly one of command (argv) or http")
        return self


# The failover drill's steps in the order they run; failback and cleanup run however the
# others end.
FAILOVER_STEPS = ("inject", "activate", "switch", "verify", "failback", "cleanup")
# What a failover drill's hooks may take in all: the check's own limit (6 h) leaves the
# sandbox's steps and the rest their hour.
FAILOVER_LIMIT = timedelta(hours=5)


class Failover(Model):
    """The DR failover drill (DRL-002). On a sandbox profile every step the profile leaves
    out is the sandbox's own (stop the primary, restore into the DR site, switch nginx, fail
    back); elsewhere activate, switch and failback are the environment's hooks (the
    handbook's activate-dr-site.sh, the DNS switch), and inject is optional: without it the
    disaster is declared when the drill starts."""

    # Answered through the load balancer: its first healthy answer after the failure ends
    # the measured RTO, and it must answer healthy again after failback.
    health: Url
    ca_file: Path | None = None  # default: service.ca_file
    probe: str | None = None  # a `probes` entry sent through the load balancer to the DR site
    # The DR site's database: its newest heartbeat from before the disaster gives the RPO
    # (on a sandbox profile, the sandbox's DR site when left out).
    database: PostgresSource | None = None
    health_timeout: Duration = timedelta(minutes=10)  # for each healthy answer awaited
    inject: Hook | None = None
    activate: Hook | None = None
    switch: Hook | None = None
    verify: Hook | None = None  # runs after opsverify's own health and probe checks
    failback: Hook | None = None
    cleanup: Hook | None = None

    @model_validator(mode="after")
    def _bounded(self) -> Failover:
        hooks = [getattr(self, step) for step in FAILOVER_STEPS]
        total = sum((h.timeout for h in hooks if h is not None), 2 * self.health_timeout)
        if total > FAILOVER_LIMIT:
            raise ValueError(
                f"the steps' timeouts and twice health_timeout add up to {total}, more than "
                f"{FAILOVER_LIMIT}: the drill's own limit would cut failback short"
            )
        return self


class Dr(Model):
    rto: Duration
    rpo: Duration
    # Where drills restore to (files and scratch database instances): never a live path,
    # and no live path inside it. Each drill works in a folder of its own below it and
    # deletes that folder when it ends, however it ends.
    scratch: Path | None = None
    failover: Failover | None = None


class BackupType(StrEnum):
    full = "full"
    incremental = "incremental"
    transaction_logs = "transaction_logs"
    configuration = "configuration"


class BackupScheduleEntry(Model):
    type: BackupType
    frequency: Every
    at: str | None = Field(None, pattern=r"^\d{2}:\d{2}$")  # time of day for daily runs
    retention: Duration
    verification: Every
    grace: DurationOrZero | None = None  # how late a backup may be; default backup.grace


class BackupRepository(Model):
    name: str
    kind: Literal["restic"] = "restic"
    repository: str
    password: SecretRef
    # restic keeps no retention policy of its own: the file the backup job that writes this
    # repository reads its schedule and retention from (the sandbox's scheduler config).
    policy_file: Path | None = None
    timeout: Duration = timedelta(minutes=2)  # listing snapshots, reading a manifest
    data_timeout: Duration = timedelta(hours=1)  # backing up, reading all data back


_HEARTBEAT = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*){1,2}$"


class PostgresSource(Model):
    """The database a backup dumps (pg_dump) and, for full backups, copies whole
    (pg_basebackup, the base for point-in-time recovery from the WAL archive)."""

    host: str | None = None
    socket_dir: Path | None = None  # instead of host: the server's unix socket folder
    port: Port = 5432
    dbname: str
    user: str  # pg_basebackup needs the REPLICATION attribute, reading every table SELECT
    password: SecretRef | None = None  # none: peer or certificate authentication
    # table.column (or schema.table.column) of a timestamp row written every few seconds:
    # the newest one in a backup says how much data a restore would lose.
    heartbeat: str | None = Field(None, pattern=_HEARTBEAT)
    wal_archive: Path | None = None  # where archive_command puts WAL segments
    base_backup: bool = True
    timeout: Duration = timedelta(minutes=10)  # one pg_dump or pg_basebackup

    @model_validator(mode="after")
    def _one_address(self) -> PostgresSource:
        if (self.host is None) == (self.socket_dir is None):
            raise ValueError("set exactly one of host (TCP) or socket_dir (unix socket)")
        return self


class BackupSources(Model):
    """What a backup holds: folders of live data and configuration, and a database."""

    # The backup's own files (database dump, base backup, manifest) are written here and
    # backed up with the rest; a folder of its own, never a live one.
    staging: Path
    data_paths: list[Path] = []
    config_paths: list[Path] = []
    postgres: PostgresSource | None = None


class Backup(Model):
    repositories: list[BackupRepository] = []
    schedule: list[BackupScheduleEntry] = []
    sources: BackupSources | None = None
    # Daily operations: the newest snapshot may be this old (daily full at 02:00 + grace).
    completed_within: Duration = timedelta(hours=26)
    grace: DurationOrZero = timedelta(hours=1)  # how late a scheduled backup may be
    # Before a deployment: a full backup at most this old (`opsverify backup create`).
    predeploy_within: Duration = timedelta(hours=1)
    # The daily integrity check reads 1/N of the data, the part read longest ago…
    integrity_parts: int = Field(30, ge=1, le=256)
    # …and all of it must have been read back within this (handbook › Audit Procedures ›
    # monthly › "Verify backup integrity"), by those parts or by the monthly full read.
    read_all_within: Duration = timedelta(days=31)
    # Sandbox only: the schedule, its retention and grace and the DR objectives compared
    # with it run this many times faster (60: a day of backups in 24 minutes).
    time_scale: float = Field(1, ge=1)

    @model_validator(mode="after")
    def _rows_distinct(self) -> Backup:
        try:
            _distinct([str(e.type) for e in self.schedule])
        except ValueError as exc:
            raise ValueError(f"schedule: {exc}") from None
        return self

    def scaled(self, duration: timedelta) -> timedelta:
        """``duration`` of the handbook as this environment lives it."""
        return duration / self.time_scale

    def scale_note(self) -> str:
        """Words for a message whose limit was scaled: empty outside a sandbox."""
        return "" if self.time_scale == 1 else f" at time scale {self.time_scale:g}"

    def grace_for(self, entry: BackupScheduleEntry) -> timedelta:
        return self.grace if entry.grace is None else entry.grace


class DeployedScheduleEntry(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    type: BackupType
    frequency: Every
    retention: Duration


class DeployedPolicy(BaseModel):
    """A backup job's schedule and retention as deployed (``policy_file``); the file may hold
    the job's other settings too."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    time_scale: float = Field(1, ge=1)
    schedule: list[DeployedScheduleEntry]


def load_policy(path: Path) -> DeployedPolicy:
    """Read a policy file (JSON or YAML); problems name the file and the key."""
    try:
        raw = userfile.load_yaml(path, "backup policy")
    except userfile.UserFileError as exc:
        raise ProfileError(str(exc)) from None
    try:
        return DeployedPolicy.model_validate(raw)
    except ValidationError as exc:
        raise ProfileError(format_errors(path, exc)) from None


class Hpa(Model):
    min_replicas: int = Field(ge=1)
    max_replicas: int = Field(ge=1)
    target_cpu: Percent

    @model_validator(mode="after")
    def _ordered(self) -> Hpa:
        if self.max_replicas < self.min_replicas:
            raise ValueError("max_replicas must be >= min_replicas")
        return self


class Kubernetes(Model):
    namespace: str
    deployment: str
    manifests: Path | None = None
    context: str | None = None
    hpa: Hpa | None = None


class LiveOpenApi(Model):
    """Where the running service publishes its OpenAPI document (through the LB, say)."""

    url: Url
    ca_file: Path | None = None  # trust for its TLS; None = system trust store
    timeout: Duration = timedelta(seconds=10)


class Documentation(Model):
    """Handbook › Pre-Production › Documentation: the files of the documentation set."""

    architecture_doc: Path
    api_doc: Path
    openapi_doc: Path | None = None  # the OpenAPI document kept in the repository
    runbooks_dir: Path
    oncall_playbook: Path
    dr_procedures: Path
    review_every: Duration = timedelta(days=92)  # the handbook's "Review Frequency: Quarterly"
    live_openapi: LiveOpenApi | None = None
    # Relative alert runbook_urls resolve here; default: the run's repository root.
    repository_root: Path | None = None


class Activity(Model):
    """How often a testing activity must have passed, or why it does not apply here."""

    within: Duration  # a passing record of it must be younger than this
    # Which of the activity's records count, by their parameter (a load profile's name, an
    # experiment's title); empty: any of them.
    only: list[str] = []
    out_of_scope: str | None = Field(None, min_length=1)  # the reason, shown as not applicable


class Testing(Model):
    """Handbook › Pre-Production Checklist › "Performance/Load/Chaos testing completed"."""

    performance: Activity = Activity(within=timedelta(days=30))
    load: Activity = Activity(within=timedelta(days=30))
    chaos: Activity = Activity(within=timedelta(days=92))


def _expression(value: Any) -> thresholds.Expression:
    return value if isinstance(value, thresholds.Expression) else thresholds.parse(value)


class LoadThreshold(Model):
    """What a load run must meet, like a k6 threshold: ``p95 < 500ms`` (a string is short for
    ``{threshold: "p95 < 500ms"}``)."""

    threshold: Annotated[thresholds.Expression, PlainValidator(_expression)]
    abort_on_fail: bool = False  # stop the run as soon as it is lost (k6's abortOnFail)
    delay_abort_eval: DurationOrZero = timedelta(0)  # not this early in the run (delayAbortEval)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"threshold": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _delay_with_abort(self) -> LoadThreshold:
        if "delay_abort_eval" in self.model_fields_set and not self.abort_on_fail:
            raise ValueError("delay_abort_eval only applies with abort_on_fail: true")
        return self


def _whole_seconds(value: timedelta) -> timedelta:
    if value.total_seconds() < 1 or value.total_seconds() % 1:
        raise ValueError("Locust runs for whole seconds: expected e.g. 10s, 90s or 10m")
    return value


# When a load profile runs if it does not say: the short one before every deploy, the
# handbook's full one monthly.
_LOAD_CADENCES = {"smoke": [Cadence.predeploy], "standard": [Cadence.monthly]}


class LoadProfile(Model):
    """One load test (LOAD-001[name]): users, spawn rate, run time, and its thresholds."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$")]
    users: int = Field(ge=1)
    spawn_rate: float = Field(gt=0)  # users started per second
    run_time: Annotated[Duration, AfterValidator(_whole_seconds)]
    processes: int = Field(1, ge=1, le=64)  # > 1: Locust's master and this many workers
    # Fewer requests prove nothing: a p99 over fewer than 100 is the slowest request.
    min_requests: int = Field(100, ge=1)
    cadences: list[Cadence] = Field(min_length=1)  # default for smoke and standard
    thresholds: list[LoadThreshold] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _default_cadences(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "cadences" in data:
            return data
        name = data.get("name")
        default = _LOAD_CADENCES.get(name) if isinstance(name, str) else None
        if default is None:
            known = " and ".join(_LOAD_CADENCES)
            raise ValueError(f"cadences is required (only {known} have a default)")
        return {**data, "cadences": default}


def _named_once(profiles: list[LoadProfile]) -> list[LoadProfile]:
    _distinct([p.name for p in profiles])
    return profiles


class Load(Model):
    """Load testing with Locust (LOAD-001): a plain locustfile, the target, the load profiles.
    host, ca_file and token default to the service's base_url, ca_file and auth token."""

    locustfile: Path
    host: Url | None = None
    ca_file: Path | None = None  # the locustfile gets it as SSL_CERT_FILE
    token: SecretRef | None = None  # the locustfile gets it as API_TOKEN, never on a command line
    profiles: Annotated[list[LoadProfile], Field(min_length=1), AfterValidator(_named_once)]


def _complete_load(load: Load, info: ValidationInfo) -> Load:
    """Take what load leaves out from the service. Profile declares service first."""
    if "service" not in info.data:
        return load  # service failed validation itself: that error says enough
    service = info.data["service"]
    host = load.host or (service.base_url if service else None)
    if host is None:
        raise ValueError("host is required: there is no service.base_url to default to")
    return load.model_copy(
        update={
            "host": host,
            "ca_file": load.ca_file or (service.ca_file if service else None),
            "token": load.token or (service.auth.token if service and service.auth else None),
        }
    )


class GateBlock(Model):
    """Failures that fail the gate whatever the score."""

    severities: list[Severity] = [Severity.critical]
    categories: list[Category] = []
    checks: list[Annotated[str, Field(pattern=r"^[A-Z]{2,5}-\d{3}$")]] = []


class Gate(Model):
    """The gate policy (README › The gate): the minimum score, failures that always block,
    and the least score a category must reach on its own."""

    min_score: float = Field(90, ge=0, le=100)
    block: GateBlock = GateBlock()
    min_category_scores: dict[Category, Annotated[float, Field(ge=0, le=100)]] = {}

    def policy(self) -> gate.Policy:
        return gate.Policy(
            min_score=self.min_score,
            block_severities=tuple(map(str, self.block.severities)),
            block_categories=tuple(map(str, self.block.categories)),
            block_checks=tuple(self.block.checks),
            min_category_scores={str(k): v for k, v in self.min_category_scores.items()},
        )


class Profile(Model):
    # It names the reports folder: no path separators, no surprises.
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    tier: Tier
    description: str = ""
    service: Service | None = None
    tls: Tls | None = None
    load_balancers: list[LoadBalancer] = []
    dns: Dns | None = None
    hosts: list[Host] = []
    tests: list[JunitArtifact] = []  # test reports of the release being deployed
    security: Security | None = None
    config_validation: list[Command] = []
    monitoring: Monitoring = Monitoring()
    incident: Incident | None = None
    slo: Slo | None = None
    probes: Probes | None = None  # after service and slo: its validator reads them
    resources: Resources | None = None
    dr: Dr | None = None
    backup: Backup | None = None
    kubernetes: Kubernetes | None = None
    documentation: Documentation | None = None
    testing: Testing = Testing()
    load: Annotated[Load, AfterValidator(_complete_load)] | None = None
    gate: Gate = Gate()
    # A production profile must say so before any check that changes something (a drill,
    # a synthetic page, a fault) may run, and the run must pass --allow-destructive too.
    allow_destructive: bool = False
    sandbox: SandboxSettings | None = None

    # Where the profile came from; relative paths inside it are relative to its folder.
    source: Path | None = Field(None, exclude=True)

    @model_validator(mode="after")
    def _time_compressed_only_in_a_sandbox(self) -> Profile:
        if self.backup is not None and self.backup.time_scale != 1 and self.tier != Tier.sandbox:
            raise ValueError(
                "backup.time_scale compresses time for a sandbox only; "
                f"a {self.tier} profile must leave it at 1"
            )
        if self.sandbox is not None and "backups" in self.sandbox.model_fields_set:
            raise ValueError(
                "sandbox.backups: the sandbox runs the profile's backup section "
                "(backup.schedule, backup.time_scale, dr.rpo); set those instead"
            )
        return self

    @model_validator(mode="after")
    def _scratch_apart_from_live_data(self) -> Profile:
        if self.dr is None or self.dr.scratch is None:
            return self
        scratch = self.dr.scratch
        for key, live in self.live_paths():
            if scratch == live or live in scratch.parents or scratch in live.parents:
                relation = (
                    "is"
                    if scratch == live
                    else "is inside"
                    if live in scratch.parents
                    else "contains"
                )
                raise ValueError(
                    f"dr.scratch: {scratch} {relation} the live path {key} ({live}); "
                    "drills restore into scratch space apart from live data"
                )
        return self

    @model_validator(mode="after")
    def _failover_complete(self) -> Profile:
        failover = self.dr.failover if self.dr else None
        if failover is None:
            return self
        names = [p.name for p in self.probes or []]
        if failover.probe is not None and failover.probe not in names:
            known = ", ".join(names) or "none"
            raise ValueError(
                f"dr.failover.probe: no probe named {failover.probe!r} (probes: {known})"
            )
        if self.sandbox is None:
            for step in ("inject", "activate", "switch", "failback"):
                if getattr(failover, step) is None:
                    raise ValueError(
                        f"dr.failover.{step} is required: the command or HTTP call that does "
                        "it here (only a sandbox profile has built-in steps; without inject "
                        "the primary would still answer, and the RTO would measure nothing)"
                    )
            if failover.database is None or failover.database.heartbeat is None:
                raise ValueError(
                    "dr.failover.database with a heartbeat is required: the DR site's "
                    "database, whose newest heartbeat measures the data the failover lost"
                )
            return self
        if failover.activate is not None:
            if failover.database is None or failover.database.heartbeat is None:
                raise ValueError(
                    "dr.failover.database with a heartbeat is required with an activate hook:"
                    " the DR site's database, whose newest heartbeat measures the data lost"
                )
            return self
        # The sandbox's own DR site: restored from the backups, its heartbeat read there.
        sources = self.backup.sources if self.backup else None
        if self.dr is None or self.dr.scratch is None:
            raise ValueError("dr.failover on a sandbox needs dr.scratch: its DR site lives there")
        database = sources.postgres if sources else None
        if (
            self.backup is None
            or not self.backup.repositories
            or database is None
            or database.wal_archive is None
            or (database.heartbeat is None and failover.database is None)
        ):
            raise ValueError(
                "dr.failover on a sandbox needs backup.repositories and backup.sources.postgres"
                " with wal_archive and heartbeat: its DR site is restored and measured from them"
            )
        return self

    def live_paths(self) -> list[tuple[str, Path]]:
        """Every local path of live data the profile names, with its key."""
        found: list[tuple[str, Path]] = []
        sources = self.backup.sources if self.backup else None
        if sources is not None:
            found.append(("backup.sources.staging", sources.staging))
            for key in ("data_paths", "config_paths"):
                found += [
                    (f"backup.sources.{key}[{i}]", p) for i, p in enumerate(getattr(sources, key))
                ]
            database = sources.postgres
            for key in ("socket_dir", "wal_archive"):
                if database is not None and getattr(database, key) is not None:
                    found.append((f"backup.sources.postgres.{key}", getattr(database, key)))
        for i, repository in enumerate(self.backup.repositories if self.backup else []):
            if os.path.isabs(repository.repository):  # a local repository, not s3:… or sftp:…
                found.append((f"backup.repositories[{i}].repository", Path(repository.repository)))
        return found

    @model_validator(mode="after")
    def _observed_service_named(self) -> Profile:
        for key in ("logs", "tracing"):
            backend = getattr(self.monitoring, key)
            if backend is not None and not backend.service and self.service is None:
                raise ValueError(
                    f"monitoring.{key}.service is required: there is no service.name to default to"
                )
        return self

    def sandbox_settings(self) -> SandboxSettings | None:
        """The sandbox section, running this profile's backup schedule and RPO objective."""
        if self.sandbox is None or self.backup is None or not self.backup.schedule:
            return self.sandbox
        rows: dict[str, BackupRow | None] = dict.fromkeys(BackupType, None)
        for entry in self.backup.schedule:
            every = None if entry.frequency == "on_change" else entry.frequency
            rows[entry.type] = BackupRow(every=every, keep=entry.retention)
        extra = {"rpo": self.dr.rpo} if self.dr is not None else {}
        plan = BackupPlan(time_scale=self.backup.time_scale, **rows, **extra)
        return self.sandbox.model_copy(update={"backups": plan})

    def secret_refs(self) -> list[SecretRef]:
        """Every secret reference in the profile, for redaction and for resolution checks."""
        found: list[SecretRef] = []

        def walk(node: Any) -> None:
            if isinstance(node, SecretRef):
                found.append(node)
            elif isinstance(node, BaseModel):
                for name in type(node).model_fields:
                    walk(getattr(node, name))
            elif isinstance(node, list | tuple):
                for item in node:
                    walk(item)

        walk(self)
        return found


def _service_endpoints(kind: EndpointKind) -> Callable[[Profile], list[Endpoint]]:
    return lambda p: [e for e in p.service.endpoints if e.kind == kind] if p.service else []


# What a check may iterate, by argument name: how to find it in a profile, and what to tell
# the user when the profile configures none of it (the check is then not applicable).
SUBJECTS: dict[str, tuple[Callable[[Profile], Sequence[Any]], str]] = {
    "liveness_endpoint": (
        _service_endpoints(EndpointKind.liveness),
        "no liveness endpoint configured (service.endpoints with kind: liveness)",
    ),
    "readiness_endpoint": (
        _service_endpoints(EndpointKind.readiness),
        "no readiness endpoint configured (service.endpoints with kind: readiness)",
    ),
    "metrics_endpoint": (
        _service_endpoints(EndpointKind.metrics),
        "no metrics endpoint configured (service.endpoints with kind: metrics)",
    ),
    "api_endpoint": (
        _service_endpoints(EndpointKind.api),
        "no API endpoint configured (service.endpoints with kind: api)",
    ),
    "tls_endpoint": (
        lambda p: p.tls.endpoints if p.tls else [],
        "no TLS endpoint configured (tls.endpoints)",
    ),
    "prometheus": (
        lambda p: [p.monitoring.prometheus] if p.monitoring.prometheus else [],
        "no Prometheus configured (monitoring.prometheus)",
    ),
    "alertmanager": (
        lambda p: [p.monitoring.alertmanager] if p.monitoring.alertmanager else [],
        "no Alertmanager configured (monitoring.alertmanager)",
    ),
    "dashboard": (
        lambda p: _dashboard_files(p.monitoring.dashboards) if p.monitoring.dashboards else [],
        "no dashboards configured (monitoring.dashboards)",
    ),
    "log_backend": (
        lambda p: _observed(p, p.monitoring.logs),
        "no log aggregation backend configured (monitoring.logs)",
    ),
    "trace_backend": (
        lambda p: _observed(p, p.monitoring.tracing),
        "no tracing backend configured (monitoring.tracing)",
    ),
    "incident_severity": (
        lambda p: [Named(s.level, s) for s in p.incident.severities] if p.incident else [],
        "no incident severity levels configured (incident.severities)",
    ),
    "load_balancer": (lambda p: p.load_balancers, "no load balancer configured (load_balancers)"),
    "load_profile": (
        lambda p: p.load.profiles if p.load else [],
        "no load test configured (load.profiles)",
    ),
    "probe": (lambda p: p.probes or [], "no active probe configured (probes)"),
    "dns_record": (
        lambda p: p.dns.records if p.dns else [],
        "no DNS record configured (dns.records)",
    ),
    "host": (lambda p: p.hosts, "no host configured (hosts)"),
    "mount": (
        lambda p: [Named(f"{h.name}:{m.path}", (h, m)) for h in p.hosts for m in h.mounts],
        "no data mount configured (hosts[].mounts)",
    ),
    "secret_file": (
        lambda p: [Named(f"{h.name}:{f}", (h, f)) for h in p.hosts for f in h.secret_files],
        "no secret file configured (hosts[].secret_files)",
    ),
    "junit_artifact": (lambda p: p.tests, "no test report configured (tests)"),
    "scan_report": (
        lambda p: p.security.scans if p.security else [],
        "no security scan report configured (security.scans)",
    ),
    "secret_scan_path": (
        lambda p: [Named(str(path), path) for path in p.security.scan_paths] if p.security else [],
        "no folder to scan for secrets configured (security.scan_paths)",
    ),
    "config_command": (
        lambda p: p.config_validation,
        "no configuration validator configured (config_validation)",
    ),
    "backup_repository": (
        lambda p: p.backup.repositories if p.backup else [],
        "no backup repository configured (backup.repositories)",
    ),
    "backup_schedule": (
        lambda p: [Named(str(e.type), e) for e in p.backup.schedule] if p.backup else [],
        "no backup schedule configured (backup.schedule)",
    ),
    "wal_archive": (
        lambda p: [Named(d.dbname, d) for d in [_database(p)] if d and d.wal_archive],
        "no WAL archive configured (backup.sources.postgres.wal_archive)",
    ),
    "documentation": (
        lambda p: [p.documentation] if p.documentation else [],
        "no documentation set configured (documentation)",
    ),
    "sli_metrics": (
        lambda p: (
            [Named(p.service.name if p.service else "service", p.slo.metrics)]
            if p.slo and p.slo.metrics
            else []
        ),
        "no SLI metrics configured (slo.metrics)",
    ),
    "slo_objective": (
        lambda p: [Named(o.key, o) for o in p.slo.definitions()] if p.slo else [],
        "no SLO objective configured (slo.objectives or slo.specs)",
    ),
    "reviewed_document": (
        lambda p: (
            [
                Named(name, getattr(p.documentation, name))
                for name in ("oncall_playbook", "dr_procedures")
            ]
            if p.documentation
            else []
        ),
        "no documentation set configured (documentation)",
    ),
}


@dataclass(frozen=True)
class Named:
    """A subject without a name of its own (a pair, a path), named for reports."""

    name: str
    value: Any


@dataclass(frozen=True)
class DeployedDashboard:
    """A dashboard that must be deployed in Grafana, and its file in the repository, if any."""

    uid: str
    file: Path | None


def _file_uid(file: Path) -> str:
    from opsverify.drivers import grafana  # the driver imports this module

    try:
        return grafana.load(file)["uid"]
    except grafana.DashboardError:
        return file.stem  # the check fails on the file before it asks Grafana


def _dashboard_files(dashboards: Dashboards) -> list[Named]:
    files = sorted(dashboards.folder.glob("*.json")) if dashboards.folder else []
    if dashboards.grafana is None:
        found = [Named(f.stem, f) for f in files]
    else:
        by_uid = {_file_uid(f): f for f in files}
        wanted = dashboards.grafana.uids or list(by_uid)
        found = [Named(uid, DeployedDashboard(uid, by_uid.get(uid))) for uid in wanted]
    # A configured folder without dashboards is a failure to report, not "not applicable".
    return found or [Named("missing", dashboards.folder)]


def _database(profile: Profile) -> PostgresSource | None:
    sources = profile.backup.sources if profile.backup else None
    return sources.postgres if sources else None


def _observed(profile: Profile, backend: LogBackend | TraceBackend | None) -> list[Named]:
    """The backend, named by its kind, asking about the profile's service unless it names one."""
    if backend is None:
        return []
    service = backend.service or (profile.service.name if profile.service else None)
    return [Named(backend.kind, backend.model_copy(update={"service": service}))]


def subjects(profile: Profile, name: str) -> tuple[list[tuple[str, Any]], str]:
    """(id, value) pairs a check iterates for argument ``name``, and the not-applicable reason."""
    find, reason = SUBJECTS[name]
    return [
        (v.name, v.value) if isinstance(v, Named) else (getattr(v, "name", None) or name, v)
        for v in find(profile)
    ], reason


def _absolutise(data: Any, base: Path, key: str = "") -> Any:
    """Make relative file paths absolute against the profile's folder before validation."""
    path_keys = {"file", "ca_file", "manifests", "state_dir", "cwd", "ssh_config", "scan_paths"}
    path_keys |= {"folder"}
    path_keys |= {"locustfile"}
    path_keys |= {"secret_files"}  # relative ones only make sense for local:// hosts
    path_keys |= {"specs"}  # slo.specs: OpenSLO / Sloth files
    path_keys |= {"architecture_doc", "api_doc", "openapi_doc", "runbooks_dir"}
    path_keys |= {"oncall_playbook", "dr_procedures", "repository_root"}  # documentation
    path_keys |= {"policy_file", "staging", "data_paths", "config_paths", "socket_dir"}
    path_keys |= {"wal_archive", "scratch"}  # backup and drills
    if key == "body":  # an HTTP hook's JSON body: the receiver's data, not our paths
        return data
    if isinstance(data, dict):
        return {k: _absolutise(v, base, k) for k, v in data.items()}
    if isinstance(data, list):
        return [_absolutise(v, base, key) for v in data]
    # A restic repository may also be a URL-like spec (s3:…, sftp:…): only bare paths move.
    is_path = key in path_keys or (key == "repository" and ":" not in str(data))
    if is_path and isinstance(data, str) and not os.path.isabs(data):
        return str((base / data).resolve())
    return data


def _location(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, str) and "[" in part:
            continue  # pydantic's name for one member of a union type, not a profile key
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(top level)"


def _explain(error: dict[str, Any]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key (not part of the profile schema; check the spelling)"
    if kind == "missing":
        return "required key is missing"
    message = error["msg"].removeprefix("Value error, ")
    got = error.get("input")
    if isinstance(got, str | int | float | bool) and kind != "value_error":
        # A rejected URL may carry a password: the value is shown with it masked.
        message += f" (got {REDACTOR.text(repr(got))})"
    return message


def format_errors(path: Path, exc: ValidationError) -> str:
    """One line per problem: file, key path, what was expected. Never the offending secret."""
    return "\n".join(f"{path}: {_location(e['loc'])}: {_explain(e)}" for e in exc.errors())


def resolve_path(env: str, root: Path | None = None) -> Path:
    """``local`` → ``<root>/environments/local.yaml``; an existing path is used as is."""
    candidate = Path(env)
    if candidate.suffix in {".yaml", ".yml"} or candidate.exists():
        return candidate
    return (root or Path.cwd()) / ENVIRONMENTS_DIR / f"{env}.yaml"


def load(path: Path) -> Profile:
    """Load and validate a profile; every problem becomes one ProfileError naming file and key."""
    try:
        raw = userfile.load_yaml(path, "profile")
    except userfile.UserFileError as exc:
        raise ProfileError(str(exc)) from None
    if not isinstance(raw, dict):
        raise ProfileError(f"{path}: expected a mapping of profile keys at the top level")
    try:
        profile = Profile.model_validate(_absolutise(raw, path.resolve().parent))
    except ValidationError as exc:
        raise ProfileError(format_errors(path, exc)) from None
    return profile.model_copy(update={"source": path.resolve()})
