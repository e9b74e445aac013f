//! Shared secrets: resolution (flag > env > file, SecretRef indirection), the
//! generated-token store, and weak/placeholder detection. A [`Secret`] never
//! prints its value through `Debug` or `Display`.

use std::fmt;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;

use super::file::{AuthMode, GatewayFile, SecretInput};
pub use super::origin::SecretOrigin;
use super::{env, AuthSettings, ConfigError, EnvFn, Overrides, TokenSource};

/// Bytes of entropy in a generated token (256 bits).
pub const GENERATED_TOKEN_BYTES: usize = 32;
/// Shortest secret accepted on any bind (loopback included: any local process can guess).
pub const MIN_SECRET_LEN: usize = 16;

/// Values copied from docs and templates that must never be used as secrets.
const PLACEHOLDERS: &[&str] = &[
    "changeme",
    "change-me",
    "change_me",
    "changethis",
    "replace-me",
    "replaceme",
    "your-token",
    "your_token",
    "yourtoken",
    "your-token-here",
    "your-password",
    "your-password-here",
    "token",
    "password",
    "secret",
    "openclaw",
    "example",
    "xxx",
    "xxxx",
    "todo",
    "<token>",
    "<password>",
    "${openclaw_gateway_token}",
    "test-token",
    "default",
    "admin",
    "12345678",
];

/// A secret string; redacted in `Debug`/`Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Whether a secret is a known placeholder.
pub fn is_placeholder(s: &str) -> bool {
    let t = s.trim().to_ascii_lowercase();
    t.is_empty() || PLACEHOLDERS.contains(&t.as_str()) || t.starts_with("<") && t.ends_with(">")
}

/// Whether a secret is too weak to authenticate anyone (short or repetitive).
pub fn is_weak(s: &str) -> bool {
    let distinct: std::collections::BTreeSet<char> = s.chars().collect();
    s.chars().count() < MIN_SECRET_LEN || distinct.len() < 6
}

/// A resolved secret and where it came from.
type Sourced = (Secret, SecretOrigin);

/// Resolves one secret input (literal, `env` or `file` reference); `file` is the config path.
pub fn resolve_secret(
    input: &SecretInput,
    key: &'static str,
    file: &Path,
    env: EnvFn<'_>,
) -> Result<Secret, ConfigError> {
    resolve_input(input, key, file, env).map(|(s, _)| s)
}

fn resolve_input(
    input: &SecretInput,
    key: &'static str,
    file: &Path,
    env: EnvFn<'_>,
) -> Result<Sourced, ConfigError> {
    match input {
        SecretInput::Literal(s) => Ok((
            Secret::new(s.clone()),
            SecretOrigin::ConfigKey {
                key,
                file: file.to_path_buf(),
            },
        )),
        SecretInput::Ref(r) if r.source == "env" => env(&r.id)
            .map(|v| {
                let origin = SecretOrigin::EnvRef {
                    key,
                    var: r.id.clone(),
                };
                (Secret::new(v), origin)
            })
            .ok_or_else(|| {
                ConfigError::new(
                    key,
                    format!("environment variable {} is not set", r.id),
                    format!("export {} or change {key}", r.id),
                )
            }),
        SecretInput::Ref(r) if r.source == "file" => std::fs::read_to_string(&r.id)
            .map(|s| {
                let origin = SecretOrigin::FileRef {
                    key,
                    path: r.id.clone(),
                };
                (Secret::new(s.trim_end_matches(['\n', '\r'])), origin)
            })
            .map_err(|e| {
                ConfigError::new(
                    key,
                    format!("cannot read secret file {}: {e}", r.id),
                    "fix the path or permissions",
                )
            }),
        SecretInput::Ref(r) => Err(ConfigError::new(
            format!("{key}.source"),
            format!("secret source {:?} is not supported", r.source),
            "use {\"source\":\"env\",\"id\":\"VAR\"} or {\"source\":\"file\",\"id\":\"/path\"}",
        )),
    }
}

/// Where the token and the password came from (`None` = not configured).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretOrigins {
    pub token: Option<SecretOrigin>,
    pub password: Option<SecretOrigin>,
}

/// The resolved auth settings, the token's source for the banner, and every secret's origin.
pub type ResolvedAuth = (AuthSettings, TokenSource, SecretOrigins);

/// Resolves auth mode and secrets with precedence flag > env > file; `file` is the config path.
pub fn resolve_auth(
    g: &GatewayFile,
    over: &Overrides,
    file: &Path,
    env: EnvFn<'_>,
) -> Result<ResolvedAuth, ConfigError> {
    let from_file = |input: &Option<SecretInput>, key| {
        input
            .as_ref()
            .map(|t| resolve_input(t, key, file, env))
            .transpose()
    };
    let file_token = from_file(&g.auth.token, "gateway.auth.token")?;
    let file_password = from_file(&g.auth.password, "gateway.auth.password")?;
    let flag = |v: &Option<String>, name| {
        v.clone()
            .map(|t| (Secret::new(t), SecretOrigin::Flag(name)))
    };
    let from_env = |var| env(var).map(|t| (Secret::new(t), SecretOrigin::Env(var)));
    let (token, source) = match (
        flag(&over.token, "--token"),
        from_env(env::TOKEN),
        file_token,
    ) {
        (Some(t), _, _) => (Some(t), TokenSource::Flag),
        (None, Some(t), _) => (Some(t), TokenSource::Env),
        (None, None, Some(t)) => (Some(t), TokenSource::File),
        (None, None, None) => (None, TokenSource::None),
    };
    let password = flag(&over.password, "--password")
        .or(from_env(env::PASSWORD))
        .or(file_password);
    let origins = SecretOrigins {
        token: token.as_ref().map(|t| t.1.clone()),
        password: password.as_ref().map(|p| p.1.clone()),
    };
    let (token, password) = (token.map(|t| t.0), password.map(|p| p.0));
    let mode = over.auth.or(g.auth.mode).unwrap_or(if password.is_some() {
        AuthMode::Password
    } else {
        AuthMode::Token
    });
    let auth = AuthSettings {
        mode,
        token,
        password,
        rate_limit: g.auth.rate_limit.clone(),
        allow_tailscale: false,
        identity_scopes: Default::default(),
        proxy: Default::default(),
    };
    Ok((auth, source, origins))
}

/// Path of the generated token inside the state dir.
pub fn token_file(state_dir: &Path) -> PathBuf {
    state_dir.join("gateway").join("auth-token")
}

/// Loads the persisted generated token, or creates one (256 bits, mode 0600).
/// Returns the token and whether it was created now.
pub fn load_or_generate_token(state_dir: &Path) -> std::io::Result<(Secret, bool)> {
    let path = token_file(state_dir);
    if let Some(existing) = crate::state::read_optional(&path)? {
        let t = existing.trim().to_string();
        if !t.is_empty() {
            return Ok((Secret::new(t), false));
        }
    }
    let mut bytes = [0u8; GENERATED_TOKEN_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = URL_SAFE_NO_PAD.encode(bytes);
    crate::state::write_atomic(
        &path,
        format!("{token}\n").as_bytes(),
        crate::state::SECRET_FILE_MODE,
    )?;
    Ok((Secret::new(token), true))
}

/// Makes `s` use the state-dir token (token auth, none configured), checked like any secret.
pub fn use_generated_token(s: &mut super::Settings, token: Secret) -> Result<(), ConfigError> {
    s.auth.token = Some(token);
    s.token_source = TokenSource::StateDir;
    s.secret_origins.token = Some(SecretOrigin::StateFile(token_file(&s.paths.state_dir)));
    super::validate::check_secrets(s)
}

/// Reads the persisted generated token without creating one.
pub fn read_generated_token(state_dir: &Path) -> Option<Secret> {
    let t = crate::state::read_optional(&token_file(state_dir)).ok()??;
    let t = t.trim();
    (!t.is_empty()).then(|| Secret::new(t))
}
