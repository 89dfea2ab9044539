//! The web console: the built files of `console/dist/`, embedded in the binary so that a plain
//! `cargo build` serves it without Node. `console/` holds the sources; CI rebuilds them and fails
//! when the result differs from the committed files.

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::extract::Path;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use http::{HeaderMap, HeaderValue, StatusCode, header};

use super::AppState;

/// The console's Content-Security-Policy: its one script and one stylesheet come from this
/// origin, it talks to this origin only, and nothing is inline (uPlot sizes its canvas through
/// the DOM's style properties, which no policy governs).
pub const CONSOLE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// One file of the console as the binary holds it.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
    /// The body's `ETag`, computed on first use: the embedded files never change.
    etag: OnceLock<String>,
}

impl Asset {
    const fn new(path: &'static str, content_type: &'static str, body: &'static [u8]) -> Self {
        Asset {
            path,
            content_type,
            body,
            etag: OnceLock::new(),
        }
    }
}

static ASSETS: [Asset; 3] = [
    Asset::new(
        "index.html",
        "text/html; charset=utf-8",
        include_bytes!("../../../../console/dist/index.html"),
    ),
    Asset::new(
        "assets/console.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../../console/dist/assets/console.js"),
    ),
    Asset::new(
        "assets/console.css",
        "text/css; charset=utf-8",
        include_bytes!("../../../../console/dist/assets/console.css"),
    ),
];

/// `/console/` and its assets: the copy built into the binary, or with `from_dir` (the
/// `console_dir` setting) the files of that folder, read on each request so a rebuilt console
/// shows on reload.
pub fn routes(from_dir: Option<PathBuf>) -> Router<AppState> {
    let from_dir = from_dir.map(Arc::new);
    let index_dir = from_dir.clone();
    Router::new()
        .route(
            "/console",
            get(|| async { Redirect::permanent("/console/") }),
        )
        .route(
            "/console/",
            get(move |headers: HeaderMap| {
                let dir = index_dir.clone();
                async move { file(dir.as_deref(), "index.html", &headers).await }
            }),
        )
        .route(
            "/console/{*path}",
            get(move |Path(path): Path<String>, headers: HeaderMap| {
                let dir = from_dir.clone();
                async move { file(dir.as_deref(), &path, &headers).await }
            }),
        )
}

async fn file(dir: Option<&PathBuf>, path: &str, headers: &HeaderMap) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.path == path) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    match dir {
        None => {
            let etag = asset.etag.get_or_init(|| etag_of(asset.body));
            serve(headers, asset.content_type, etag, Cow::Borrowed(asset.body))
        }
        // Only the names the binary embeds are read, so no path leaves the folder.
        Some(dir) => match tokio::fs::read(dir.join(path)).await {
            Ok(bytes) => serve(
                headers,
                asset.content_type,
                &etag_of(&bytes),
                Cow::Owned(bytes),
            ),
            Err(_) => StatusCode::NOT_FOUND.into_response(),
        },
    }
}

/// Answers with the file, or 304 when the browser holds this build's copy. `no-cache` makes the
/// browser ask each time, so a new build is never hidden behind a stale copy.
fn serve(
    headers: &HeaderMap,
    content_type: &'static str,
    etag: &str,
    body: Cow<'static, [u8]>,
) -> Response {
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == etag));
    let etag = HeaderValue::from_str(etag).expect("hex is a valid header value");
    let common = [
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (header::ETAG, etag),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONSOLE_CSP),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
    ];
    if fresh {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    (
        common,
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body,
    )
        .into_response()
}

/// A file's `ETag`: a stable fingerprint (FNV-1a), so the same build gives the same tag on every
/// replica.
fn etag_of(bytes: &[u8]) -> String {
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("\"{hash:016x}\"")
}
