"""Locust's own command line, as the Locust driver runs it (``python -m
opsverify.drivers.locust_main`` takes Locust's arguments), with what the driver needs and
Locust's options cannot give. The locustfile runs unchanged.

- **Trust.** requests honours ``REQUESTS_CA_BUNDLE``, but Locust's HttpUser switches that off
  (``trust_env = False``) and verifies against certifi's bundle alone, so a target signed by
  a private CA failed every request. Here HttpUser verifies against REQUESTS_CA_BUNDLE when
  it is set, as requests would. (FastHttpUser with ``insecure = False`` reads SSL_CERT_FILE
  itself, through geventhttpclient; by default it verifies nothing.)
- **The run time is the run time.** Locust times ``--run-time`` with gevent's loop clock,
  which stands still while Locust starts: a 5 s run lasted 4.5 s. The clock is brought up
  to date before the test starts.
- **A LoadTestShape ends at the run time.** With a shape Locust ignores ``--run-time``;
  here the shape is stopped once the run time is over, as Locust stops any other run, so
  that it still writes its statistics.
- **The run's facts**, written to the file ``OPSVERIFY_LOCUST_FACTS`` names as they happen:
  when the load started, when it began to stop and how many users ran then, the shape.

opsverify never imports this module: importing Locust gevent-patches the process.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any

import gevent
import locust.clients
from locust import events
from locust.env import Environment
from locust.main import main
from locust.runners import WorkerRunner
from urllib3.util.ssl_ import create_urllib3_context

from opsverify.drivers.locust import FACTS_ENV

CA_ENV = "REQUESTS_CA_BUNDLE"  # requests' own variable

log = logging.getLogger("opsverify")
facts: dict[str, Any] = {}


def record(**values: Any) -> None:
    """Add to the run's facts and rewrite their file whole (the driver may read it any time)."""
    facts.update(values)
    path = os.environ.get(FACTS_ENV)
    if path:
        with open(f"{path}.part", "w") as file:
            json.dump(facts, file)
        os.replace(f"{path}.part", path)


def trust(bundle: str) -> None:
    """HttpUser verifies with the context Locust preloads from certifi for every request
    that asks for verification: this one holds the bundle's CAs instead."""
    if not hasattr(locust.clients, "_preloaded_ssl_context"):
        sys.exit(f"this Locust version gives HttpUser no way to trust {CA_ENV}")
    context = create_urllib3_context()
    context.load_verify_locations(cafile=bundle)
    locust.clients._preloaded_ssl_context = context


def in_charge(environment: Environment) -> bool:
    """The process that runs the test: the master or a lone local runner, not a worker."""
    return not isinstance(environment.runner, WorkerRunner)


@events.init.add_listener
def on_init(environment: Environment, **_: Any) -> None:
    # Runs just before Locust starts its --run-time timer from the loop clock.
    gevent.get_hub().loop.update_now()


@events.test_start.add_listener
def on_test_start(environment: Environment, **_: Any) -> None:
    if not in_charge(environment):
        return
    shape = environment.shape_class
    record(started=time.time(), shape=type(shape).__name__ if shape else None)
    run_time = environment.parsed_options.run_time if environment.parsed_options else None
    if shape is not None and run_time:
        gevent.spawn_later(run_time, stop_shape, environment, run_time)


def stop_shape(environment: Environment, run_time: int) -> None:
    log.info(
        "run time of %s s reached: stopping %s", run_time, type(environment.shape_class).__name__
    )
    environment.runner.quit()


@events.test_stopping.add_listener
def on_test_stopping(environment: Environment, **_: Any) -> None:
    if in_charge(environment) and "stopping" not in facts:
        record(stopping=time.time(), users=environment.runner.user_count)


if __name__ == "__main__":
    if bundle := os.environ.get(CA_ENV):
        trust(bundle)
    sys.argv[0] = "locust"
    sys.exit(main())
