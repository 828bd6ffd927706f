"""opsverify: an operations handbook, verified by checks that run.

Public surface for check authors: ``check``, ``family``, ``not_applicable``, ``unreachable``,
``Evidence`` and the enumerations. ``Evidence`` and ``Profile`` load lazily so the CLI starts fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# Imported eagerly: the decorator must win over the submodule of the same name.
from opsverify.check import (
    Cadence,
    Category,
    Severity,
    Unreachable,
    check,
    family,
    not_applicable,
    unreachable,
)

if TYPE_CHECKING:
    from opsverify.evidence import Evidence
    from opsverify.profile import Profile

__all__ = [
    "Cadence",
    "Category",
    "Evidence",
    "Profile",
    "Severity",
    "Unreachable",
    "check",
    "family",
    "not_applicable",
    "unreachable",
]

_LAZY = {"Evidence": "evidence", "Profile": "profile"}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'opsverify' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f"opsverify.{_LAZY[name]}"), name)
