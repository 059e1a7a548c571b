//! The web console: static pages embedded in the binary, served by the control
//! listener under `/console/`, that read the control API with the operator's token.
//!
//! The assets carry no data and need no token; the page asks for one and sends
//! it only to `/v1/*` on the same origin. A strict Content-Security-Policy
//! allows only this origin's own script and style, and no framing.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue, LOCATION};
use http::{Response, StatusCode};
use http_body_util::Full;

const INDEX: &str = include_str!("console/index.html");
const SCRIPT: &str = include_str!("console/console.js");
const STYLE: &str = include_str!("console/console.css");

const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self' data:; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

/// The console's answer for `/console` and `/console/{asset}`; `None` for an
/// asset it does not have.
pub fn serve(asset: Option<&str>) -> Option<Response<Full<Bytes>>> {
    let (body, content_type) = match asset {
        None => {
            let mut resp = Response::new(Full::new(Bytes::new()));
            *resp.status_mut() = StatusCode::PERMANENT_REDIRECT;
            resp.headers_mut()
                .insert(LOCATION, HeaderValue::from_static("/console/"));
            return Some(resp);
        }
        Some("" | "index.html") => (INDEX, "text/html; charset=utf-8"),
        Some("console.js") => (SCRIPT, "text/javascript; charset=utf-8"),
        Some("console.css") => (STYLE, "text/css; charset=utf-8"),
        Some(_) => return None,
    };
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert("content-security-policy", HeaderValue::from_static(POLICY));
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    // The assets change with the binary; revalidate rather than keep a stale copy.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Some(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_the_assets_it_embeds_and_nothing_else() {
        let page = serve(Some("")).expect("the page");
        assert_eq!(page.headers()[CONTENT_TYPE], "text/html; charset=utf-8");
        assert!(
            page.headers()["content-security-policy"]
                .to_str()
                .expect("ascii")
                .contains("frame-ancestors 'none'")
        );
        assert_eq!(
            serve(Some("console.js")).expect("script").headers()[CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
        assert!(serve(Some("../Cargo.toml")).is_none());
        assert!(serve(Some("secrets")).is_none());
        let redirect = serve(None).expect("a redirect");
        assert_eq!(redirect.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(redirect.headers()[LOCATION], "/console/");
    }

    #[test]
    fn the_page_sets_data_as_text_only() {
        // Every value from the API is set with textContent; markup from a
        // distribution's comment must never become elements.
        assert!(!SCRIPT.contains("innerHTML"));
        assert!(!SCRIPT.contains("insertAdjacentHTML"));
        assert!(
            !INDEX.contains("<script>"),
            "no inline script: the CSP forbids it"
        );
    }
}
