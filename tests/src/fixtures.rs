//! Small helpers the tests share: cookies of a response, waiting for a
//! condition.

use std::time::Duration;

use crate::Got;

/// The `Set-Cookie` values of a response, each cut at its first `;`.
pub fn set_cookies(got: &Got) -> Vec<String> {
    got.headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").to_owned())
        .collect()
}

/// Polls `check` every 20 ms until it holds, for up to `within`; whether it did.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
