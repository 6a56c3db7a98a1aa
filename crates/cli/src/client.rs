//! The HTTP client behind client commands (`jobs`, `version` against a server).

use anyhow::{Context, bail};
use serde::de::DeserializeOwned;

use crate::Global;

pub(crate) struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    pub(crate) fn new(global: &Global) -> anyhow::Result<Client> {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("building the HTTP client")?;
        let base = global.server_url()?.trim_end_matches('/').to_string();
        Ok(Client { http, base, token: global.token.clone() })
    }

    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    /// Why the server could not be asked, in a line, with what to check.
    fn unreachable(&self, e: reqwest::Error) -> anyhow::Error {
        // The innermost cause says it best ("Connection refused (os error 111)").
        let mut cause: &dyn std::error::Error = &e;
        while let Some(next) = cause.source() {
            cause = next;
        }
        if e.is_timeout() {
            return anyhow::anyhow!("{} did not answer in time", self.base);
        }
        if !e.is_connect() {
            return anyhow::anyhow!("the request to {} failed: {cause}", self.base);
        }
        anyhow::anyhow!(
            "cannot reach {} ({cause}): is `slipway server` running there? (--server or \
             SLIPWAY_TRACKING_URI names it)",
            self.base
        )
    }

    pub(crate) async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.send(self.http.get(format!("{}{path}", self.base))).await
    }

    pub(crate) async fn post<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.send(self.http.post(format!("{}{path}", self.base)).json(&serde_json::json!({}))).await
    }

    pub(crate) async fn post_json<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> anyhow::Result<T> {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body)).await
    }

    pub(crate) async fn put_json<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> anyhow::Result<T> {
        self.send(self.http.put(format!("{}{path}", self.base)).json(body)).await
    }

    /// Posts text as it is, with its content type.
    pub(crate) async fn post_text<T: DeserializeOwned>(
        &self,
        path: &str,
        content_type: &str,
        body: String,
    ) -> anyhow::Result<T> {
        let request = self
            .http
            .post(format!("{}{path}", self.base))
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body);
        self.send(request).await
    }

    /// Posts a file's bytes as `application/octet-stream`, streamed from disk.
    pub(crate) async fn post_file<T: DeserializeOwned>(
        &self,
        path: &str,
        file: &std::path::Path,
    ) -> anyhow::Result<T> {
        let (body, len) = file_body(file).await?;
        let request = self
            .http
            .post(format!("{}{path}", self.base))
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .header(reqwest::header::CONTENT_LENGTH, len)
            .timeout(std::time::Duration::from_secs(3600))
            .body(body);
        self.send(request).await
    }

    pub(crate) async fn delete<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.send(self.http.delete(format!("{}{path}", self.base))).await
    }

    /// Uploads a file, streamed from disk.
    pub(crate) async fn put_file(&self, path: &str, file: &std::path::Path) -> anyhow::Result<()> {
        let (body, len) = file_body(file).await?;
        let request = self
            .http
            .put(format!("{}{path}", self.base))
            .header(reqwest::header::CONTENT_LENGTH, len)
            .timeout(std::time::Duration::from_secs(3600))
            .body(body);
        let _: serde_json::Value = self.send(request).await?;
        Ok(())
    }

    /// The bytes of a GET's answer, as they are.
    pub(crate) async fn get_bytes(&self, path: &str) -> anyhow::Result<bytes::Bytes> {
        self.raw(self.http.get(format!("{}{path}", self.base))).await
    }

    async fn send<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> anyhow::Result<T> {
        let body = self.raw(request).await?;
        serde_json::from_slice(&body)
            .with_context(|| format!("unexpected answer from {}", self.base))
    }

    async fn raw(&self, mut request: reqwest::RequestBuilder) -> anyhow::Result<bytes::Bytes> {
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|e| self.unreachable(e))?;
        let status = response.status();
        let body = response.bytes().await.context("reading the answer")?;
        if !status.is_success() {
            let message = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_string))
                .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_string());
            bail!("{} ({status})", message);
        }
        Ok(body)
    }
}

/// A file as a streamed request body, and its length.
async fn file_body(file: &std::path::Path) -> anyhow::Result<(reqwest::Body, u64)> {
    let f =
        tokio::fs::File::open(file).await.with_context(|| format!("opening {}", file.display()))?;
    let len = f.metadata().await?.len();
    Ok((reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(f)), len))
}
