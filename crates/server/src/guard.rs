//! What keeps web pages out. A page open in the user's browser can send requests to a server on
//! this computer: a form posts `text/plain` without asking first, and a "DNS rebinding" site
//! points its own name at 127.0.0.1 to read the answers. So a server bound to this computer only
//! answers requests addressed to `localhost`/`127.0.0.1`/`[::1]`, a server without an API key
//! refuses requests that come from a page on another site, and bodies must be JSON (which a page
//! cannot send to another site without the browser asking this server first, and it says no).

use axum::extract::{Request, State as St};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

use crate::error::ApiError;
use crate::{ServeConfig, State};

pub(crate) async fn guard(St(state): St<Arc<State>>, request: Request, next: Next) -> Response {
    match check(&state.config, request.method(), request.headers()) {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

pub(crate) fn check(
    config: &ServeConfig,
    method: &Method,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    // A key defeats DNS rebinding by itself (the rebinding page does not have it), and a reverse
    // proxy in front of a local server passes the outside name on.
    if config.is_local() && config.api_key.is_none() {
        if let Some(host) = text(header::HOST) {
            if !is_local_authority(host) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    format!(
                        "this server answers only requests addressed to localhost or 127.0.0.1, not `{host}`; behind a proxy or for other machines, start it with --api-key (and --host to listen beyond this computer)"
                    ),
                ));
            }
        }
    }
    if config.api_key.is_none() {
        if let Some(origin) = text(header::ORIGIN) {
            let authority = origin.split_once("://").map(|(_, rest)| rest);
            if !authority.is_some_and(is_local_authority) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    format!(
                        "requests from web pages on other sites (here `{origin}`) are refused; start the server with --api-key to let them in with the key"
                    ),
                ));
            }
        }
    }
    if method == Method::POST {
        let json = text(header::CONTENT_TYPE).is_some_and(|t| {
            t.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
        });
        if !json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "send the request body as JSON with `Content-Type: application/json`",
            ));
        }
    }
    Ok(())
}

/// `localhost`, `127.0.0.1` or `[::1]`, with or without a port.
fn is_local_authority(authority: &str) -> bool {
    let host = if let Some(rest) = authority.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        authority.split(':').next().unwrap_or_default()
    };
    matches!(
        host.to_ascii_lowercase().as_str(),
        "localhost" | "127.0.0.1" | "::1"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(k.clone(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn only_local_json_requests_from_no_page_or_a_local_one_pass() {
        let local = ServeConfig::new("m");
        let json = (header::CONTENT_TYPE, "application/json; charset=utf-8");
        let ok = |c: &ServeConfig, h: &[(header::HeaderName, &str)]| {
            check(c, &Method::POST, &headers(h)).map_err(|e| e.status.as_u16())
        };
        assert_eq!(
            ok(&local, &[(header::HOST, "127.0.0.1:8080"), json.clone()]),
            Ok(())
        );
        assert_eq!(
            ok(&local, &[(header::HOST, "localhost"), json.clone()]),
            Ok(())
        );
        assert_eq!(
            ok(&local, &[(header::HOST, "[::1]:80"), json.clone()]),
            Ok(())
        );
        assert_eq!(
            ok(&local, &[(header::HOST, "evil.example:8080"), json.clone()]),
            Err(403)
        );
        assert_eq!(
            ok(
                &local,
                &[(header::HOST, "localhost.evil.example"), json.clone()]
            ),
            Err(403)
        );
        assert_eq!(
            ok(
                &local,
                &[(header::ORIGIN, "https://evil.example"), json.clone()]
            ),
            Err(403)
        );
        assert_eq!(
            ok(&local, &[(header::ORIGIN, "null"), json.clone()]),
            Err(403)
        );
        assert_eq!(
            ok(
                &local,
                &[(header::ORIGIN, "http://localhost:5173"), json.clone()]
            ),
            Ok(())
        );
        assert_eq!(
            ok(&local, &[(header::CONTENT_TYPE, "text/plain")]),
            Err(415)
        );
        assert_eq!(ok(&local, &[]), Err(415));
        assert_eq!(
            check(&local, &Method::GET, &headers(&[])).map_err(|e| e.status.as_u16()),
            Ok(())
        );
        // Served to other machines: any Host; with a key, any page (the key is the gate).
        let mut open = ServeConfig::new("m");
        open.host = "0.0.0.0".into();
        assert_eq!(
            ok(&open, &[(header::HOST, "192.168.1.5:8080"), json.clone()]),
            Ok(())
        );
        assert_eq!(
            ok(
                &open,
                &[(header::ORIGIN, "https://evil.example"), json.clone()]
            ),
            Err(403)
        );
        open.api_key = Some("k".into());
        assert_eq!(
            ok(&open, &[(header::ORIGIN, "https://app.example"), json]),
            Ok(())
        );
    }
}
