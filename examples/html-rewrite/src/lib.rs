//! Rewrites HTML on its way from the origin: a banner injected into every
//! `text/html` page, right after its `<body>` tag.
//!
//! Attached to origin-response with `include_body: true`, so the page is
//! rewritten once, when it comes from the origin, and the cache keeps the
//! rewritten page:
//!
//! ```json
//! "origin_response": {"module": "html-rewrite", "include_body": true,
//!                     "config": {"banner": "<div class=\"banner\">Staging</div>"}}
//! ```
//!
//! Pages are left as they came when they are not `text/html`, are encoded
//! (`content-encoding` other than `identity`: the hook would see compressed
//! bytes), or are longer than the association's `body_limit_kib` (the hook
//! is given only their start). A rewritten page says so in `x-html-rewrite:
//! banner`, and its strong `ETag` becomes weak: the bytes are no longer the
//! origin's, the page means the same.

use edge_sdk::{Context, Hooks, Request, Response, config, log};

/// The banner when the association's config names none.
const DEFAULT_BANNER: &str = "<div id=\"edge-banner\">Served by Edge</div>";

struct HtmlRewrite;

/// `html` with `banner` after its `<body ...>` tag (ASCII case ignored), or
/// at its start when it has none.
fn inject(html: &str, banner: &str) -> String {
    let lower = html.to_ascii_lowercase();
    let at = lower
        .match_indices("<body")
        .find(|(i, _)| {
            // `<body>` or `<body attr...>`, not `<bodyguard>`.
            matches!(
                lower.as_bytes().get(i + 5),
                Some(b'>' | b' ' | b'\t' | b'\n' | b'\r' | b'/')
            )
        })
        .and_then(|(i, _)| lower[i..].find('>').map(|end| i + end + 1))
        .unwrap_or(0);
    let mut out = String::with_capacity(html.len() + banner.len());
    out.push_str(&html[..at]);
    out.push_str(banner);
    out.push_str(&html[at..]);
    out
}

impl Hooks for HtmlRewrite {
    fn origin_response(ctx: Context, _req: Request, mut resp: Response) -> Response {
        let html = resp
            .header("content-type")
            .is_some_and(|t| t.trim().to_ascii_lowercase().starts_with("text/html"));
        let encoded = resp
            .header("content-encoding")
            .is_some_and(|e| !e.trim().eq_ignore_ascii_case("identity"));
        if !html || encoded {
            return resp;
        }
        if ctx.body_truncated {
            log::warn("page longer than body_limit_kib: left as it came");
            return resp;
        }
        let Some(page) = resp.body_text() else {
            // Not UTF-8 (or no body given: include_body is off).
            return resp;
        };
        let banner = config::get("banner").unwrap_or_else(|| DEFAULT_BANNER.to_owned());
        let rewritten = inject(page, &banner);
        resp.set_body(rewritten);
        resp.set_header("x-html-rewrite", "banner");
        if let Some(etag) = resp.header("etag").map(str::to_owned)
            && !etag.starts_with("W/")
        {
            resp.set_header("etag", &format!("W/{etag}"));
        }
        resp
    }
}

edge_sdk::export!(HtmlRewrite);

#[cfg(test)]
mod tests {
    use super::inject;

    #[test]
    fn the_banner_goes_after_the_body_tag() {
        assert_eq!(
            inject("<html><BODY class=x><p>hi</p></body>", "<b>!</b>"),
            "<html><BODY class=x><b>!</b><p>hi</p></body>"
        );
        assert_eq!(inject("<bodyguard><p>", "B"), "B<bodyguard><p>");
        assert_eq!(inject("plain", "B"), "Bplain");
    }
}
