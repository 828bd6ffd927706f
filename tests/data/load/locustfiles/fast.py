"""A FastHttpUser as Locust's "increase performance" page writes one, verifying the target's
certificate (FastHttpUser skips that unless told: insecure = False)."""

from locust import FastHttpUser, between, task


class MyUser(FastHttpUser):
    wait_time = between(1, 2)
    insecure = False

    @task
    def index(self):
        self.client.get("/ready")
