//! The control API client of the CLI: one keep-alive HTTP/1.1 connection pool,
//! the bearer token, and errors that carry the API's code and message.

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, ETAG, IF_MATCH};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use super::Connection;

/// Why a verb failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The API refused or failed the request.
    #[error("{code}: {message} (HTTP {status})")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    /// The API could not be reached.
    #[error("cannot reach the control API at {endpoint}: {reason}")]
    Transport { endpoint: String, reason: String },
    /// A local problem: a file that cannot be read, bad input.
    #[error("{0}")]
    Local(String),
    /// `wait-deployed` gave up.
    #[error("{0}")]
    Timeout(String),
}

impl CliError {
    /// The process exit code: 1 for every failure (usage errors exit 2 in clap).
    pub fn exit_code(&self) -> i32 {
        1
    }
}

/// A 2xx answer.
#[derive(Debug)]
pub struct Reply {
    pub etag: Option<String>,
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON (`null` when empty).
    pub fn json(&self) -> Result<Value, CliError> {
        if self.body.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&self.body).map_err(|e| {
            CliError::Local(format!(
                "the API answered with something that is not JSON: {e}"
            ))
        })
    }
}

/// A client of one control API.
#[derive(Debug, Clone)]
pub struct ApiClient {
    endpoint: String,
    token: Option<String>,
    /// Where the token was looked for, for the error when there is none.
    token_looked: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl ApiClient {
    /// A client for `conn`'s endpoint and token (read from the token file when
    /// not given).
    pub fn new(conn: &Connection) -> Self {
        let from_file = || match std::fs::read_to_string(&conn.token_file) {
            Ok(t) if !t.trim().is_empty() => Ok(t.trim().to_owned()),
            Ok(_) => Err("is empty".to_owned()),
            Err(e) => Err(e.to_string()),
        };
        let (token, token_looked) = match &conn.token {
            Some(t) => (Some(t.clone()), String::new()),
            None => match from_file() {
                Ok(t) => (Some(t), String::new()),
                Err(why) => (
                    None,
                    format!(
                        "--token and EDGE_TOKEN are unset, and the token file {} ({}) {why}",
                        conn.token_file.display(),
                        std::path::absolute(&conn.token_file)
                            .unwrap_or_else(|_| conn.token_file.clone())
                            .display()
                    ),
                ),
            },
        };
        let endpoint = conn.endpoint.trim().trim_end_matches('/');
        // `127.0.0.1:9901` means what `http://127.0.0.1:9901` does.
        let endpoint = if endpoint.contains("://") {
            endpoint.to_owned()
        } else {
            format!("http://{endpoint}")
        };
        Self {
            endpoint,
            token,
            token_looked,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// A client of the API at `endpoint` (`host:port` means `http://`),
    /// authenticating with `token` when given.
    pub fn for_endpoint(endpoint: &str, token: Option<String>) -> Self {
        Self::new(&Connection {
            endpoint: endpoint.to_owned(),
            token,
            token_file: std::path::PathBuf::new(),
        })
    }

    /// Sends one request as given, with the bearer `token` when there is one
    /// (not necessarily this client's: [`Self::token`]), and hands back the
    /// answer whatever its status.
    pub async fn exchange(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
        token: Option<&str>,
    ) -> Result<http::Response<Bytes>, CliError> {
        let resp = self.request(method, path, headers, body, token).await?;
        let (parts, body) = resp.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| self.transport(e.to_string()))?
            .to_bytes();
        Ok(http::Response::from_parts(parts, body))
    }

    /// A transport failure talking to this client's endpoint.
    fn transport(&self, reason: String) -> CliError {
        CliError::Transport {
            endpoint: self.endpoint.clone(),
            reason,
        }
    }

    /// Sends one request and hands back the answer's head and its body
    /// still to read.
    async fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
        token: Option<&str>,
    ) -> Result<http::Response<hyper::body::Incoming>, CliError> {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.endpoint));
        if let Some(token) = token {
            req = req.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let req = req
            .body(Full::new(body))
            .map_err(|e| CliError::Local(format!("bad endpoint {:?}: {e}", self.endpoint)))?;
        self.client
            .request(req)
            .await
            .map_err(|e| self.transport(format!("{e:#}")))
    }

    /// GETs `path` with this client's token and hands each line of the
    /// answer to `on_line` as it arrives, until the answer ends or
    /// `on_line` returns `false`; a non-2xx answer becomes
    /// [`CliError::Api`].
    pub async fn stream(
        &self,
        path: &str,
        mut on_line: impl FnMut(&[u8]) -> Result<bool, CliError>,
    ) -> Result<(), CliError> {
        let transport = |reason: String| self.transport(reason);
        let resp = self
            .request(Method::GET, path, &[], Bytes::new(), self.token())
            .await?;
        let status = resp.status();
        let mut body = resp.into_body();
        if !status.is_success() {
            let body = body
                .collect()
                .await
                .map_err(|e| transport(e.to_string()))?
                .to_bytes();
            return Err(self.failure(status, &body));
        }
        let mut pending = bytes::BytesMut::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| transport(e.to_string()))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            pending.extend_from_slice(&data);
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line = pending.split_to(end + 1);
                if !on_line(&line[..end])? {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// The error for a non-2xx answer.
    fn failure(&self, status: StatusCode, body: &[u8]) -> CliError {
        if status == StatusCode::UNAUTHORIZED && self.token.is_none() {
            return CliError::Local(format!(
                "the control API needs a token: {}; give --token or EDGE_TOKEN, or --token-file / EDGE_TOKEN_FILE naming <data-dir>/token of the host's edge serve",
                self.token_looked
            ));
        }
        api_error(status, body)
    }

    /// The token this client sends, when it has one.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Sends one request with an optional `(body, content type)`; a non-2xx
    /// answer becomes [`CliError::Api`].
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<(Vec<u8>, &'static str)>,
        if_match: Option<&str>,
    ) -> Result<Reply, CliError> {
        let mut headers = Vec::new();
        if let Some(tag) = if_match {
            headers.push((IF_MATCH.as_str(), tag));
        }
        let bytes = match body {
            Some((bytes, content_type)) => {
                headers.push((CONTENT_TYPE.as_str(), content_type));
                bytes
            }
            None => Vec::new(),
        };
        let resp = self
            .exchange(method, path, &headers, Bytes::from(bytes), self.token())
            .await?;
        let status = resp.status();
        let etag = resp
            .headers()
            .get(ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = resp.into_body();
        if status.is_success() {
            return Ok(Reply { etag, body });
        }
        Err(self.failure(status, &body))
    }

    /// GET, as JSON.
    pub async fn get(&self, path: &str) -> Result<(Value, Option<String>), CliError> {
        let reply = self.send(Method::GET, path, None, None).await?;
        Ok((reply.json()?, reply.etag))
    }

    /// Sends JSON.
    pub async fn send_json(
        &self,
        method: Method,
        path: &str,
        body: &Value,
        if_match: Option<&str>,
    ) -> Result<Reply, CliError> {
        let bytes = serde_json::to_vec(body).map_err(|e| CliError::Local(e.to_string()))?;
        self.send(method, path, Some((bytes, "application/json")), if_match)
            .await
    }

    /// The current ETag of a resource.
    pub async fn etag_of(&self, path: &str) -> Result<String, CliError> {
        self.get(path)
            .await?
            .1
            .ok_or_else(|| CliError::Local(format!("{path} answered without an ETag")))
    }
}

fn api_error(status: StatusCode, body: &[u8]) -> CliError {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let field = |name: &str| {
        parsed
            .as_ref()
            .and_then(|v| v["error"][name].as_str())
            .map(str::to_owned)
    };
    let mut message =
        field("message").unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    if status == StatusCode::PRECONDITION_FAILED {
        message.push_str(
            " (it changed since that ETag was read: read it again, e.g. `edge dist get-config ID`, which prints the current ETag on stderr, reapply the change and retry)",
        );
    }
    CliError::Api {
        status: status.as_u16(),
        code: field("code")
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("Error").to_owned()),
        message,
    }
}

/// A path segment, percent-encoded where it must be.
pub fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'*') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(seg("E1"), "E1");
        assert_eq!(seg("a/b c"), "a%2Fb%20c");
    }
}
