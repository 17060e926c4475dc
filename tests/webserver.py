"""Dagster's webserver on the project's workspace, for the tests that ask the UI: started on
127.0.0.1 in a process group of its own, and its GraphQL API."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipelines.settings import PROJECT_DIR
from tests.services import free_port

START_TIMEOUT_S = 120


@contextmanager
def webserver(env: dict[str, str]) -> Iterator[str]:
    """dagster-webserver in `env` (its DAGSTER_HOME and profile): its URL while it runs."""
    port = free_port()
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster-webserver"), "-w", "workspace.yaml",
         "-h", "127.0.0.1", "-p", str(port)],
        cwd=PROJECT_DIR, env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(url, process)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def wait_for(url: str, process: subprocess.Popen, timeout_s: float = START_TIMEOUT_S) -> None:
    """Until the UI `process` started answers at `url`."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            urllib.request.urlopen(f"{url}/server_info", timeout=2)
            return
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"the UI did not start at {url}") from None
            time.sleep(0.5)


def graphql(url: str, query: str, variables: dict | None = None) -> dict:
    """The `data` of the UI's answer to `query`."""
    request = urllib.request.Request(
        f"{url}/graphql",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)["data"]


# the job's Runs tab: a job's runs by the repository tag, with their origin's location
JOB_RUNS = """
query JobRuns($filter: RunsFilter!) {
  runsOrError(filter: $filter) {
    ... on Runs { results { runId status repositoryOrigin { repositoryLocationName } } }
  }
}"""
MEGAWATT_RUNS = {
    "pipelineName": "daily",
    "tags": [{"key": ".dagster/repository", "value": "__repository__@megawatt"}],
}
