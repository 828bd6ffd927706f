"""A plain HttpUser as Locust's quickstart writes one: tasks, weights, a think time."""

from locust import HttpUser, between, task


class WebsiteUser(HttpUser):
    wait_time = between(1, 2)

    @task
    def health(self):
        self.client.get("/health")

    @task(3)
    def ready(self):
        self.client.get("/ready")
