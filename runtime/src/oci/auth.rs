//! Registry credentials, found as other container tools find them: explicit ones first
//! (flags, `SLUICE_REGISTRY_USERNAME`/`SLUICE_REGISTRY_PASSWORD`,
//! `SLUICE_REGISTRY_TOKEN`), then the Docker config file (`$DOCKER_CONFIG/config.json`,
//! else `~/.docker/config.json`): a per-registry credential helper (`credHelpers`), the
//! `auths` entry (`auth` as base64 `user:password`, or `identitytoken`), then the default
//! helper (`credsStore`). Otherwise anonymous.

use std::collections::BTreeMap;
use std::path::PathBuf;

use oci_client::secrets::RegistryAuth;
use serde::Deserialize;

/// Credentials given on the command line or in the environment, for every registry.
#[derive(Clone, Debug, Default)]
pub struct Explicit {
    pub username: Option<String>,
    pub password: Option<String>,
    pub token: Option<String>,
}

impl Explicit {
    pub fn from_env() -> Explicit {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Explicit {
            username: env("SLUICE_REGISTRY_USERNAME"),
            password: env("SLUICE_REGISTRY_PASSWORD"),
            token: env("SLUICE_REGISTRY_TOKEN"),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default, rename = "identitytoken")]
    identity_token: Option<String>,
}

fn docker_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker/config.json"))
}

/// The keys a Docker config may file a registry under.
fn keys(registry: &str) -> Vec<String> {
    let mut keys = vec![
        registry.to_owned(),
        format!("https://{registry}"),
        format!("http://{registry}"),
        format!("https://{registry}/v1/"),
        format!("https://{registry}/v2/"),
    ];
    if matches!(
        registry,
        "docker.io" | "index.docker.io" | "registry-1.docker.io"
    ) {
        keys.push("https://index.docker.io/v1/".to_owned());
    }
    keys
}

/// Credentials that could not be found out: a Docker config file that cannot be read or
/// holds a malformed entry, or a credential helper that cannot run or answered nonsense.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a Docker config file", path.display())]
    Config {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}: auths.\"{registry}\".auth is not {expected}", path.display())]
    Entry {
        path: PathBuf,
        registry: String,
        /// `base64 of user:password`, or `user:password`.
        expected: &'static str,
    },
    #[error("cannot run the credential helper {program}")]
    HelperRun {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the credential helper {program} answered no credentials")]
    HelperAnswer {
        program: String,
        #[source]
        source: serde_json::Error,
    },
}

/// The credentials for `registry`, and where they came from (for messages), found as
/// Docker finds them: explicit ones first, then `$DOCKER_CONFIG/config.json` (or
/// `~/.docker/config.json`): its `credHelpers`, `auths`, then `credsStore`; anonymous when
/// none applies.
pub fn credentials(
    registry: &str,
    explicit: &Explicit,
) -> Result<(RegistryAuth, String), CredentialsError> {
    credentials_in(registry, explicit, docker_config_path())
}

fn credentials_in(
    registry: &str,
    explicit: &Explicit,
    docker_config: Option<PathBuf>,
) -> Result<(RegistryAuth, String), CredentialsError> {
    if let Some(token) = &explicit.token {
        return Ok((
            RegistryAuth::Bearer(token.clone()),
            "the given token".into(),
        ));
    }
    if let Some(user) = &explicit.username {
        let password = explicit.password.clone().unwrap_or_default();
        return Ok((
            RegistryAuth::Basic(user.clone(), password),
            format!("user '{user}'"),
        ));
    }
    let Some(path) = docker_config else {
        return Ok((RegistryAuth::Anonymous, "anonymous".into()));
    };
    let text = match std::fs::read(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok((RegistryAuth::Anonymous, "anonymous".into()));
        }
        Err(source) => return Err(CredentialsError::Read { path, source }),
    };
    let config: DockerConfig =
        serde_json::from_slice(&text).map_err(|source| CredentialsError::Config {
            path: path.clone(),
            source,
        })?;
    let keys = keys(registry);
    if let Some(helper) = keys.iter().find_map(|k| config.cred_helpers.get(k)) {
        return helper_credentials(helper, registry);
    }
    if let Some(entry) = keys.iter().find_map(|k| config.auths.get(k)) {
        let from = format!("{} (auths)", path.display());
        if let Some(token) = &entry.identity_token {
            return Ok((RegistryAuth::Bearer(token.clone()), from));
        }
        if let Some(encoded) = &entry.auth {
            use base64::Engine as _;
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| CredentialsError::Entry {
                    path: path.clone(),
                    registry: registry.to_owned(),
                    expected: "base64 of user:password",
                })?;
            let (user, password) =
                decoded
                    .split_once(':')
                    .ok_or_else(|| CredentialsError::Entry {
                        path: path.clone(),
                        registry: registry.to_owned(),
                        expected: "user:password",
                    })?;
            return Ok((
                RegistryAuth::Basic(user.to_owned(), password.to_owned()),
                from,
            ));
        }
        if let (Some(user), Some(password)) = (&entry.username, &entry.password) {
            return Ok((RegistryAuth::Basic(user.clone(), password.clone()), from));
        }
    }
    if let Some(store) = &config.creds_store {
        return helper_credentials(store, registry);
    }
    Ok((RegistryAuth::Anonymous, "anonymous".into()))
}

/// Asks `docker-credential-<helper> get`, as Docker does.
fn helper_credentials(
    helper: &str,
    registry: &str,
) -> Result<(RegistryAuth, String), CredentialsError> {
    use std::io::Write;
    let program = format!("docker-credential-{helper}");
    let mut child = std::process::Command::new(&program)
        .arg("get")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|source| CredentialsError::HelperRun {
            program: program.clone(),
            source,
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(registry.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|source| CredentialsError::HelperRun {
            program: program.clone(),
            source,
        })?;
    if !out.status.success() {
        // Helpers answer "credentials not found" for registries they do not know.
        return Ok((RegistryAuth::Anonymous, "anonymous".into()));
    }
    #[derive(Deserialize)]
    struct Answer {
        #[serde(rename = "Username")]
        username: String,
        #[serde(rename = "Secret")]
        secret: String,
    }
    let answer: Answer =
        serde_json::from_slice(&out.stdout).map_err(|source| CredentialsError::HelperAnswer {
            program: program.clone(),
            source,
        })?;
    let from = format!("the credential helper {program}");
    if answer.username == "<token>" {
        Ok((RegistryAuth::Bearer(answer.secret), from))
    } else {
        Ok((RegistryAuth::Basic(answer.username, answer.secret), from))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_config_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"auths": {"127.0.0.1:5001": {"auth": "YWxpY2U6c2VjcmV0"}, "https://ghcr.io": {"identitytoken": "tok"}}}"#,
        )
        .unwrap();
        let none = Explicit::default();
        let found = |registry: &str| {
            credentials_in(registry, &none, Some(path.clone()))
                .unwrap()
                .0
        };
        assert!(
            matches!(found("127.0.0.1:5001"), RegistryAuth::Basic(u, p) if u == "alice" && p == "secret")
        );
        assert!(matches!(found("ghcr.io"), RegistryAuth::Bearer(t) if t == "tok"));
        assert!(matches!(found("example.com"), RegistryAuth::Anonymous));
        let missing = credentials_in("x", &none, Some(dir.path().join("absent.json"))).unwrap();
        assert!(matches!(missing.0, RegistryAuth::Anonymous));
        let explicit = Explicit {
            username: Some("bob".into()),
            password: Some("pw".into()),
            token: None,
        };
        assert!(
            matches!(credentials_in("x", &explicit, Some(path.clone())).unwrap().0, RegistryAuth::Basic(u, _) if u == "bob")
        );
        std::fs::write(&path, r#"{"auths": {"r": {"auth": "!!"}}}"#).unwrap();
        let bad = credentials_in("r", &none, Some(path.clone()))
            .unwrap_err()
            .to_string();
        assert!(
            bad.ends_with("auths.\"r\".auth is not base64 of user:password"),
            "{bad}"
        );
    }
}
