//! HAR files (a browser's network export) for `edge hook test`: a viewer
//! request from one entry, and answers to a hook's `fetch` requests from
//! the entries of another (`--fetch-har`), with no network.

use std::path::Path;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use serde_json::Value;

use super::client::CliError;
use crate::wasm::fetch::{Answer, FetchError, FetchLimits, Outbound, Outgoing, Sent, parse_url};

fn local(message: impl Into<String>) -> CliError {
    CliError::Local(message.into())
}

/// A HAR `headers` list (`[{"name", "value"}]`) as fields: names in lower
/// case, HTTP/2 pseudo-headers and fields that are not valid left out.
pub fn headers(list: Option<&Value>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for h in list.and_then(Value::as_array).into_iter().flatten() {
        let (Some(name), Some(value)) = (
            h.get("name").and_then(Value::as_str),
            h.get("value").and_then(Value::as_str),
        ) else {
            continue;
        };
        // HTTP/2 pseudo-headers are not fields.
        if name.starts_with(':') {
            continue;
        }
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.append(n, v);
        }
    }
    headers
}

/// One recorded exchange: the request's method and URL, parsed as a hook's
/// `fetch` URL is, and the answer.
#[derive(Debug)]
struct Recorded {
    method: Method,
    scheme: http::uri::Scheme,
    host: String,
    port: u16,
    path_and_query: String,
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

/// Answers a hook's `fetch` requests from a HAR file's entries: a request
/// is answered by the first entry with its method and URL (scheme, host and
/// port compared as the host compares them). A server no entry names is not
/// declared, as it would not be in a distribution; a request to a recorded
/// server that no entry answers fails, naming the file.
#[derive(Debug)]
pub struct HarBackends {
    file: String,
    entries: Vec<Recorded>,
}

impl HarBackends {
    /// Reads the entries of the HAR file at `path` that have a response.
    pub fn read(path: &Path) -> Result<Self, CliError> {
        let file = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| local(format!("reading {file}: {e}")))?;
        let har: Value = serde_json::from_slice(&bytes)
            .map_err(|e| local(format!("{file} is not JSON: {e}")))?;
        let list = har
            .pointer("/log/entries")
            .and_then(Value::as_array)
            .ok_or_else(|| local(format!("{file}: no log.entries")))?;
        let mut entries = Vec::new();
        for (i, entry) in list.iter().enumerate() {
            let at = |what: &str| format!("{file}: entry {i}: {what}");
            let request = &entry["request"];
            let url = request["url"]
                .as_str()
                .ok_or_else(|| local(at("no request.url")))?;
            let (scheme, host, port, path_and_query) =
                parse_url(url).map_err(|e| local(at(&e.to_string())))?;
            let method = request["method"].as_str().unwrap_or("GET");
            let method = Method::from_bytes(method.as_bytes())
                .map_err(|_| local(at(&format!("{method:?} is not a method"))))?;
            let response = &entry["response"];
            let status = response["status"]
                .as_u64()
                .and_then(|s| u16::try_from(s).ok())
                .and_then(|s| StatusCode::from_u16(s).ok())
                .ok_or_else(|| local(at("no response.status")))?;
            let mut headers = headers(response.get("headers"));
            crate::fields::strip_hop_by_hop(&mut headers);
            // The body as recorded; `content-encoding` described the bytes
            // on the wire, which a HAR does not keep.
            headers.remove(http::header::CONTENT_ENCODING);
            let text = response.pointer("/content/text").and_then(Value::as_str);
            let body = match (text, response.pointer("/content/encoding")) {
                (None, _) => Bytes::new(),
                (Some(text), Some(Value::String(enc))) if enc == "base64" => {
                    use base64::Engine as _;
                    base64::engine::general_purpose::STANDARD
                        .decode(text)
                        .map(Bytes::from)
                        .map_err(|e| local(at(&format!("content.text is not base64: {e}"))))?
                }
                (Some(text), _) => Bytes::from(text.to_owned()),
            };
            entries.push(Recorded {
                method,
                scheme,
                host,
                port,
                path_and_query,
                status,
                headers,
                body,
            });
        }
        Ok(Self { file, entries })
    }

    fn answer(&self, req: &Outgoing, limits: FetchLimits) -> Result<Answer, FetchError> {
        let server =
            |e: &&Recorded| e.scheme == req.scheme && e.host == req.host && e.port == req.port;
        if !self.entries.iter().any(|e| server(&e)) {
            return Err(FetchError::NotDeclared(format!(
                "{}://{}:{} is in no entry of {}",
                req.scheme, req.host, req.port, self.file
            )));
        }
        let entry = self
            .entries
            .iter()
            .filter(server)
            .find(|e| e.method == req.method && e.path_and_query == req.path_and_query)
            .ok_or_else(|| {
                FetchError::Failed(format!(
                    "no entry of {} answers {} {}",
                    self.file, req.method, req.path_and_query
                ))
            })?;
        if entry.body.len() > limits.max_response {
            return Err(FetchError::TooLarge(limits.max_response));
        }
        Ok(Answer {
            status: entry.status,
            headers: entry.headers.clone(),
            body: entry.body.clone(),
            cache_hit: None,
        })
    }
}

impl Outbound for HarBackends {
    fn send(&self, req: Outgoing, limits: FetchLimits) -> Sent {
        Box::pin(std::future::ready(self.answer(&req, limits)))
    }
}
