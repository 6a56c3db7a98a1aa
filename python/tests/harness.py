"""Starting the real `slipway server` binary on an ephemeral loopback port, for every test."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path


REPO = Path(__file__).resolve().parents[2]


def slipway_bin() -> str:
    path = os.environ.get("SLIPWAY_BIN") or str(REPO / "target" / "debug" / "slipway")
    if not Path(path).exists():
        raise RuntimeError(f"no slipway binary at {path}: build it (cargo build -p slipway-cli) or set SLIPWAY_BIN")
    return path


class Server:
    """A running `slipway server`; `url` is its base URL."""

    def __init__(self, db: str | None = None, token: str | None = None):
        self.dir = tempfile.mkdtemp(prefix="slipway-py-")
        self.db = db
        args = [slipway_bin(), "server", "--port", "0", "--data-dir", self.dir]
        if db:
            args += ["--db", db]
        env = {k: v for k, v in os.environ.items() if not k.startswith("SLIPWAY_") or k.startswith(("SLIPWAY_TEST", "SLIPWAY_UI_DIR"))}
        if token:
            env["SLIPWAY_AUTH_TOKEN"] = token
        self.log = open(Path(self.dir) / "server.log", "wb")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log, env=env, cwd=self.dir)
        line = self.proc.stdout.readline().decode().strip()
        prefix = "slipway listening on "
        if not line.startswith(prefix):
            self.stop()
            raise RuntimeError(f"server did not start: {line!r}\n{(Path(self.dir) / 'server.log').read_text()}")
        self.url = line[len(prefix):]
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                urllib.request.urlopen(self.url + "/health", timeout=1)
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("server never answered /health")

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Runs `slipway ARGS` on this server's stores (as a user on the same machine would)."""
        argv = [slipway_bin(), *args, "--data-dir", self.dir] + (["--db", self.db] if self.db else [])
        env = {k: v for k, v in os.environ.items() if not k.startswith("SLIPWAY_") or k.startswith("SLIPWAY_TEST")}
        env["SLIPWAY_CACHE_DIR"] = str(Path(self.dir) / "cache")
        done = subprocess.run(argv, capture_output=True, env=env, cwd=self.dir)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.decode()}")
        return done

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def postgres_url() -> str:
    """A fresh schema in the PostgreSQL test database, as a Slipway --db URL."""
    base = os.environ.get("SLIPWAY_TEST_DATABASE_URL")
    if not base:
        raise RuntimeError("PostgreSQL tests need SLIPWAY_TEST_DATABASE_URL; scripts/test starts one")
    schema = "py_" + uuid.uuid4().hex
    # psql is the PostgreSQL client the test machine has beside the server.
    subprocess.run(["psql", base, "-q", "-c", f"CREATE SCHEMA {schema}"], check=True)
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-c%20search_path%3D{schema}"




def wait_until(page, expression, timeout=10.0):
    """Polls a JS expression until it is truthy. (Playwright's wait_for_function compiles its
    predicate with eval, which the UI's Content-Security-Policy rightly forbids.)"""
    import time

    deadline = time.time() + timeout
    while time.time() < deadline:
        if page.evaluate(expression):
            return
        page.wait_for_timeout(50)
    raise AssertionError(f"timed out waiting for {expression}")


def wait_for(what, predicate, timeout=60.0):
    """Polls `predicate` until it returns something truthy (returned), or fails naming `what`."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def start_server(data_dir, db=None, *extra):
    """Another `slipway server` process on the same stores; (process, url)."""
    args = [slipway_bin(), "server", "--port", "0", "--data-dir", data_dir, *extra] + (["--db", db] if db else [])
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLIPWAY_") or k.startswith("SLIPWAY_TEST")}
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd=data_dir)
    line = proc.stdout.readline().decode().strip()
    assert line.startswith("slipway listening on "), line
    return proc, line.removeprefix("slipway listening on ")
