//! Log setup for every command: filter, format and colour (ADR 0101).
//!
//! Filter precedence: `--log-level` > `RUST_LOG` > `CLAWGATE_LOG` (kept as an alias) > `info`.
//! Colour: `--color auto` (default) uses ANSI only when stderr is a terminal and `NO_COLOR` is
//! unset; `always`/`never` force it. Logs always go to stderr; stdout is for command output.
//!
//! Invariant: the chosen format is recorded once ([`json_logs`]) so the run banner can follow it
//! (structured events in JSON mode); no secret is ever a log field.

use std::io::IsTerminal as _;
use std::sync::OnceLock;

use clap::ValueEnum;

/// Log line format on stderr.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (the run banner and a `ready` event included).
    Json,
}

/// When to colour log lines.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// Only when stderr is a terminal and NO_COLOR is unset.
    Auto,
    /// Always emit ANSI colour codes.
    Always,
    /// Never emit ANSI colour codes.
    Never,
}

/// The most verbose level to log (a shortcut for a `RUST_LOG` filter).
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// The process logs JSON (`--log-format json`).
pub fn json_logs() -> bool {
    FORMAT.get() == Some(&LogFormat::Json)
}

/// The filter directive in effect, by the precedence in the module doc.
pub fn filter_directive(level: Option<LogLevel>, env: &dyn Fn(&str) -> Option<String>) -> String {
    if let Some(l) = level {
        return l.as_str().to_string();
    }
    env("RUST_LOG")
        .or_else(|| env("CLAWGATE_LOG"))
        .unwrap_or_else(|| "info".to_string())
}

/// Whether log lines carry ANSI colour.
pub fn use_color(choice: ColorChoice, stderr_tty: bool, no_color: bool) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => stderr_tty && !no_color,
    }
}

/// Installs the global subscriber (once; later calls are no-ops).
pub fn init(format: LogFormat, level: Option<LogLevel>, color: ColorChoice) {
    use tracing_subscriber::EnvFilter;
    let _ = FORMAT.set(format);
    let directive = filter_directive(level, &crate::config::process_env);
    let filter = EnvFilter::try_new(&directive).unwrap_or_else(|e| {
        crate::errln!("warning: log filter {directive:?} is not valid ({e}); using info");
        EnvFilter::new("info")
    });
    let ansi = use_color(
        color,
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
    );
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn flag_beats_rust_log_beats_clawgate_log() {
        let both = [("RUST_LOG", "debug,hyper=warn"), ("CLAWGATE_LOG", "trace")];
        assert_eq!(filter_directive(Some(LogLevel::Warn), &env(&both)), "warn");
        assert_eq!(filter_directive(None, &env(&both)), "debug,hyper=warn");
        assert_eq!(filter_directive(None, &env(&both[1..])), "trace");
        assert_eq!(filter_directive(None, &env(&[])), "info");
    }

    #[test]
    fn auto_colour_needs_a_terminal_and_no_no_color() {
        assert!(use_color(ColorChoice::Auto, true, false));
        assert!(!use_color(ColorChoice::Auto, false, false));
        assert!(!use_color(ColorChoice::Auto, true, true));
        assert!(use_color(ColorChoice::Always, false, true));
        assert!(!use_color(ColorChoice::Never, true, false));
    }
}
