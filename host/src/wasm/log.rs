//! The `log` interface: guest log lines in the host's log, tied to the request id.

use super::HookState;
use super::bindings::{v0_1, v0_2};

/// How many log calls one invocation may make before further ones are dropped.
const MAX_LOG_LINES: u32 = 64;
/// How long one guest log line may be before it is cut.
const MAX_LOG_LINE: usize = 2048;

impl v0_2::edge::hooks::log::Host for HookState {
    fn log(&mut self, level: v0_2::edge::hooks::log::Level, message: String) {
        use v0_2::edge::hooks::log::Level;
        let level = match level {
            Level::Debug => tracing::Level::DEBUG,
            Level::Info => tracing::Level::INFO,
            Level::Warn => tracing::Level::WARN,
            Level::Error => tracing::Level::ERROR,
        };
        self.log_line(level, message);
    }
}

impl v0_1::edge::hooks::log::Host for HookState {
    fn log(&mut self, level: v0_1::edge::hooks::log::Level, message: String) {
        use v0_1::edge::hooks::log::Level;
        let level = match level {
            Level::Debug => tracing::Level::DEBUG,
            Level::Info => tracing::Level::INFO,
            Level::Warn => tracing::Level::WARN,
            Level::Error => tracing::Level::ERROR,
        };
        self.log_line(level, message);
    }
}

impl HookState {
    /// One line the guest logged, at `level`.
    fn log_line(&mut self, level: tracing::Level, message: String) {
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
            tracing::Level::DEBUG => tracing::debug!(request_id = id, hook, "{message}"),
            tracing::Level::INFO => tracing::info!(request_id = id, hook, "{message}"),
            tracing::Level::WARN => tracing::warn!(request_id = id, hook, "{message}"),
            _ => tracing::error!(request_id = id, hook, "{message}"),
        }
        self.logs.push(message);
    }
}
