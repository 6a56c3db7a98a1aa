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

    def _request(self, method: str, path: str, body: Any = None) -> Any:
        data = None
        headers = {"Accept": "application/json"}
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                err = json.loads(raw)
                raise SlipwayError(e.code, err.get("error_code", "UNKNOWN"), err.get("message", "")) from None
            except (ValueError, AttributeError):
                raise SlipwayError(e.code, "UNKNOWN", raw.decode(errors="replace").strip()) from None
