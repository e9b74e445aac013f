//! Where each shared secret came from (flag, environment, config key, SecretRef,
//! state-dir token file) and the one strength check every source goes through
//! (threats.md EX-1).
//!
//! Invariant: every secret the gateway authenticates with passed [`check`],
//! whatever its source and whatever the bind; a refusal names the source and
//! how to fix it, never the secret itself.

use std::fmt;
use std::path::PathBuf;

use super::secrets::{is_placeholder, is_weak, MIN_SECRET_LEN};
use super::ConfigError;

/// How to make a strong secret (printed in every refusal).
const GENERATE_HINT: &str = "openssl rand -base64 32";

/// The source of one secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretOrigin {
    /// A command-line flag such as `--token`.
    Flag(&'static str),
    /// An environment variable such as `OPENCLAW_GATEWAY_TOKEN`.
    Env(&'static str),
    /// A literal under `key` in the config file.
    ConfigKey { key: &'static str, file: PathBuf },
    /// A SecretRef `{source:"env"}` under `key`.
    EnvRef { key: &'static str, var: String },
    /// A SecretRef `{source:"file"}` under `key`.
    FileRef { key: &'static str, path: String },
    /// The token file clawgate generated in its state dir.
    StateFile(PathBuf),
}

impl fmt::Display for SecretOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretOrigin::Flag(flag) => write!(f, "{flag}"),
            SecretOrigin::Env(var) => write!(f, "environment variable {var}"),
            SecretOrigin::ConfigKey { key, .. } => write!(f, "{key}"),
            SecretOrigin::EnvRef { key, var } => {
                write!(f, "environment variable {var} (SecretRef at {key})")
            }
            SecretOrigin::FileRef { key, path } => {
                write!(f, "secret file {path} (SecretRef at {key})")
            }
            SecretOrigin::StateFile(path) => write!(f, "token file {}", path.display()),
        }
    }
}

impl SecretOrigin {
    /// The concrete fix for a weak secret from this source.
    fn fix(&self) -> String {
        match self {
            SecretOrigin::Flag(flag) => format!(
                "pass a strong secret to {flag} (generate one: {GENERATE_HINT}), or drop {flag} to use the generated token"
            ),
            SecretOrigin::Env(var) => format!(
                "export a strong {var} (generate one: {GENERATE_HINT}), or unset it to use the generated token"
            ),
            SecretOrigin::ConfigKey { key, file } => format!(
                "set {key} in {} to a strong secret (generate one: {GENERATE_HINT})",
                file.display()
            ),
            SecretOrigin::EnvRef { var, .. } => {
                format!("export a strong {var} (generate one: {GENERATE_HINT})")
            }
            SecretOrigin::FileRef { path, .. } => {
                format!("write a strong secret to {path} (generate one: {GENERATE_HINT})")
            }
            SecretOrigin::StateFile(path) => format!(
                "delete {} and start again: clawgate generates a 256-bit token there (`clawgate token` shows it)",
                path.display()
            ),
        }
    }
}

/// Refuses an empty, placeholder or weak secret, naming its source and the fix.
pub fn check(value: &str, origin: &SecretOrigin) -> Result<(), ConfigError> {
    let problem = if is_placeholder(value) {
        "the secret is empty or a documentation placeholder".to_string()
    } else if is_weak(value) {
        format!("the secret is too weak (at least {MIN_SECRET_LEN} characters, at least 6 different ones)")
    } else {
        return Ok(());
    };
    Err(ConfigError::new(origin.to_string(), problem, origin.fix()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_name_the_source_and_the_fix() {
        let file = SecretOrigin::StateFile("/s/gateway/auth-token".into());
        let e = check("a", &file).unwrap_err();
        assert_eq!(e.key, "token file /s/gateway/auth-token");
        assert!(e.fix.contains("delete /s/gateway/auth-token"), "{e}");
        let e = check("12345678", &SecretOrigin::Flag("--token")).unwrap_err();
        assert_eq!(e.key, "--token");
        assert!(e.problem.contains("placeholder"), "{e}");
        let e = check(
            "short-pass",
            &SecretOrigin::Env("OPENCLAW_GATEWAY_PASSWORD"),
        )
        .unwrap_err();
        assert!(e.problem.contains("too weak"), "{e}");
        assert!(
            !e.to_string().contains("short-pass"),
            "never echo the secret"
        );
        let r = SecretOrigin::FileRef {
            key: "gateway.auth.password",
            path: "/run/pw".into(),
        };
        assert!(check("aaaaaaaaaaaaaaaaaaaa", &r)
            .unwrap_err()
            .key
            .contains("/run/pw"));
        assert!(check("q8Zc3m0XbqkV9m1o2cV4yJ8a", &file).is_ok());
    }
}
