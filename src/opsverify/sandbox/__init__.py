"""The sandbox: a real reference system (web service, PostgreSQL, nginx TLS, Prometheus,
Alertmanager, webhook receiver, node-exporter, restic) on 127.0.0.1, run by one supervisord.

Public surface: ``Settings`` (embedded in environment profiles under ``sandbox:``),
``up``/``down``/``status``, per-component ``start``/``stop``/``restart``/``reload``, and
``issue_server_certificate`` for seeding certificate faults.
"""

from importlib import import_module
from typing import Any

from .errors import SandboxError

# Loaded on first use: a profile embeds ``Settings`` and must not pay for the manager's
# imports (psycopg, httpx, cryptography) every time it is read.
_HOMES = {
    **dict.fromkeys(
        (
            "PROGRAMS",
            "Component",
            "down",
            "processes",
            "reload",
            "restart",
            "start",
            "status",
            "stop",
            "up",
        ),
        "manager",
    ),
    "issue_server_certificate": "pki",
    "restic_env": "provision",
    **dict.fromkeys(("DB_NAME", "DB_USER", "HOST", "Layout", "Ports", "Settings"), "settings"),
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'opsverify.sandbox' has no attribute {name!r}")
    return getattr(import_module(f"opsverify.sandbox.{_HOMES[name]}"), name)


__all__ = [
    "DB_NAME",
    "DB_USER",
    "HOST",
    "PROGRAMS",
    "Component",
    "Layout",
    "Ports",
    "SandboxError",
    "Settings",
    "down",
    "issue_server_certificate",
    "processes",
    "reload",
    "restart",
    "restic_env",
    "start",
    "status",
    "stop",
    "up",
]
