//! Why a component is refused at upload, why an invocation fails, and why the runtime could not start.

use super::*;

/// Why a component was refused at upload.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InvalidHook(pub String);

/// Why one hook invocation failed. Each fails its request alone.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("hook {hook} ({event}) trapped: {reason}")]
    Trap {
        hook: String,
        event: &'static str,
        reason: String,
    },
    #[error("hook {hook} ({event}) ran over its CPU budget of {budget:?}")]
    Timeout {
        hook: String,
        event: &'static str,
        budget: Duration,
    },
    #[error("hook {hook} ({event}) did not finish within its time limit of {limit:?}")]
    WallTimeout {
        hook: String,
        event: &'static str,
        limit: Duration,
    },
    #[error("hook {hook} ({event}) went over its memory cap of {limit} bytes")]
    Memory {
        hook: String,
        event: &'static str,
        limit: usize,
    },
    #[error("hook {hook} ({event}) returned invalid output: {reason}")]
    InvalidOutput {
        hook: String,
        event: &'static str,
        reason: String,
    },
    #[error("hook {hook} ({event}) found no free instance slot")]
    Capacity { hook: String, event: &'static str },
    #[error("hook {hook} ({event}) did not run: the hook runtime is stopping")]
    Stopped { hook: String, event: &'static str },
    #[error(
        "hook {hook} needs memory kept through the request (its instance for a later event, or a body read for it), and what requests keep already holds the host's {limit_mib} MiB for it (--hook-held-memory-mib)"
    )]
    Held { hook: String, limit_mib: u32 },
}

impl HookError {
    /// A limit was exceeded (503) rather than the hook failing (502).
    pub fn is_limit(&self) -> bool {
        matches!(
            self,
            Self::Timeout { .. }
                | Self::WallTimeout { .. }
                | Self::Memory { .. }
                | Self::Capacity { .. }
                | Self::Stopped { .. }
                | Self::Held { .. }
        )
    }
}

/// A runtime that could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("hook runtime: {0}")]
pub struct RuntimeError(pub(super) String);
