"""A locustfile that ends its own test: five requests, two seconds, then the runner quits
(as a locustfile does on a condition of its own, e.g. once its data set is used up)."""

import time

from locust import HttpUser, task


class OneShotUser(HttpUser):
    @task
    def five_then_quit(self):
        for _ in range(5):
            self.client.get("/health")
        time.sleep(2)
        self.environment.runner.quit()
