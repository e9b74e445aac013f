//! Small shared helpers: wall-clock milliseconds, fast random UUIDs, the host name.

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A random (v4) UUID from the thread-local CSPRNG: no system call per id, which
/// matters on the handshake path (nonce and connId per connection).
pub fn random_uuid() -> String {
    uuid::Builder::from_random_bytes(rand::random())
        .into_uuid()
        .to_string()
}

/// The machine's host name, lower case (Linux: `/proc/sys/kernel/hostname`).
pub fn hostname() -> std::io::Result<String> {
    let h = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))?;
    Ok(h.trim().to_ascii_lowercase())
}
