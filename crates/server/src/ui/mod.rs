//! The web UI: a small single-page app served from the binary (no Node.js to build it).
//!
//! The shell (HTML, CSS, JS) is public and holds no data; every page fetches the native API,
//! which the auth layer guards. Navigation follows the lifecycle's stages.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::AppState;

const INDEX_HTML: &str = include_str!("index.html");
const APP_JS: &str = include_str!("app.js");
const APP_CSS: &str = include_str!("app.css");
const FAVICON: &str = include_str!("favicon.svg");

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", "index.html", INDEX_HTML, false) }),
        )
        .route(
            "/ui/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", "app.js", APP_JS, true) }),
        )
        .route(
            "/ui/app.css",
            get(|| async { asset("text/css; charset=utf-8", "app.css", APP_CSS, true) }),
        )
        .route(
            "/favicon.svg",
            get(|| async { asset("image/svg+xml", "favicon.svg", FAVICON, true) }),
        )
}

/// For working on the UI: with `SLIPWAY_UI_DIR` set (by whoever starts the server), the four
/// assets are read from that folder on every request instead of from the binary.
fn dev_asset(name: &str) -> Option<String> {
    let dir = std::env::var_os("SLIPWAY_UI_DIR")?;
    std::fs::read_to_string(std::path::Path::new(&dir).join(name)).ok()
}

fn asset(content_type: &'static str, name: &str, body: &'static str, cache: bool) -> Response {
    let (body, cache) = match dev_asset(name) {
        Some(fresh) => (std::borrow::Cow::Owned(fresh), false),
        None => (std::borrow::Cow::Borrowed(body), cache),
    };
    let mut response = ([(header::CONTENT_TYPE, content_type)], body).into_response();
    let headers = response.headers_mut();
    // Assets change with the binary; the shell is revalidated so a new version is picked up.
    let cache_control = if cache { "public, max-age=300" } else { "no-cache" };
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache_control));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; \
             frame-ancestors 'none'",
        ),
    );
    response
}
