//! The window only ever shows Tunesmith's own page. A link, a redirect or a script that tries to
//! load any other address in the window is refused (new windows are refused where the window is
//! built, in `run`), so remote content can never reach the commands the page may call.

use tauri::plugin::{Builder, TauriPlugin};
use tauri::{Manager, Runtime, Url};

/// The plugin that refuses every navigation [`is_app_url`] does not allow.
pub fn guard<R: Runtime>() -> TauriPlugin<R> {
    Builder::new("navigation-guard")
        .on_navigation(|webview, url| {
            // Without the bundled page (`custom-protocol` off) the window shows the dev server
            // named by `build.devUrl` in tauri.conf.json; a release build never allows it.
            let dev_url = if cfg!(feature = "custom-protocol") {
                None
            } else {
                webview.config().build.dev_url.clone()
            };
            let ok = is_app_url(url, dev_url.as_ref());
            if !ok {
                eprintln!("tunesmith: refused to show {url} in the window");
            }
            ok
        })
        .build()
}

/// Whether `url` is the app's own page: Tauri's bundled-page origin (`tauri://localhost` on Linux
/// and macOS, `http(s)://tauri.localhost` on Windows), or the dev server's origin when given.
pub fn is_app_url(url: &Url, dev_url: Option<&Url>) -> bool {
    let host = url.host_str();
    let bundled = match url.scheme() {
        "tauri" => host == Some("localhost"),
        "http" | "https" => host == Some("tauri.localhost") && url.port().is_none(),
        _ => false,
    };
    let dev = dev_url.is_some_and(|d| {
        d.scheme() == url.scheme()
            && d.host_str() == host
            && d.port_or_known_default() == url.port_or_known_default()
    });
    (bundled || dev) && url.username().is_empty() && url.password().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(url: &str, dev: Option<&str>) -> bool {
        let dev = dev.map(|d| d.parse::<Url>().unwrap());
        is_app_url(&url.parse().unwrap(), dev.as_ref())
    }

    #[test]
    fn only_the_app_itself_may_be_shown() {
        for ok in [
            "tauri://localhost",
            "tauri://localhost/index.html#/runs",
            "http://tauri.localhost/",
            "https://tauri.localhost/assets/app.js",
        ] {
            assert!(allowed(ok, None), "{ok}");
        }
        for bad in [
            "https://example.com/",
            "http://localhost:1420/",
            "tauri://evil.com/",
            "http://tauri.localhost.evil.com/",
            "https://tauri.localhost:8443/",
            "http://user@tauri.localhost/",
            "file:///etc/passwd",
            "data:text/html,<script>alert(1)</script>",
            "javascript:alert(1)",
            "about:blank",
        ] {
            assert!(!allowed(bad, None), "{bad}");
        }
    }

    #[test]
    fn the_dev_server_is_allowed_only_when_configured() {
        let dev = Some("http://localhost:1420");
        assert!(allowed("http://localhost:1420/", dev));
        assert!(allowed("http://localhost:1420/src/main.ts", dev));
        assert!(!allowed("http://localhost:1421/", dev));
        assert!(!allowed("https://localhost:1420/", dev));
        assert!(!allowed("http://127.0.0.1:1420/", dev));
        assert!(allowed("tauri://localhost", dev));
    }
}
