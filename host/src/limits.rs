//! Limits that a config is validated against and the runtime enforces, kept where both may read them.

/// The largest memory cap a hook association may ask for (bytes).
pub const MAX_MEMORY_LIMIT: usize = 128 << 20;

/// The most bytes of a response a viewer connection keeps unsent in the
/// kernel (`TCP_NOTSENT_LOWAT`): the socket takes more only as the viewer
/// reads. What is in flight is bounded by the viewer's own receive window,
/// so a viewer that stops reading pins about this much plus its window, not
/// the kernel's send buffer ceiling (`net.ipv4.tcp_wmem`, 4 MiB by default).
pub const VIEWER_UNSENT_BYTES: u32 = 128 << 10;
