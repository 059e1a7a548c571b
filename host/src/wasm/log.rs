//! The `log` interface: guest log lines in the host's log, tied to the request id.

use super::HookState;
use super::bindings::v0_2::edge::hooks::log::{self, Level};

/// How many log calls one invocation may make before further ones are dropped.
const MAX_LOG_LINES: u32 = 64;
/// How long one guest log line may be before it is cut.
const MAX_LOG_LINE: usize = 2048;

impl log::Host for HookState {
    fn log(&mut self, level: Level, message: String) {
        self.log_lines += 1;
        if self.log_lines > MAX_LOG_LINES {
            return;
        }
        let mut message = message;
        if message.len() > MAX_LOG_LINE {
            let mut end = MAX_LOG_LINE;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
        }
        let (id, hook) = (&*self.request_id, &*self.hook);
        match level {
            Level::Debug => tracing::debug!(request_id = id, hook, "{message}"),
            Level::Info => tracing::info!(request_id = id, hook, "{message}"),
            Level::Warn => tracing::warn!(request_id = id, hook, "{message}"),
            Level::Error => tracing::error!(request_id = id, hook, "{message}"),
        }
        self.logs.push(message);
    }
}
