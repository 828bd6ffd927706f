"""Load test of the cronos-ai API: a plain Locust file, run by hand or by LOAD-001.

A user browses the item list most of the time, opens single items, now and then creates one,
and the platform's health probe runs alongside. Configuration comes from the environment,
so the file itself holds no secret and no address:

    API_TOKEN     bearer token for /api/v1/* (required by the cronos-ai API)
    SSL_CERT_FILE CA bundle the target's TLS certificate must chain to (default: system store)

    API_TOKEN=$(cat .sandbox/secrets/api_token) SSL_CERT_FILE=.sandbox/pki/ca.pem \
        locust -f load/locustfile.py --host https://127.0.0.1:18443 \
        --headless --users 10 --spawn-rate 5 --run-time 30s
"""

import os
import random
import uuid
from collections import deque

from locust import FastHttpUser, between, task

TOKEN = os.environ.get("API_TOKEN", "")
AUTH = {"Authorization": f"Bearer {TOKEN}"} if TOKEN else {}
PAGE = 20  # items per list request, as a UI page would ask for
KNOWN_IDS = 100  # ids a user remembers to open later; bounded so memory stays flat


class CronosUser(FastHttpUser):
    # Think time between actions: 100 users make roughly the handbook's 1,000 requests/s
    # against a target that answers within a few milliseconds.
    wait_time = between(0.02, 0.1)
    # Verify the target's certificate (FastHttpUser skips it by default); the default
    # context honours SSL_CERT_FILE.
    insecure = False
    # A request that takes longer than this is a failure, not a stalled user.
    network_timeout = 10.0
    connection_timeout = 10.0

    def on_start(self):
        self.ids = deque(maxlen=KNOWN_IDS)

    @task(6)
    def list_items(self):
        response = self.client.get(
            f"/api/v1/items?limit={PAGE}", headers=AUTH, name="/api/v1/items"
        )
        if response.status_code == 200:
            self.ids.extend(item["id"] for item in response.json())

    @task(3)
    def get_item(self):
        if not self.ids:
            return self.list_items()
        item_id = random.choice(self.ids)
        self.client.get(f"/api/v1/items/{item_id}", headers=AUTH, name="/api/v1/items/[id]")

    @task(1)
    def create_item(self):
        body = {"name": f"load-{uuid.uuid4().hex[:12]}", "description": "created by locust"}
        response = self.client.post("/api/v1/items", json=body, headers=AUTH)
        if response.status_code == 201:
            self.ids.append(response.json()["id"])

    @task(1)
    def health(self):
        self.client.get("/health")
