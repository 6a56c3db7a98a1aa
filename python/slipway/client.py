"""The HTTP client: one `Slipway` object per server."""

from __future__ import annotations

import io
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Optional, Sequence


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
        pd = _pandas("Slipway.runs()")
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

    def add_dataset(self, path, name: str, message: str = "", meta=None, kind: Optional[str] = None,
                    description: Optional[str] = None) -> dict:
        """Versions a local folder (or a .csv/.parquet file: a table) through the server, for
        machines without the stores' credentials: uploads the files' content (only what the
        store lacks, when the `blake3` package is installed to tell), then makes the next
        version of `name`. `meta` is per-item metadata: a dict of path -> dict, or the path of
        a CSV with a `path` column. Returns {"version": ..., "created": ...}; `created` is False
        when the content equals the latest version's. `kind` forces 'files' or 'table' (a folder
        of parts)."""
        from pathlib import Path

        root = Path(path)
        if not root.exists():
            raise ValueError(f"{root} does not exist")
        if root.is_file():
            files = [(root.name, root)]
            if kind is None and root.suffix.lower() in (".csv", ".parquet", ".pq"):
                kind = "table"
        else:
            files = sorted((p.relative_to(root).as_posix(), p) for p in root.rglob("*") if p.is_file())
        if not files:
            raise ValueError(f"nothing to add: {root} holds no files")
        metadata = _read_meta(meta) if meta is not None else {}
        unknown = sorted(set(metadata) - {rel for rel, _ in files})
        if unknown:
            raise ValueError(f"{unknown[0]}: listed in the metadata but not in {root}")
        digests = _blake3_digests(files)
        missing = None
        if digests is not None:
            missing = set()
            wanted = sorted(set(digests.values()))
            for i in range(0, len(wanted), 10_000):
                asked = self._request("POST", "/api/v1/blobs/missing", {"digests": wanted[i:i + 10_000]})
                missing.update(asked["missing"])
        items = []
        uploaded = {}
        for rel, file in files:
            digest = digests.get(rel) if digests is not None else None
            if digest is None or (digest in missing and digest not in uploaded):
                with open(file, "rb") as f:
                    stored = self._request("POST", "/api/v1/blobs", f)
                uploaded[stored["digest"]] = True
                digest = stored["digest"]
            items.append({"path": rel, "size": file.stat().st_size, "hash": digest,
                          "meta": metadata.get(rel, {})})
        body = {"items": items, "message": message, "source": str(root.resolve())}
        if kind:
            body["kind"] = kind
        if description is not None:
            body["description"] = description
        return self._request("POST", f"/api/v1/datasets/{_q(name)}/versions", body)

    def dataset(self, name: str) -> "Dataset":
        """A dataset by name (raises SlipwayError 404 if there is none)."""
        info = self._request("GET", f"/api/v1/datasets/{_q(name)}")
        return Dataset(self, info["dataset"], info["versions"])

    # -- registry -------------------------------------------------------------------------

    def models(self, filter: str = "") -> list:
        """Registered models (dicts: name, description, aliases {alias: version},
        latest_version, tags, created_ms, updated_ms), by name."""
        out, token = [], None
        while True:
            query = {"filter": filter, "max_results": 1000}
            if token:
                query["page_token"] = token
            page = self._request("GET", "/api/v1/models?" + urllib.parse.urlencode(query))
            out.extend(page["models"])
            token = page.get("next_page_token")
            if not token:
                return out

    def model(self, name: str) -> dict:
        """A registered model and its versions, newest first: `{"model": ..., "versions": [...]}`."""
        return self._request("GET", f"/api/v1/models/{_q(name)}")

    def model_version(self, name: str, ref="latest") -> dict:
        """One version by number, `latest` or alias: source, run_id, aliases, format, digest and
        the ONNX signature (`signature.inputs`, `signature.outputs`)."""
        return self._request("GET", f"/api/v1/models/{_q(name)}/versions/{_q(ref)}")

    def register_model(self, name: str, model=None, source: Optional[str] = None,
                       run_id: Optional[str] = None, description: str = "",
                       alias: Optional[str] = None) -> dict:
        """Registers a new version of `name` (created if new) and returns it.

        `model` is an ONNX file to upload (a path, or the bytes of the file); `source` instead
        names stored artifacts (`runs:/RUN_ID/model`, `models:/MODEL_ID`). `run_id` links the
        version to its training run (and so to the run's dataset versions); `alias` is pointed at
        the new version."""
        base = f"/api/v1/models/{_q(name)}/versions"
        if (model is None) == (source is None):
            raise ValueError("give either model (an ONNX file or its bytes) or source")
        if source is not None:
            version = self._request("POST", base, {"source": source, "run_id": run_id,
                                                   "description": description})
        else:
            query = {"description": description}
            if run_id:
                query["run_id"] = run_id
            if isinstance(model, (bytes, bytearray)):
                query["file_name"] = "model.onnx"
                version = self._request("POST", base + "?" + urllib.parse.urlencode(query), bytes(model))
            else:
                query["file_name"] = os.path.basename(os.fspath(model))
                with open(model, "rb") as f:
                    version = self._request("POST", base + "?" + urllib.parse.urlencode(query), f)
        if alias:
            self.set_alias(name, alias, version["version"])
            version = self.model_version(name, version["version"])
        return version

    def set_alias(self, name: str, alias: str, version: int) -> dict:
        """Points `alias` at `version` (moving it atomically); endpoints serving it follow."""
        return self._request("PUT", f"/api/v1/models/{_q(name)}/aliases/{_q(alias)}", {"version": int(version)})

    def delete_alias(self, name: str, alias: str) -> None:
        self._request("DELETE", f"/api/v1/models/{_q(name)}/aliases/{_q(alias)}")

    def lineage(self, name: str, ref="latest") -> dict:
        """Where a version came from: `{"version", "run", "datasets": [{name, version, ...}]}`."""
        return self._request("GET", f"/api/v1/models/{_q(name)}/versions/{_q(ref)}/lineage")

    def delete_model(self, name: str, version: Optional[int] = None) -> None:
        """Deletes one version, or the model with all its versions."""
        if version is None:
            self._request("DELETE", f"/api/v1/models/{_q(name)}")
        else:
            self._request("DELETE", f"/api/v1/models/{_q(name)}/versions/{int(version)}")

    # -- serving --------------------------------------------------------------------------

    def create_endpoint(self, name: str, model: str, max_batch_size: Optional[int] = None,
                        max_queue_delay_us: Optional[int] = None, max_queue_len: Optional[int] = None) -> dict:
        """Serves `model` (`NAME@VERSION` or `NAME@ALIAS`) as endpoint `name`."""
        body = {"name": name, "model": model}
        for key, value in [("max_batch_size", max_batch_size), ("max_queue_delay_us", max_queue_delay_us),
                           ("max_queue_len", max_queue_len)]:
            if value is not None:
                body[key] = value
        return self._request("POST", "/api/v1/endpoints", body)

    def endpoints(self) -> list:
        """Endpoints with their live version and `stats` (request counts, latency percentiles)."""
        return self._request("GET", "/api/v1/endpoints")["endpoints"]

    def endpoint(self, name: str) -> dict:
        return self._request("GET", f"/api/v1/endpoints/{_q(name)}")

    def delete_endpoint(self, name: str) -> None:
        self._request("DELETE", f"/api/v1/endpoints/{_q(name)}")

    def split_endpoint(self, name: str, weights: dict) -> dict:
        """Splits `name`'s traffic by percent weights summing to 100, the baseline first:
        `{"v1": 90, "v2": 10}` (a version as `v3` or `3`, `latest` or an alias). Requests with
        the same routing key keep their variant while the weights stay."""
        return self._request("PUT", f"/api/v1/endpoints/{_q(name)}/traffic",
                             {"split": [[str(k), v] for k, v in weights.items()]})

    def set_routing_key_header(self, name: str, header: str) -> dict:
        """Reads routing keys of endpoint `name` from `header` (default X-Slipway-Key)."""
        return self._request("PUT", f"/api/v1/endpoints/{_q(name)}/traffic", {"key_header": header})

    def shadow_endpoint(self, name: str, variant: Optional[str], percent: Optional[float] = None) -> dict:
        """Mirrors requests of `name` to `variant` (compared, never returned), or stops with
        None. `percent` mirrors a share of them (a routing key is always in it or never)."""
        body = {"shadow": variant}
        if percent is not None:
            body["shadow_percent"] = percent
        return self._request("PUT", f"/api/v1/endpoints/{_q(name)}/traffic", body)

    def start_rollout(self, spec) -> dict:
        """Starts a canary rollout from a rollout file's text (TOML or YAML, told apart by the
        server) or a dict of its fields (`endpoint`, `candidate`, `steps`, `step_seconds`,
        `min_requests`, `gates`, `promote_alias`)."""
        if isinstance(spec, str):
            with self._open("/api/v1/rollouts", "POST", spec.encode(),
                            {"Content-Type": "text/plain; charset=utf-8"}) as response:
                return json.loads(response.read())
        return self._request("POST", "/api/v1/rollouts", spec)

    def rollout(self, rollout_id: str) -> dict:
        """A rollout with its state, steps and timeline (`events`, each with its reason)."""
        return self._request("GET", f"/api/v1/rollouts/{_q(rollout_id)}")

    def rollouts(self, endpoint: Optional[str] = None) -> list:
        query = f"?endpoint={_q(endpoint)}" if endpoint else ""
        return self._request("GET", f"/api/v1/rollouts{query}")["rollouts"]

    def promote_rollout(self, rollout_id: str, reason: str = "") -> dict:
        """The next step now (from the step before 100%: completes the rollout)."""
        return self._rollout_action(rollout_id, "promote", reason)

    def abort_rollout(self, rollout_id: str, reason: str = "") -> dict:
        return self._rollout_action(rollout_id, "abort", reason)

    def pause_rollout(self, rollout_id: str, reason: str = "") -> dict:
        return self._rollout_action(rollout_id, "pause", reason)

    def resume_rollout(self, rollout_id: str, reason: str = "") -> dict:
        return self._rollout_action(rollout_id, "resume", reason)

    def _rollout_action(self, rollout_id: str, action: str, reason: str) -> dict:
        return self._request("POST", f"/api/v1/rollouts/{_q(rollout_id)}/{action}", {"reason": reason})

    def feedback(self, endpoint: str, truth) -> dict:
        """Ground truth for answered requests: `{request_id: label}` (one-row requests) or
        `{request_id: [label, ...]}` (a label per row). Returns `{"scored": n, "unknown": [ids]}`;
        answers are remembered while the endpoint runs an experiment (two variants or more)."""
        items = [{"request_id": rid, **({"labels": list(v)} if isinstance(v, (list, tuple)) else {"label": v})}
                 for rid, v in truth.items()]
        return self._request("POST", f"/api/v1/endpoints/{_q(endpoint)}/feedback", {"items": items})

    def abtest(self, endpoint: str, since_ms: Optional[int] = None, positive: Optional[str] = None) -> dict:
        """Each variant against the baseline since `since_ms` (default: the last 24 hours):
        requests, errors, p99, and from ground truth accuracy, precision, recall, F1, ROC AUC
        (of the `positive` label, default "1"), MAE and RMSE; the effect with a 95% interval, a
        fixed-sample and an always-valid p-value for rates; the sample-ratio-mismatch check."""
        params = {}
        if since_ms is not None:
            params["since_ms"] = int(since_ms)
        if positive is not None:
            params["positive"] = str(positive)
        query = ("?" + urllib.parse.urlencode(params)) if params else ""
        return self._request("GET", f"/api/v1/endpoints/{_q(endpoint)}/abtest{query}")

    def prediction_log(self, endpoint: str) -> dict:
        """How `endpoint` logs its traffic (`settings`: sample, max_per_second, window_s,
        features), what this server process logged and wrote, and the segments of the last 30
        days (count, rows, bytes, first_ms, last_ms)."""
        return self._request("GET", f"/api/v1/endpoints/{_q(endpoint)}/log")

    def set_prediction_log(self, endpoint: str, sample: Optional[float] = None,
                           max_per_second: Optional[int] = None, window_s: Optional[int] = None,
                           features=None) -> dict:
        """Changes how `endpoint` logs: the share of requests (`sample`, 0 to 1, by request id),
        rows per second per process at most, the window of its profiles (s), and the names of
        its inputs (default: its training table's columns, from lineage). Absent ones stay."""
        body = {k: v for k, v in {"sample": sample, "max_per_second": max_per_second,
                                  "window_s": window_s,
                                  "features": list(features) if features is not None else None}.items()
                if v is not None}
        return self._request("PUT", f"/api/v1/endpoints/{_q(endpoint)}/log", body)

    def predictions(self, endpoint: str, since_ms: Optional[int] = None, until_ms: Optional[int] = None,
                    version: Optional[int] = None, limit: Optional[int] = None):
        """Logged predictions of `endpoint` (default: the last hour) as a pandas DataFrame:
        request_id, at (UTC), variant, version, row (within its request), latency_ms, the inputs
        by name, prediction and score (a two-class model's score for its second class)."""
        pd = _pandas("Slipway.predictions()")
        params = {k: int(v) for k, v in {"since_ms": since_ms, "until_ms": until_ms,
                                         "version": version, "limit": limit}.items() if v is not None}
        query = ("?" + urllib.parse.urlencode(params)) if params else ""
        with self._open(f"/api/v1/endpoints/{_q(endpoint)}/predictions{query}") as r:
            data = r.read()
        return pd.read_parquet(io.BytesIO(data), engine="pyarrow")

    def prediction_windows(self, endpoint: str, since_ms: Optional[int] = None,
                           until_ms: Optional[int] = None, variant: Optional[str] = None) -> list:
        """Per window and variant, merged over every serving process: rows, versions and a
        summary of every logged column (count, nulls, mean, std, quantiles, histogram, top)."""
        params = {k: v for k, v in {"since_ms": since_ms, "until_ms": until_ms,
                                    "variant": variant}.items() if v is not None}
        query = ("?" + urllib.parse.urlencode(params)) if params else ""
        return self._request("GET", f"/api/v1/endpoints/{_q(endpoint)}/windows{query}")["windows"]

    def create_monitor(self, name: str, endpoint: str, kind: str, reference: Optional[str] = None,
                       baseline_window_ms: Optional[int] = None, columns=None, tests: Optional[dict] = None,
                       thresholds: Optional[dict] = None, share: float = 0.5, min_rows: int = 30) -> dict:
        """A monitor on `endpoint` that judges each closed window of its prediction log:
        `kind="skew"` against the model's training table (`reference="fall-features@3"`, else the
        one its lineage names), `"drift"` against the window before (or `baseline_window_ms`),
        `"prediction_drift"` the same on its predictions; Evidently's default tests unless
        `tests={"col": "psi"}` / `thresholds`."""
        body = {"name": name, "endpoint": endpoint, "kind": kind, "columns": list(columns or []),
                "tests": tests or {}, "thresholds": thresholds or {}, "share": share, "min_rows": min_rows}
        if reference is not None:
            body["reference"] = reference
        if baseline_window_ms is not None:
            body["baseline_window_ms"] = int(baseline_window_ms)
        return self._request("POST", "/api/v1/monitors", body)

    def monitors(self) -> list:
        """Every monitor with its latest report."""
        return self._request("GET", "/api/v1/monitors")["monitors"]

    def monitor(self, name: str) -> dict:
        return self._request("GET", f"/api/v1/monitors/{_q(name)}")

    def delete_monitor(self, name: str) -> None:
        self._request("DELETE", f"/api/v1/monitors/{_q(name)}")

    def evaluate_monitor(self, name: str, window_ms: Optional[int] = None) -> dict:
        """Judges a window now (default: the latest closed one) and keeps the report: the
        verdict, and per column the test, statistic, threshold and drift."""
        query = f"?window_ms={int(window_ms)}" if window_ms is not None else ""
        return self._request("POST", f"/api/v1/monitors/{_q(name)}/evaluate{query}", {})

    def monitor_reports(self, name: str, since_ms: Optional[int] = None, window_ms: Optional[int] = None,
                        distributions: bool = False) -> list:
        """A monitor's reports, newest first (default: windows of the last 24 hours; `window_ms`:
        that window only). With `distributions`, each report carries per column the reference's
        and the window's shares per bin (`{"bins", "reference", "current"}`), as the UI overlays."""
        params = []
        if since_ms is not None:
            params.append(f"since_ms={int(since_ms)}")
        if window_ms is not None:
            params.append(f"window_ms={int(window_ms)}")
        if distributions:
            params.append("distributions=true")
        query = "?" + "&".join(params) if params else ""
        return self._request("GET", f"/api/v1/monitors/{_q(name)}/reports{query}")["reports"]

    def create_alert_rule(self, name: str, monitor: Optional[str] = None, gauge: Optional[str] = None,
                          endpoint: Optional[str] = None, metric: Optional[str] = None, over_s: int = 300,
                          positive: Optional[str] = None,
                          labels: Optional[dict] = None, op: Optional[str] = None,
                          threshold: Optional[float] = None, for_s: int = 0, windows: int = 1,
                          webhook: Optional[str] = None, secret: Optional[str] = None,
                          allow_private: bool = False, action: Optional[str] = None,
                          cooldown_s: int = 3600, max_per_day: int = 3) -> dict:
        """An alert rule on a monitor's verdict (or, with `op` and `threshold`, its share of
        drifted columns), on a custom gauge (`op` and `threshold` on any series whose labels
        include `labels`), or on an endpoint's `metric` over the last `over_s` seconds
        (`error_rate`, `p99_latency_ms`, `requests_per_s`, or from ground truth `accuracy`,
        `precision`, `recall`, `f1`, `roc_auc`, `mae`, `rmse` of `positive`), holding for `for_s` seconds (a monitor rule: for `windows`
        consecutive judged windows) before it fires; with `webhook`, each
        firing and resolution is POSTed there (signed with `secret`; private targets need
        `allow_private`); with `action`, a command the server was started with (`--action
        NAME=COMMAND`) runs as a tracked run with the alert's context in its environment, at
        most once per `cooldown_s` and `max_per_day` times a day."""
        body = {"name": name, "for_s": int(for_s), "windows": int(windows)}
        if endpoint is not None:
            body.update({"endpoint": endpoint, "metric": metric, "over_s": int(over_s)})
            if positive is not None:
                body["positive"] = str(positive)
        if action is not None:
            body["action"] = {"name": action, "cooldown_s": int(cooldown_s), "max_per_day": int(max_per_day)}
        for k, v in {"monitor": monitor, "gauge": gauge, "op": op, "threshold": threshold}.items():
            if v is not None:
                body[k] = v
        if labels:
            body["labels"] = {str(k): str(v) for k, v in labels.items()}
        if webhook is not None:
            body["webhook"] = {"url": webhook, "secret": secret, "allow_private": allow_private}
        return self._request("POST", "/api/v1/alerts/rules", body)

    def alert_actions(self, state: Optional[str] = None) -> list:
        """The actions firing alerts asked for, newest first: queued, running, done (with the
        tracked run's id and exit code), failed, or skipped (cooldown, the day's maximum)."""
        query = f"?state={_q(state)}" if state else ""
        return self._request("GET", f"/api/v1/alerts/actions{query}")["actions"]

    def alert_rules(self) -> list:
        return self._request("GET", "/api/v1/alerts/rules")["rules"]

    def delete_alert_rule(self, name: str) -> None:
        self._request("DELETE", f"/api/v1/alerts/rules/{_q(name)}")

    def alerts(self, state: Optional[str] = None) -> list:
        """Alerts, newest first (pending, firing, resolved; `state` to choose), each with what
        raised it (`context`, with a `link` to the report) and its webhook deliveries."""
        query = f"?state={_q(state)}" if state else ""
        return self._request("GET", f"/api/v1/alerts{query}")["alerts"]

    def performance(self, endpoint: str, since_ms: Optional[int] = None, until_ms: Optional[int] = None,
                    window_s: Optional[int] = None, positive: Optional[str] = None):
        """Outcome metrics per window (by when requests were answered; default: the endpoint's
        log window) and variant, from the ground truth sent with `feedback()`: feedback_rows,
        accuracy, precision, recall, F1, ROC AUC (of `positive`), MAE, RMSE. A DataFrame."""
        pd = _pandas("Slipway.performance()")
        params = {k: v for k, v in {"since_ms": since_ms, "until_ms": until_ms, "window_s": window_s,
                                    "positive": positive}.items() if v is not None}
        query = ("?" + urllib.parse.urlencode(params)) if params else ""
        rows = self._request("GET", f"/api/v1/endpoints/{_q(endpoint)}/performance{query}")["windows"]
        columns = ["window_ms", "window_s", "variant", "feedback_rows", "accuracy", "precision", "recall",
                   "f1", "roc_auc", "mae", "rmse"]
        return pd.DataFrame(rows, columns=columns)

    def push_gauge(self, name: str, value: float, labels: Optional[dict] = None, at_ms: Optional[int] = None) -> dict:
        """Pushes a value of a custom gauge (`camera_power_state`, labels `{"camera": "ward3-2"}`),
        kept as a time series and exposed on /metrics."""
        point = {"name": name, "labels": {str(k): str(v) for k, v in (labels or {}).items()}, "value": value}
        if at_ms is not None:
            point["at_ms"] = int(at_ms)
        return self._request("POST", "/api/v1/gauges", point)

    def push_gauges(self, points: list) -> dict:
        """Pushes many points at once (dicts with name, labels, value, at_ms): all or none."""
        return self._request("POST", "/api/v1/gauges", {"points": points})

    def gauges(self) -> list:
        """Every gauge series with its latest value."""
        return self._request("GET", "/api/v1/gauges")["gauges"]

    def gauge(self, name: str, since_ms: Optional[int] = None) -> list:
        """A gauge's series since `since_ms` (default: the last 24 hours): labels and
        `[at_ms, value]` points, oldest first."""
        query = f"?since_ms={int(since_ms)}" if since_ms is not None else ""
        return self._request("GET", f"/api/v1/gauges/{_q(name)}{query}")["series"]

    def drift(self, reference, current, types: Optional[dict] = None, tests: Optional[dict] = None,
              thresholds: Optional[dict] = None, columns=None, share: float = 0.5):
        """Whether `current` (a pandas DataFrame) drifted from `reference`, column by column, with
        the tests Evidently chooses by default (or `tests={"col": "psi"}`, `thresholds`), column
        types inferred as Evidently infers them unless given (`types={"col": "cat"}`). Returns a
        DataFrame, one row per column (test, statistic, threshold, drift); the table's verdict
        is in its `attrs` (`drift`, `drifted`, `share`, `skipped`)."""
        pd = _pandas("Slipway.drift()")
        body = {"reference": _drift_columns(reference), "current": _drift_columns(current),
                "types": types or {}, "tests": tests or {}, "thresholds": thresholds or {},
                "columns": list(columns or []), "share": share}
        out = self._request("POST", "/api/v1/drift", body)
        frame = pd.DataFrame(out["columns"])
        frame.attrs.update({k: out[k] for k in ("drift", "drifted", "share", "share_threshold", "skipped")})
        return frame

    def predict(self, endpoint: str, data, key: Optional[str] = None, request_id: Optional[str] = None):
        """Predictions of `endpoint` for `data`: a pandas DataFrame (columns in the model's
        order; the answer is a DataFrame with one column per model output, one row per input row)
        or a list of rows (the answer is the list of predictions). `key` is the routing key:
        requests with the same key go to the same variant of a split endpoint; `request_id`
        names the request, for `feedback` later."""
        try:
            import pandas as pd
        except ImportError:  # pragma: no cover - pandas is optional
            pd = None
        frame = pd is not None and isinstance(data, pd.DataFrame)
        rows = data.to_numpy().tolist() if frame else [list(r) for r in data]
        answer = self._request("POST", f"/endpoints/{_q(endpoint)}/invocations",
                               {"dataframe_split": {"columns": list(data.columns) if frame else None, "data": rows}},
                               headers={k: v for k, v in [("X-Slipway-Key", key), ("X-Request-Id", request_id)]
                                        if v is not None})
        predictions = answer["predictions"]
        if not frame:
            return predictions
        if predictions and isinstance(predictions[0], dict):
            return pd.DataFrame(predictions, index=data.index)
        return pd.DataFrame({"prediction": predictions}, index=data.index)

    def predict_dataset(self, model: str, input: str, output_dataset: str, keep=None, columns=None,
                        wait: bool = True, timeout: float = 3600.0) -> dict:
        """Batch prediction on the server, as a job: `model` (`NAME@ALIAS`) over the table of
        dataset version `input` (`NAME@N`); the predictions (the `keep` columns, then `label`,
        `probabilities_0`, ...) become the next version of `output_dataset`. Returns the finished
        job (its `result` names the version), or the queued job when `wait` is False; a failed
        job raises SlipwayError."""
        payload = {"model": model, "input": input, "output_dataset": output_dataset}
        if keep is not None:
            payload["keep"] = list(keep)
        if columns is not None:
            payload["columns"] = list(columns)
        job = self.submit_job("predict", payload, max_attempts=1)
        if not wait:
            return job
        import time

        deadline = time.time() + timeout
        while True:
            job = self.job(job["id"])
            if job["status"] == "succeeded":
                return job
            if job["status"] in ("failed", "cancelled"):
                raise SlipwayError(400, "JOB_FAILED", job.get("error") or job["status"])
            if time.time() > deadline:
                raise SlipwayError(504, "TIMEOUT", f"job {job['id']} still {job['status']}")
            time.sleep(0.1)

    # -- tuning ---------------------------------------------------------------------------

    def study(self, name: str, direction: Optional[str] = None, metric: Optional[str] = None, sampler=None,
              pruner=None, seed: Optional[int] = None, experiment: Optional[str] = None,
              n_trials: Optional[int] = None, load_if_exists: bool = True,
              directions: Optional[Sequence[str]] = None, metrics: Optional[Sequence[str]] = None) -> "Study":
        """Creates a study, or loads the one of that name (`load_if_exists`, as in Optuna;
        its settings stay as they were). `direction`: "minimize" (default) or "maximize";
        `metric`: the objective's metric name in each trial's run ("value" by default).
        For several objectives (a multi-objective study, as Optuna's `directions=`), give
        `directions` and `metrics` instead, one per objective in the same order
        (`directions=["minimize", "maximize"], metrics=["latency", "accuracy"]`): `metrics`
        alone makes every objective minimized, several `directions` need their `metrics`, and
        `direction` with `directions` (or `metric` with `metrics`) is refused. `sampler`: "tpe"
        (default; Optuna 5's multivariate TPE with sharper good-trial kernels), "random", "grid",
        or a dict with options ({"type": "tpe", "n_startup_trials": 20}; {"type": "tpe",
        "good_clip": 1, "constant_liar": True} is Optuna's rule; with one objective, trials
        still running are predicted by a Gaussian process unless "believer": False);
        `pruner`: "median", "percentile", "asha", "hyperband"
        or a dict (a multi-objective study has none). Each trial is a run of `experiment` (the
        study's name by default) under the study's parent run."""
        from .tuning import Study

        body: dict = {"name": name, "load_if_exists": load_if_exists}
        for key, value in (("direction", direction), ("metric", metric), ("sampler", sampler), ("pruner", pruner),
                           ("seed", seed), ("experiment", experiment), ("n_trials", n_trials)):
            if value is not None:
                body[key] = value
        for key, value in (("directions", directions), ("metrics", metrics)):
            if value is not None:
                body[key] = [value] if isinstance(value, str) else list(value)
        return Study(self, self._request("POST", "/api/v1/studies", body))

    def create_study_from_file(self, spec: dict, load_if_exists: bool = False) -> "Study":
        """A study from a study file's content (a dict, as `slipway tune run` reads it)."""
        from .tuning import Study

        return Study(self, self._request("POST", "/api/v1/studies", {"spec": spec, "load_if_exists": load_if_exists}))

    def get_study(self, name: str) -> "Study":
        from .tuning import Study

        return Study(self, self._request("GET", f"/api/v1/studies/{_q(name)}"))

    def studies(self) -> list:
        """Every study with its trial counts, target (`n_trials`) and `queued_jobs` (its trial jobs
        waiting for a worker), newest first; not its best trial (`client.get_study(name)` has it)."""
        return self._request("GET", "/api/v1/studies")["studies"]

    def delete_study(self, name: str, runs: bool = False, force: bool = False) -> dict:
        """Deletes a study and its trials; the name can be used again. The trials' runs and the
        study's run stay in their experiment unless `runs` (then soft-deleted, as MLflow's
        delete: restorable). While a trial runs the server refuses (SlipwayError, HTTP 409)
        unless `force`, which fails the running trials. A study run from a file (`slipway tune
        run`) also has its trial jobs cancelled. Returns `{name, study_id, trials, running,
        runs_deleted, jobs_cancelled}` (and `runs_skipped`, runs that could not be ended or
        deleted)."""
        query = urllib.parse.urlencode({"runs": "true" if runs else "false", "force": "true" if force else "false"})
        return self._request("DELETE", f"/api/v1/studies/{_q(name)}?{query}")

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

    def _open(self, path: str, method: str = "GET", body: Any = None, extra: Optional[dict] = None):
        """Sends a request and returns the open response (the caller closes it); an error
        answer is raised as SlipwayError. `body` is JSON, or bytes / an open binary file sent
        as they are."""
        data = None
        headers = {"Accept": "application/json", "X-Slipway-User": os.environ.get("USER", "python")}
        if isinstance(body, (bytes, bytearray)) or hasattr(body, "read"):
            data = body
            headers["Content-Type"] = "application/octet-stream"
            if hasattr(body, "fileno"):
                headers["Content-Length"] = str(os.fstat(body.fileno()).st_size)
        elif body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        headers.update(extra or {})
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

    def _request(self, method: str, path: str, body: Any = None, headers: Optional[dict] = None) -> Any:
        with self._open(path, method, body, headers) as response:
            return json.loads(response.read() or b"null")


def _q(part: str) -> str:
    return urllib.parse.quote(str(part), safe="")


def _read_meta(meta) -> dict:
    """Per-item metadata: a dict as it is, or a CSV file with a `path` column."""
    if isinstance(meta, dict):
        return {str(k): {str(a): str(b) for a, b in v.items()} for k, v in meta.items()}
    import csv

    with open(meta, newline="") as f:
        rows = list(csv.DictReader(f))
    out = {}
    for line, row in enumerate(rows, start=2):
        rel = (row.pop("path", None) or "").strip().removeprefix("./")
        if not rel:
            raise ValueError(f"{meta}, line {line}: the path is empty (is there a 'path' column?)")
        if rel in out:
            raise ValueError(f"{meta}, line {line}: '{rel}' is listed twice")
        out[rel] = {k: v for k, v in row.items() if v}
    return out


def _blake3_digests(files):
    """BLAKE3 hex digests of the files by relative path, or None without the blake3 package
    (then every file is uploaded and the server hashes it)."""
    try:
        import blake3
    except ImportError:
        return None
    out = {}
    for rel, path in files:
        h = blake3.blake3()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        out[rel] = h.hexdigest()
    return out


def _drift_columns(frame) -> list:
    """A DataFrame's columns as `/api/v1/drift` takes them: a dtype and JSON values, missing as
    null."""
    import math

    import pandas as pd

    def missing(v):
        return v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and (math.isnan(v) or math.isinf(v)))

    out = []
    for name in frame.columns:
        series = frame[name]
        kind = series.dtype.kind  # nullable Int64/boolean dtypes report i/b too, with pd.NA
        if kind == "b":
            dtype, values = "bool", [None if missing(v) else bool(v) for v in series.tolist()]
        elif kind in "iu":
            dtype, values = "int", [None if missing(v) else int(v) for v in series.tolist()]
        elif kind == "f":
            dtype, values = "float", [None if missing(v) else float(v) for v in series.tolist()]
        else:
            dtype, values = "str", [None if missing(v) else str(v) for v in series.tolist()]
        out.append({"name": str(name), "dtype": dtype, "values": values})
    return out


def _pandas(caller: str):
    """pandas, imported when a caller first needs it (the client itself needs only the
    standard library)."""
    try:
        import pandas
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(f"{caller} needs pandas: pip install pandas") from e
    return pandas


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
        return DatasetVersion(self.client, page["version"], page.get("table"))

    def diff(self, a, b="latest") -> dict:
        """Items `added`, `removed`, `changed` (before/after) and the `unchanged` count; between
        two tables also `table`: `columns_added`, `columns_removed`, `columns_changed`
        (before/after), the `compared_on` columns, `rows_before`, `rows_after`, `rows_added`,
        `rows_removed`, `rows_unchanged` (rows as multisets: a changed row is one removed and
        one added) and up to 10 `added_examples` and `removed_examples` (else `table` is None)."""
        query = urllib.parse.urlencode({"from": a, "to": b})
        return self.client._request("GET", f"/api/v1/datasets/{_q(self.name)}/diff?{query}")


class DatasetVersion:
    """One immutable version: its facts as attributes (`version`, `kind`, `items`, `bytes`,
    `message`, `author`, `source`, `parent`, `derived_from`, `has_profile`, `manifest`, ...)
    and its files.

    `kind` is 'files' (a folder) or 'table' (one CSV or Parquet table, possibly in several part
    files); a table's `table` is its `format`, `rows` and `columns` (dicts with `name`, `dtype`,
    `arrow`, `nullable`), a folder's is None."""

    def __init__(self, client: Slipway, info: dict, table: Optional[dict] = None):
        self.client = client
        self.info = info
        for key, value in info.items():
            setattr(self, key, value)
        self.table = table

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

    def to_pandas(self):
        """A table version as a pandas DataFrame: its part files downloaded in path order, read
        (Parquet with pyarrow, CSV with pandas' defaults) and concatenated. A folder of files is
        not a table: ValueError."""
        if self.kind != "table":
            raise ValueError(f"{self.dataset}@{self.version} is a folder of files, not a table: "
                             "use files(), read() or checkout()")
        pd = _pandas("DatasetVersion.to_pandas()")
        parts = []
        for item in sorted(self.files(), key=lambda i: i["path"]):
            data = io.BytesIO(self.read(item["path"]))
            if self.table["format"] == "parquet":
                parts.append(pd.read_parquet(data, engine="pyarrow"))
            else:
                parts.append(pd.read_csv(data))
        return parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)

    def rows(self, offset: int = 0, limit: int = 50):
        """One page of a table version's rows (`limit` at most 1000) as a pandas DataFrame
        indexed by row number; cells are the server's text (None for a null), so numbers come
        as strings. A folder of files has no rows: SlipwayError 400."""
        pd = _pandas("DatasetVersion.rows()")
        query = urllib.parse.urlencode({"offset": offset, "limit": limit})
        page = self.client._request("GET", f"{self._base()}/rows?{query}")
        index = pd.RangeIndex(page["offset"], page["offset"] + len(page["rows"]))
        return pd.DataFrame(page["rows"], columns=page["columns"], index=index, dtype=object)

    def profile(self, bins: int = 20, top: int = 10, raw: bool = False):
        """The version's profile (of a table's columns, or of a folder's item metadata) as a
        pandas DataFrame with one row per column, indexed by name: `dtype`, `count` (non-null),
        `nulls`, `distinct` (`distinct_exact` False when it is an estimate), `nan`, `infinite`,
        `min`, `max`, `mean`, `std` (n - 1), quantiles `p0`, `p1`, ... `p50` ... `p100` (from a
        sketch: within 1 % of the value at rank floor(q * (n - 1)), so for an even count `p50`
        is near the lower median, not the mean of the middle two), `top` (up to `top` dicts of
        `value` and `count`, each count low by at most `top_error`) and `histogram` (`bins`
        dicts of `lo`, `hi` and `count`); `attrs['rows']` is the row count. With `raw=True`,
        the stored mergeable profile as a dict instead. A folder without item metadata has
        none: SlipwayError 404."""
        if raw:
            return self.client._request("GET", f"{self._base()}/profile?raw=true")
        pd = _pandas("DatasetVersion.profile()")
        query = urllib.parse.urlencode({"bins": bins, "top": top})
        page = self.client._request("GET", f"{self._base()}/profile?{query}")
        figures = ["name", "dtype", "count", "nulls", "distinct", "distinct_exact", "nan", "infinite",
                   "min", "max", "mean", "std"]
        quantiles, records = {}, []
        for column in page["columns"]:
            record = {k: column[k] for k in figures + ["top", "top_error", "histogram"]}
            for quantile in column["quantiles"]:
                label = f"p{round(quantile['q'] * 100, 6):g}"
                quantiles[label] = quantile["q"]
                record[label] = quantile["value"]
            records.append(record)
        # String columns have no quantiles: their cells are NaN.
        columns = figures + sorted(quantiles, key=quantiles.get) + ["top", "top_error", "histogram"]
        df = pd.DataFrame.from_records(records, columns=columns).set_index("name")
        df.attrs["rows"] = page["rows"]
        return df

    def sample(self, fraction: Optional[float] = None, n: Optional[int] = None, seed: int = 0,
               stratify_by: Optional[str] = None, into: Optional[str] = None, message: str = "") -> "DatasetVersion":
        """A deterministic sample (items of a folder, rows of a table) as the next version of
        `into` (default NAME-sample); give `fraction` or `n`."""
        body = {"seed": seed, "message": message}
        for key, value in (("fraction", fraction), ("n", n), ("stratify_by", stratify_by), ("into", into)):
            if value is not None:
                body[key] = value
        made = self.client._request("POST", f"{self._base()}/sample", body)["version"]
        return self.client.dataset(made["dataset"]).version(made["version"])

    def split(self, train: float = 0.0, val: float = 0.0, test: float = 0.0, seed: int = 0,
              stratify_by: Optional[str] = None, into: Optional[str] = None) -> dict:
        """A deterministic split into PREFIX-train/-val/-test (PREFIX = `into`, default the
        dataset's name); returns {part: DatasetVersion} for the parts with a share above 0."""
        body = {"train": train, "val": val, "test": test, "seed": seed}
        if stratify_by is not None:
            body["stratify_by"] = stratify_by
        if into is not None:
            body["into"] = into
        made = self.client._request("POST", f"{self._base()}/split", body)
        return {p["version"]["dataset"].rsplit("-", 1)[-1]:
                self.client.dataset(p["version"]["dataset"]).version(p["version"]["version"])
                for p in made["parts"]}

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
