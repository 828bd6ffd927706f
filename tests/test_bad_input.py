"""Whatever bytes arrive as a profile or a waiver file: a loaded profile, or exit 4 with a
message naming the file, quickly and within bounded memory; never a traceback, a hang or a
silently different meaning. The hand-written cases are in tests/data/profiles/broken."""

from __future__ import annotations

import time
import tracemalloc
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opsverify import profile as profiles
from opsverify import waiver as waivers
from tests.helpers import ROOT, opsverify

LOCAL = (ROOT / "environments" / "local.yaml").read_text()


def _usage_error(*args: str, cwd: Path = ROOT) -> str:
    outcome = opsverify(*args, cwd=cwd, timeout=60)
    assert outcome.code == 4, outcome.output
    assert "Traceback" not in outcome.output
    return outcome.stderr


def test_a_profile_that_is_not_utf8_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: café\ntier: staging\n".encode("latin-1"))
    assert f"{path}: not UTF-8 text: byte 0xe9 at line 1" in _usage_error(
        "list", "--env", str(path)
    )


def test_nesting_5000_levels_deep_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("name: deep\ntier: staging\ndescription: " + "[" * 5000 + "]" * 5000 + "\n")
    assert f"{path}: nested deeper than 64 levels" in _usage_error("list", "--env", str(path))


def test_a_folder_given_as_profile_or_waivers_is_a_usage_error(tmp_path: Path) -> None:
    stderr = _usage_error("list", "--env", "environments")
    assert "environments: is a folder, expected a profile file" in stderr
    waiver_dir = tmp_path / "waivers"
    waiver_dir.mkdir()
    stderr = _usage_error("run", "--env", "local", "--waivers", str(waiver_dir))
    assert f"{waiver_dir}: is a folder, expected a waiver file" in stderr


def test_a_50_mb_profile_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("w") as handle:
        handle.write("name: huge\ntier: staging\n")
        for _ in range(50 * 1024):
            handle.write("# " + "x" * 1021 + "\n")
    started = time.monotonic()
    with pytest.raises(profiles.ProfileError, match="larger than 1024 KiB"):
        profiles.load(path)
    assert time.monotonic() - started < 5  # it reads 1 MiB, not 50


def test_a_waiver_with_two_expiry_dates_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.waivers.yaml"
    path.write_text(
        "waivers:\n  - check: TLS-002\n    justification: renewal booked\n"
        "    expires: 2026-12-31\n    expires: 2099-12-31\n"
    )
    with pytest.raises(waivers.WaiverError, match="key 'expires' repeated: lines 4 and 5"):
        waivers.load(path, required=True)


def test_a_waiver_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.waivers.yaml"
    path.write_bytes(b"waivers:\n  - check: TLS-002\n    justification: \xff\xfe\n")
    with pytest.raises(waivers.WaiverError, match="not UTF-8 text: byte 0xff at line 3"):
        waivers.load(path, required=True)


def test_aliases_that_stay_small_are_still_welcome(tmp_path: Path) -> None:
    path = tmp_path / "anchors.yaml"
    path.write_text(
        "name: anchors\ntier: staging\n"
        "tls:\n  endpoints:\n    - &lb {name: lb, host: 127.0.0.1, port: 443}\n"
        "    - {<<: *lb, name: lb2, port: 8443}\n"
    )
    tls = profiles.load(path).tls
    assert [(e.name, e.port) for e in tls.endpoints] == [("lb", 443), ("lb2", 8443)]


# --- properties ---------------------------------------------------------------------------

BOUND_S = 5.0
BOUND_BYTES = 64 * 1024 * 1024


def _bounded_load(load, path: Path) -> None:
    """``load`` returns or raises its own error, within time and memory bounds."""
    tracemalloc.start()
    started = time.monotonic()
    try:
        load(path)
    except profiles.ProfileError as exc:  # WaiverError is one too
        assert str(exc).startswith(str(path)), exc
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert time.monotonic() - started < BOUND_S
    assert peak < BOUND_BYTES


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=30),
    st.sampled_from(
        ["0s", "15m", "99999999999999999999d", "on_change", "2026-02-30", "https://a:b@h:99999/"]
    ),
)
_documents = st.recursive(
    _scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "name",
                    "tier",
                    "service",
                    "tls",
                    "dr",
                    "rto",
                    "port",
                    "timeout",
                    "gate",
                    "min_score",
                    "endpoints",
                    "url",
                    "backup",
                    "schedule",
                    "waivers",
                    "check",
                    "expires",
                    "slo",
                ]
            ),
            children,
            max_size=5,
        )
    ),
    max_leaves=25,
)
_settings = settings(
    max_examples=60,
    deadline=timedelta(seconds=BOUND_S),
    suppress_health_check=[HealthCheck.too_slow],
)


@_settings
@given(st.binary(max_size=2048))
def test_any_bytes_load_as_a_profile_or_a_profile_error(tmp_path_factory, data: bytes) -> None:
    path = tmp_path_factory.mktemp("bytes") / "p.yaml"
    path.write_bytes(data)
    _bounded_load(profiles.load, path)


@_settings
@given(_documents)
def test_any_yaml_document_loads_as_a_profile_or_a_profile_error(tmp_path_factory, doc) -> None:
    path = tmp_path_factory.mktemp("doc") / "p.yaml"
    path.write_text(yaml.safe_dump(doc))
    _bounded_load(profiles.load, path)


@_settings
@given(st.integers(min_value=0, max_value=len(LOCAL)), st.text(max_size=40))
def test_the_local_profile_with_text_spliced_in_loads_or_is_refused(
    tmp_path_factory, at: int, inserted: str
) -> None:
    folder = tmp_path_factory.mktemp("local")
    path = folder / "local.yaml"
    path.write_text(LOCAL[:at] + inserted + LOCAL[at:])
    _bounded_load(profiles.load, path)


@_settings
@given(
    st.one_of(
        st.binary(max_size=1024),
        _documents.map(lambda d: yaml.safe_dump({"waivers": [d]}).encode()),
    )
)
def test_any_waiver_file_loads_or_is_a_waiver_error(tmp_path_factory, data: bytes) -> None:
    path = tmp_path_factory.mktemp("waivers") / "t.waivers.yaml"
    path.write_bytes(data)
    _bounded_load(lambda p: waivers.load(p, required=True), path)
