"""A load check runs as long as its load profile says: its pytest timeout follows."""

import pytest

from opsverify.drivers import locust
from opsverify.profile import LoadProfile

# Past the driver's own deadline, so the driver stops Locust and reports before pytest does.
MARGIN_S = 30


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        spec = getattr(item, "callspec", None)
        subject = spec.params.get("load_profile") if spec else None
        if isinstance(subject, LoadProfile):
            limit = locust.deadline(subject.run_time.total_seconds()) + MARGIN_S
            item.add_marker(pytest.mark.timeout(limit))
