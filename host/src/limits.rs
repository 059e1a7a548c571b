//! Limits that a config is validated against and the runtime enforces, kept where both may read them.

/// The largest memory cap a hook association may ask for (bytes).
pub const MAX_MEMORY_LIMIT: usize = 128 << 20;
