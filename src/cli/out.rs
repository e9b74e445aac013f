//! Terminal output for CLI commands: `outln!` (stdout) and `errln!` (stderr).
//!
//! Owns one rule (ADR 0100): a closed pipe is never a panic. `println!` panics when the
//! reader has gone (`clawgate status --json | true`, exit 101); these macros write through
//! [`write_line`], which swallows `BrokenPipe` (the reader chose to stop reading, so the
//! command's own exit code stands) and records it in [`stdout_closed`].
//!
//! Invariant: nothing here can panic, whatever the state of fd 1 and fd 2.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Which stream a line goes to.
#[derive(Clone, Copy, Debug)]
pub enum Stream {
    Out,
    Err,
}

/// Writes one formatted line; errors (EPIPE, EIO) are absorbed.
pub fn write_line(stream: Stream, args: std::fmt::Arguments<'_>) {
    let result = match stream {
        Stream::Out => {
            let mut lock = std::io::stdout().lock();
            lock.write_fmt(args)
                .and_then(|()| lock.write_all(b"\n"))
                .and_then(|()| lock.flush())
        }
        Stream::Err => {
            let mut lock = std::io::stderr().lock();
            lock.write_fmt(args).and_then(|()| lock.write_all(b"\n"))
        }
    };
    if let (Err(e), Stream::Out) = (result, stream) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            STDOUT_CLOSED.store(true, Ordering::Relaxed);
        }
    }
}

/// stdout's reader went away during this process.
pub fn stdout_closed() -> bool {
    STDOUT_CLOSED.load(Ordering::Relaxed)
}

/// `println!` that cannot panic on a closed stdout.
#[macro_export]
macro_rules! outln {
    () => { $crate::cli::out::write_line($crate::cli::out::Stream::Out, format_args!("")) };
    ($($t:tt)*) => { $crate::cli::out::write_line($crate::cli::out::Stream::Out, format_args!($($t)*)) };
}

/// `eprintln!` that cannot panic on a closed stderr.
#[macro_export]
macro_rules! errln {
    ($($t:tt)*) => { $crate::cli::out::write_line($crate::cli::out::Stream::Err, format_args!($($t)*)) };
}

/// The one JSON shape of a failed command on stdout with `--json`:
/// `{"ok":false,"error":{"code":…,"message":…}}` (plus any fields the gateway sent).
pub fn json_error(
    code: &str,
    message: &str,
    extra: Option<&serde_json::Value>,
) -> serde_json::Value {
    let mut err = serde_json::json!({"code": code, "message": message});
    if let (Some(serde_json::Value::Object(m)), Some(obj)) = (extra, err.as_object_mut()) {
        for (k, v) in m {
            obj.entry(k.clone()).or_insert_with(|| v.clone());
        }
        if let Some(c) = m.get("code").and_then(|c| c.as_str()) {
            obj.insert("code".into(), c.into());
        }
    }
    serde_json::json!({"ok": false, "error": err})
}
