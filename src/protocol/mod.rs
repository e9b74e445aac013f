//! The OpenClaw gateway protocol v4, as pure data and functions (no I/O).
//!
//! Invariants: every frame clawgate emits is built here; parsing never panics on
//! network input; error codes and close codes come from [`errors`] only.

pub mod connect;
pub mod errors;
pub mod frame_guard;
pub mod frames;
pub mod scopes;
pub mod signature;

/// `PROTOCOL_VERSION` of OpenClaw 2026.9.x.
pub const PROTOCOL_VERSION: u32 = 4;
/// Oldest protocol a node host (`role=node`, `mode=node`) may speak.
pub const MIN_NODE_PROTOCOL_VERSION: u32 = 3;
/// Oldest protocol a probe (`mode=probe`) may speak.
pub const MIN_PROBE_PROTOCOL_VERSION: u32 = 3;
/// Largest frame accepted before `hello-ok` (`MAX_PREAUTH_PAYLOAD_BYTES`).
pub const MAX_PREAUTH_PAYLOAD_BYTES: usize = 64 * 1024;
/// Largest frame accepted after `hello-ok` (`MAX_PAYLOAD_BYTES`, advertised as `policy.maxPayload`).
pub const MAX_PAYLOAD_BYTES: usize = 25 * 1024 * 1024;
/// Per-connection send buffer limit (`MAX_BUFFERED_BYTES`, `policy.maxBufferedBytes`).
pub const MAX_BUFFERED_BYTES: usize = 50 * 1024 * 1024;
/// Default `policy.tickIntervalMs` (the reference's `TICK_INTERVAL_MS`).
pub const DEFAULT_TICK_INTERVAL_MS: u64 = 30_000;
/// Allowed clock skew for `device.signedAt` (`DEVICE_SIGNATURE_SKEW_MS`).
pub const DEVICE_SIGNATURE_SKEW_MS: i64 = 120_000;
