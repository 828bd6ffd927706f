"""A locustfile whose users hang when they are stopped (on_stop waits on something that
never comes), so Locust cannot finish on its own."""

import time

from locust import HttpUser, between, task


class StuckUser(HttpUser):
    wait_time = between(0.1, 0.2)

    @task
    def health(self):
        self.client.get("/health")

    def on_stop(self):
        time.sleep(600)
