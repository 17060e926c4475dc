"""Real services for the tests of the lake on a cluster: a PostgreSQL 15 server (the catalog) and
an S3-compatible server (moto's, the data path), both started by the tests, listening on
127.0.0.1 only, and stopped at the session's end.

PostgreSQL comes from Debian's package (`apt-get install -y postgresql-15`); without its binaries
the tests that need it are skipped. PostgreSQL refuses to run as root, so under root (as in CI)
it runs as the `postgres` system user, in a data folder that user owns."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

PG_BIN = Path(os.environ.get("MEGAWATT_PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_SUPERUSER = "postgres"
PG_SYSTEM_USER = "postgres"  # the system user PostgreSQL runs as when the tests run as root
S3_KEY_ID, S3_SECRET = "megawatt-test-key", "megawatt-test-secret"  # moto takes any
BUCKET = "megawatt-lake"
START_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen, what: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"{what} exited with {process.returncode}: {log.read_text()[-3000:]}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} in {START_TIMEOUT}s")


def _stop(process: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- PostgreSQL --------------------------------------------------------------------------------
@dataclass
class Postgres:
    port: int
    data_dir: Path
    started_in: float  # seconds: initdb, start, and ready for connections

    def dsn(self, dbname: str = "postgres") -> str:
        """A libpq connection string (the form DuckLake's `postgres:` catalog takes)."""
        return f"dbname={dbname} host=127.0.0.1 port={self.port} user={PG_SUPERUSER}"

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        return subprocess.run(
            [str(PG_BIN / "psql"), "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1",
             "-d", self.dsn(dbname), "-c", sql],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip

    def create_database(self, prefix: str = "lake") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        self.psql(f'CREATE DATABASE "{name}"')
        return name


def _as_postgres_user() -> list[str]:
    """The command prefix that runs a PostgreSQL binary as a user it accepts."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        pytest.skip(f"running as root and there is no `{PG_SYSTEM_USER}` user to run PostgreSQL")
    # setpriv execs the binary itself: the process we hold is the server, and our signals
    # reach it (runuser would sit in between)
    return ["setpriv", f"--reuid={PG_SYSTEM_USER}", f"--regid={PG_SYSTEM_USER}",
            "--init-groups", "--"]  # fmt: skip


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    if not (PG_BIN / "postgres").exists():
        pytest.skip(
            f"PostgreSQL 15's binaries are not in {PG_BIN} "
            "(apt-get install -y postgresql-15; or set MEGAWATT_PG_BIN)"
        )
    with running_postgres() as service:
        yield service


@contextmanager
def running_postgres() -> Iterator[Postgres]:
    """A PostgreSQL server of its own, on 127.0.0.1 and a free port, for as long as the block."""
    started = time.monotonic()
    prefix = _as_postgres_user()
    # not under pytest's tmp_path: its folders are the test user's alone (mode 700), and the
    # server's user must reach its data folder
    root = Path(tempfile.mkdtemp(prefix="megawatt-pg-"))
    data_dir, log = root / "data", root / "postgres.log"
    if prefix:
        shutil.chown(root, PG_SYSTEM_USER, PG_SYSTEM_USER)
    subprocess.run(
        [*prefix, str(PG_BIN / "initdb"), "-D", str(data_dir), "-U", PG_SUPERUSER,
         "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    port = free_port()
    with open(log, "w") as out:
        if prefix:
            shutil.chown(log, PG_SYSTEM_USER, PG_SYSTEM_USER)
        server = subprocess.Popen(
            [*prefix, str(PG_BIN / "postgres"), "-D", str(data_dir), "-p", str(port),
             "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={root}",
             "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
             "-c", "max_connections=200"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        _wait_for_port(port, server, "PostgreSQL", log)
        service = Postgres(port, data_dir, 0.0)
        deadline = time.monotonic() + START_TIMEOUT
        while True:  # listening is not yet accepting: wait for a query to answer
            try:
                service.psql("SELECT 1")
                break
            except subprocess.CalledProcessError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        service.started_in = time.monotonic() - started
        yield service
    finally:
        _stop(server, signal.SIGINT)  # PostgreSQL's fast shutdown
        shutil.rmtree(root, ignore_errors=True)


# -- S3 (moto) ---------------------------------------------------------------------------------
@dataclass
class S3Server:
    port: int
    bucket: str
    started_in: float  # seconds: the server up, and the bucket made

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def client(self):
        import boto3

        return boto3.client(
            "s3", endpoint_url=f"http://{self.endpoint}", region_name="us-east-1",
            aws_access_key_id=S3_KEY_ID, aws_secret_access_key=S3_SECRET,
        )  # fmt: skip

    def keys(self, prefix: str) -> list[str]:
        pages = (
            self.client()
            .get_paginator("list_objects_v2")
            .paginate(Bucket=self.bucket, Prefix=prefix)
        )
        return [o["Key"] for page in pages for o in page.get("Contents", [])]


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory) -> Iterator[S3Server]:
    with running_s3(tmp_path_factory.mktemp("moto") / "moto.log") as service:
        yield service


@contextmanager
def running_s3(log: Path) -> Iterator[S3Server]:
    """moto's server in a process of its own (the writers' and readers' requests never wait on
    the tests' own interpreter), on 127.0.0.1 and a free port, with a bucket."""
    started = time.monotonic()
    port = free_port()
    with open(log, "w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        _wait_for_port(port, server, "moto's S3 server", log)
        service = S3Server(port, BUCKET, 0.0)
        service.client().create_bucket(Bucket=BUCKET)
        service.started_in = time.monotonic() - started
        yield service
    finally:
        _stop(server)
