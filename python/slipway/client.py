"""The HTTP client: one `Slipway` object per server."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Optional


class SlipwayError(Exception):
    """An error answered by the server: `status` (HTTP), `error_code` and `message`."""

    def __init__(self, status: int, error_code: str, message: str):
        super().__init__(f"{error_code}: {message} (HTTP {status})")
        self.status = status
        self.error_code = error_code
        self.message = message


class Slipway:
    """A Slipway server.

    `url` defaults to `SLIPWAY_TRACKING_URI`, then `MLFLOW_TRACKING_URI`, then
    `http://127.0.0.1:5000`; `token` to `SLIPWAY_TOKEN`.
    """

    def __init__(self, url: Optional[str] = None, token: Optional[str] = None, timeout: float = 30.0):
        url = url or os.environ.get("SLIPWAY_TRACKING_URI") or os.environ.get("MLFLOW_TRACKING_URI")
        url = url or "http://127.0.0.1:5000"
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"expected an http:// or https:// URL, got {url!r}")
        self.url = url.rstrip("/")
        self.token = token if token is not None else os.environ.get("SLIPWAY_TOKEN")
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"Slipway({self.url!r})"

    # -- system ---------------------------------------------------------------------------

    def health(self) -> dict:
        """Liveness: `{'status': 'ok'}` while the server runs."""
        return self._request("GET", "/health")

    def ready(self) -> bool:
        """True when the server and both of its stores answer."""
        try:
            self._request("GET", "/ready")
            return True
        except SlipwayError as e:
            if e.status == 503:
                return False
            raise

    def version(self) -> dict:
        """The server's version and setup: `version`, `metadata_store`, `blob_store`, `auth_required`."""
        return self._request("GET", "/api/v1/version")

    # -- tracking -------------------------------------------------------------------------

    def experiments(self, view: str = "active", filter: str = "") -> list:
        """Experiments, newest first (`view`: active, deleted or all), optionally filtered with
        MLflow's experiment grammar (`name LIKE 'falls-%' AND tags.team = 'vision'`)."""
        query = {"view": view}
        if filter:
            query["filter"] = filter
        return self._request("GET", "/api/v1/experiments?" + urllib.parse.urlencode(query))["experiments"]

    def create_experiment(self, name: str, tags: Optional[dict] = None) -> dict:
        return self._request("POST", "/api/v1/experiments", {"name": name, "tags": tags or {}})

    def run(self, run_id: str) -> dict:
        """One run: info, `params`, `metrics` (latest values) and `tags` as dicts."""
        return self._request("GET", f"/api/v1/runs/{urllib.parse.quote(run_id, safe='')}")

    def search_runs(self, experiment=None, filter: str = "", order_by=None, max_results: Optional[int] = None) -> list:
        """Runs as dicts, with MLflow's filter grammar (`metrics.f1 > 0.8 and params.lr = '0.01'`).

        `experiment` is a name or id, or a list of them (default: all); all pages are fetched
        unless `max_results` caps the total."""
        if isinstance(experiment, (list, tuple)):
            experiment = ",".join(str(e) for e in experiment)
        runs, token = [], None
        while True:
            page_size = 10000 if max_results is None else min(10000, max_results - len(runs))
            query = {"filter": filter, "max_results": page_size}
            if experiment is not None:
                query["experiment"] = str(experiment)
            if order_by:
                query["order_by"] = ",".join([order_by] if isinstance(order_by, str) else order_by)
            if token:
                query["page_token"] = token
            page = self._request("GET", "/api/v1/runs?" + urllib.parse.urlencode(query))
            runs.extend(page["runs"])
            token = page.get("next_page_token")
            if not token or (max_results is not None and len(runs) >= max_results):
                return runs

    def runs(self, experiment=None, filter: str = "", order_by=None, max_results: Optional[int] = None):
        """Runs as a pandas DataFrame: one row per run; columns `run_id`, `name`, `status`,
        `start_time`, `end_time` (as datetimes), then `params.*`, `metrics.*` and `tags.*`."""
        try:
            import pandas as pd
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError("Slipway.runs() needs pandas: pip install pandas") from e
        rows = []
        for r in self.search_runs(experiment, filter, order_by, max_results):
            row = {k: r[k] for k in ("run_id", "name", "experiment_id", "status", "user_id", "start_time", "end_time")}
            for section in ("params", "metrics", "tags"):
                for key, value in r[section].items():
                    if section == "metrics" and isinstance(value, str):
                        value = float(value.replace("Infinity", "inf"))
                    row[f"{section}.{key}"] = value
            rows.append(row)
        base = ["run_id", "name", "experiment_id", "status", "user_id", "start_time", "end_time"]
        df = pd.DataFrame(rows, columns=None if rows else base)
        for col in ("start_time", "end_time"):
            df[col] = pd.to_datetime(df[col], unit="ms", utc=True)
        return df

    def metric_history(self, run_id: str, key: str) -> list:
        """Every point of a run's metric: dicts with `step`, `timestamp` and `value`."""
        path = f"/api/v1/runs/{urllib.parse.quote(run_id, safe='')}/metrics?" + urllib.parse.urlencode({"key": key})
        return self._request("GET", path)

    # -- data -----------------------------------------------------------------------------

    def datasets(self) -> list:
        """Every dataset: dicts with `name`, `description`, `created_at`, `latest`."""
        return self._request("GET", "/api/v1/datasets")["datasets"]

    def dataset(self, name: str) -> "Dataset":
        """A dataset by name (raises SlipwayError 404 if there is none)."""
        info = self._request("GET", f"/api/v1/datasets/{_q(name)}")
        return Dataset(self, info["dataset"], info["versions"])

    # -- jobs -----------------------------------------------------------------------------

    def jobs(self, status: Optional[str] = None, limit: int = 100) -> list:
        """Jobs, newest first, optionally only those in `status`."""
        query = {"limit": limit}
        if status:
            query["status"] = status
        return self._request("GET", "/api/v1/jobs?" + urllib.parse.urlencode(query))["jobs"]

    def job(self, job_id: str) -> dict:
        return self._request("GET", f"/api/v1/jobs/{urllib.parse.quote(job_id, safe='')}")

    def submit_job(self, kind: str, payload: Optional[dict] = None, max_attempts: int = 3) -> dict:
        """Enqueues a job of a kind the server runs (e.g. `diagnostic.sleep`)."""
        body = {"kind": kind, "payload": payload or {}, "max_attempts": max_attempts}
        return self._request("POST", "/api/v1/jobs", body)

    def cancel_job(self, job_id: str) -> dict:
        return self._request("POST", f"/api/v1/jobs/{urllib.parse.quote(job_id, safe='')}/cancel", {})

    # -- plumbing -------------------------------------------------------------------------

    def _open(self, path: str, method: str = "GET", body: Any = None):
        """Sends a request and returns the open response (the caller closes it); an error
        answer is raised as SlipwayError."""
        data = None
        headers = {"Accept": "application/json"}
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            return urllib.request.urlopen(request, timeout=self.timeout)
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                err = json.loads(raw)
                raise SlipwayError(e.code, err.get("error_code", "UNKNOWN"), err.get("message", "")) from None
            except (ValueError, AttributeError):
                raise SlipwayError(e.code, "UNKNOWN", raw.decode(errors="replace").strip()) from None

    def _request(self, method: str, path: str, body: Any = None) -> Any:
        with self._open(path, method, body) as response:
            return json.loads(response.read() or b"null")


def _q(part: str) -> str:
    return urllib.parse.quote(str(part), safe="")


class Dataset:
    """A dataset: `name`, `description`, `latest`, and its `versions` (dicts, newest first)."""

    def __init__(self, client: Slipway, info: dict, versions: list):
        self.client = client
        self.name = info["name"]
        self.description = info["description"]
        self.latest = info.get("latest")
        self.versions = versions

    def __repr__(self) -> str:
        return f"Dataset({self.name!r}, latest={self.latest})"

    def version(self, version="latest") -> "DatasetVersion":
        """Version `version` (a number or 'latest')."""
        page = self.client._request("GET", f"/api/v1/datasets/{_q(self.name)}/versions/{_q(version)}?limit=1")
        return DatasetVersion(self.client, page["version"])

    def diff(self, a, b="latest") -> dict:
        """Items `added`, `removed`, `changed` (before/after) and the `unchanged` count."""
        query = urllib.parse.urlencode({"from": a, "to": b})
        return self.client._request("GET", f"/api/v1/datasets/{_q(self.name)}/diff?{query}")


class DatasetVersion:
    """One immutable version: its facts as attributes (`version`, `items`, `bytes`, `message`,
    `author`, `source`, `parent`, `manifest`, ...) and its files."""

    def __init__(self, client: Slipway, info: dict):
        self.client = client
        self.info = info
        for key, value in info.items():
            setattr(self, key, value)

    def __repr__(self) -> str:
        return f"DatasetVersion({self.dataset!r}, {self.version})"

    def _base(self) -> str:
        return f"/api/v1/datasets/{_q(self.dataset)}/versions/{self.version}"

    def files(self, prefix: str = "") -> list:
        """Every item (dicts with `path`, `size`, `hash`, `meta`), optionally under a prefix."""
        out, offset = [], 0
        while True:
            query = urllib.parse.urlencode({"prefix": prefix, "offset": offset, "limit": 10000})
            page = self.client._request("GET", f"{self._base()}?{query}")
            out += page["items"]
            offset += len(page["items"])
            if not page["items"] or offset >= page["total"]:
                return out

    def read(self, path: str) -> bytes:
        """One file's bytes (verified by the server against its hash as it streams)."""
        with self.client._open(f"{self._base()}/files/" + "/".join(_q(p) for p in path.split("/"))) as r:
            return r.read()

    def mlflow_dataset(self):
        """This version as an `mlflow` dataset (name, the manifest digest, an HTTP source naming
        the version), for `mlflow.log_input(version.mlflow_dataset(), context="training")`: the
        run then shows up among the runs that used this version, as with `slipway run --input`."""
        from mlflow.data.http_dataset_source import HTTPDatasetSource
        from mlflow.data.meta_dataset import MetaDataset

        source = HTTPDatasetSource(url=self.client.url + self._base())
        return MetaDataset(source=source, name=self.dataset, digest=self.manifest)

    def runs(self) -> list:
        """The active runs that read this version, newest first (dicts as `Slipway.run`)."""
        return self.client._request("GET", f"{self._base()}/runs")["runs"]

    def checkout(self, dest, prefix: str = "") -> int:
        """Writes the version's files (or those under `prefix`) into `dest`, a new or empty
        folder; returns how many. A file whose size differs from the version's is an error."""
        from pathlib import Path

        dest = Path(dest)
        if dest.exists() and any(dest.iterdir()):
            raise ValueError(f"{dest} is not empty; check out into a new or empty folder")
        items = self.files(prefix)
        for item in items:
            parts = item["path"].split("/")
            if any(p in ("", ".", "..") for p in parts):
                raise ValueError(f"refusing the item path {item['path']!r}")
            target = dest.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            written = 0
            with self.client._open(f"{self._base()}/files/" + "/".join(_q(p) for p in parts)) as r, \
                    open(target, "xb") as out:
                while chunk := r.read(1 << 20):
                    out.write(chunk)
                    written += len(chunk)
            if written != item["size"]:
                target.unlink()
                raise SlipwayError(500, "INTERNAL_ERROR", f"{item['path']}: got {written} bytes, expected {item['size']}")
        return len(items)
