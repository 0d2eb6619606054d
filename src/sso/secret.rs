//! Where a connection's client secret is read: an environment variable or a file, named
//! in the directory; the secret itself is never stored there, never returned by the API
//! and never logged. It is read at each use, so rotating it needs no restart.

/// `env:NAME` or `file:/absolute/path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    Env(String),
    File(std::path::PathBuf),
}

const MAX_SECRET_BYTES: usize = 4096;

impl SecretSource {
    pub fn parse(s: &str) -> Result<SecretSource, String> {
        if let Some(name) = s.strip_prefix("env:") {
            let ok = !name.is_empty()
                && name.len() <= 128
                && name
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
            return if ok {
                Ok(SecretSource::Env(name.to_string()))
            } else {
                Err(format!(
                    "{s:?}: an environment variable name is A-Z, 0-9 and _"
                ))
            };
        }
        if let Some(path) = s.strip_prefix("file:") {
            let path = std::path::PathBuf::from(path);
            return if path.is_absolute() {
                Ok(SecretSource::File(path))
            } else {
                Err(format!("{s:?}: the file path must be absolute"))
            };
        }
        Err(format!(
            "{s:?}: say where the secret is read, env:NAME or file:/path"
        ))
    }

    /// The secret, trimmed of a trailing newline; an error names the source, never a
    /// part of the secret.
    pub fn read(&self) -> Result<String, String> {
        let raw = match self {
            SecretSource::Env(name) => std::env::var(name)
                .map_err(|_| format!("environment variable {name} is not set"))?,
            SecretSource::File(path) => {
                let bytes = crate::jwt::jwks::read_limited(path, MAX_SECRET_BYTES)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                String::from_utf8(bytes)
                    .map_err(|_| format!("{} is not UTF-8 text", path.display()))?
            }
        };
        let secret = raw.trim_end_matches(['\r', '\n']).to_string();
        if secret.is_empty() {
            return Err(format!(
                "the client secret from {} is empty",
                self.describe()
            ));
        }
        Ok(secret)
    }

    pub fn describe(&self) -> String {
        match self {
            SecretSource::Env(name) => format!("env:{name}"),
            SecretSource::File(path) => format!("file:{}", path.display()),
        }
    }
}
