//! The model repository: every published version of every served model, on disk under
//! the Sluice home the way TF Serving lays models out, one folder per name and numeric
//! version:
//! ```text
//! models/<name>/model.json           which version serves by default, labels, canary share
//! models/<name>/<version>/model      the model artifact (a file or a folder)
//! models/<name>/<version>/predictor.wasm
//! models/<name>/<version>/version.json   digests, signature, the run that produced it
//! ```
//! A version is assembled in a temporary folder and renamed into place, and `model.json` is
//! replaced by rename, so a reader never sees half a version. Writers of one model take
//! its lock file.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A version's description, written once with it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VersionMeta {
    pub name: String,
    pub version: u64,
    /// `sha256:` of the predictor component.
    pub predictor_digest: String,
    /// `sha256:` of the model artifact, as the store knows it.
    pub model_digest: String,
    /// What the model takes and gives, as its predictor reported on loading it.
    pub signature: Signature,
    /// The run that produced the artifact, if a run did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    /// The producing run's metrics, by task.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, BTreeMap<String, f64>>,
    pub created_at: jiff::Timestamp,
}

/// One input or output of a model: its name, OIP datatype (`FP64`, `BYTES`, ...) and
/// shape, with -1 for a dimension of any size.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorSpec {
    pub name: String,
    pub datatype: String,
    pub shape: Vec<i64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
}

/// How a model's versions are served: the default one, labels, and the canary's share.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelState {
    /// The version unpinned requests get; the latest when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<u64>,
    #[serde(default)]
    pub labels: BTreeMap<String, u64>,
    /// Share (0 to 1) of unpinned requests the `canary` label's version takes.
    #[serde(default)]
    pub canary_share: f64,
}

#[derive(Clone, Debug)]
pub struct Version {
    pub meta: VersionMeta,
    pub dir: PathBuf,
}

impl Version {
    pub fn model_path(&self) -> PathBuf {
        self.dir.join("model")
    }
    pub fn predictor_path(&self) -> PathBuf {
        self.dir.join("predictor.wasm")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("cannot {action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is damaged: {message}", path.display())]
    Damaged { path: PathBuf, message: String },
    #[error("no model named '{0}' (see `sluice models list`)")]
    UnknownModel(String),
    #[error("model '{name}' has no version {version} (it has: {known})")]
    UnknownVersion {
        name: String,
        version: u64,
        known: String,
    },
    #[error("model '{name}' has no label '{label}'")]
    UnknownLabel { name: String, label: String },
    #[error("model '{0}' has no version before the one it serves to roll back to")]
    NothingToRollBackTo(String),
    #[error("{0}")]
    Invalid(String),
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> ModelError + 'a {
    move |source| ModelError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// The `models/` folder of a Sluice home.
#[derive(Clone, Debug)]
pub struct Repository {
    root: PathBuf,
}

/// What to publish as a new version.
pub struct Publication<'a> {
    pub name: &'a str,
    /// The model artifact in the store (a file or a folder).
    pub model: &'a Path,
    pub model_digest: &'a str,
    pub predictor: &'a Path,
    pub predictor_digest: &'a str,
    pub signature: Signature,
    pub run: Option<&'a str>,
    pub metrics: BTreeMap<String, BTreeMap<String, f64>>,
    /// Labels to point at the new version.
    pub labels: &'a [String],
}

impl Repository {
    pub fn open(home: &Path) -> Repository {
        Repository {
            root: home.join("models"),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Names of all models, sorted.
    pub fn names(&self) -> Result<Vec<String>, ModelError> {
        let entries = match fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io("read", &self.root)(e)),
        };
        let mut names: Vec<String> = entries
            .flatten()
            .filter(|e| e.path().join("model.json").is_file())
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .collect();
        names.sort();
        Ok(names)
    }

    fn model_dir(&self, name: &str) -> Result<PathBuf, ModelError> {
        if !crate::plan::valid_model_name(name) {
            return Err(ModelError::UnknownModel(name.to_owned()));
        }
        Ok(self.root.join(name))
    }

    /// Every version of a model, oldest first.
    pub fn versions(&self, name: &str) -> Result<Vec<Version>, ModelError> {
        let dir = self.model_dir(name)?;
        if !dir.join("model.json").is_file() {
            return Err(ModelError::UnknownModel(name.to_owned()));
        }
        let mut versions = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io("read", &dir))?.flatten() {
            let Some(number) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            let meta_path = entry.path().join("version.json");
            let text = fs::read_to_string(&meta_path).map_err(io("read", &meta_path))?;
            let meta: VersionMeta =
                serde_json::from_str(&text).map_err(|e| ModelError::Damaged {
                    path: meta_path.clone(),
                    message: e.to_string(),
                })?;
            if meta.version != number {
                return Err(ModelError::Damaged {
                    path: meta_path,
                    message: format!("it describes version {}", meta.version),
                });
            }
            versions.push(Version {
                meta,
                dir: entry.path(),
            });
        }
        versions.sort_by_key(|v| v.meta.version);
        Ok(versions)
    }

    pub fn version(&self, name: &str, version: u64) -> Result<Version, ModelError> {
        let versions = self.versions(name)?;
        let known = versions
            .iter()
            .map(|v| v.meta.version.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        versions
            .into_iter()
            .find(|v| v.meta.version == version)
            .ok_or_else(|| ModelError::UnknownVersion {
                name: name.to_owned(),
                version,
                known,
            })
    }

    pub fn state(&self, name: &str) -> Result<ModelState, ModelError> {
        let path = self.model_dir(name)?.join("model.json");
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ModelError::UnknownModel(name.to_owned()));
            }
            Err(e) => return Err(io("read", &path)(e)),
        };
        serde_json::from_str(&text).map_err(|e| ModelError::Damaged {
            path,
            message: e.to_string(),
        })
    }

    /// The version unpinned requests get.
    pub fn default_version(&self, name: &str) -> Result<u64, ModelError> {
        let state = self.state(name)?;
        match state.default {
            Some(v) => Ok(v),
            None => self
                .versions(name)?
                .last()
                .map(|v| v.meta.version)
                .ok_or_else(|| ModelError::UnknownModel(name.to_owned())),
        }
    }

    /// Publishes a new version and makes it the default. Returns its number.
    pub fn publish(&self, p: &Publication<'_>) -> Result<u64, ModelError> {
        let dir = self.model_dir(p.name)?;
        fs::create_dir_all(&dir).map_err(io("create", &dir))?;
        let _lock = lock(&dir)?;
        let tmp = tempfile::Builder::new()
            .prefix(".publishing-")
            .tempdir_in(&dir)
            .map_err(io("create a temporary folder in", &dir))?;
        copy_tree(p.model, &tmp.path().join("model"))?;
        let predictor = tmp.path().join("predictor.wasm");
        fs::copy(p.predictor, &predictor).map_err(io("copy", p.predictor))?;
        let mut next = fs::read_dir(&dir)
            .map_err(io("read", &dir))?
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u64>().ok())
            .max()
            .unwrap_or(0)
            + 1;
        let mut meta = VersionMeta {
            name: p.name.to_owned(),
            version: next,
            predictor_digest: p.predictor_digest.to_owned(),
            model_digest: p.model_digest.to_owned(),
            signature: p.signature.clone(),
            run: p.run.map(str::to_owned),
            metrics: p.metrics.clone(),
            created_at: jiff::Timestamp::now(),
        };
        let staged = tmp.keep();
        loop {
            let meta_path = staged.join("version.json");
            write_synced(
                &meta_path,
                &serde_json::to_vec_pretty(&meta).expect("metadata serialises"),
            )?;
            match fs::rename(&staged, dir.join(next.to_string())) {
                Ok(()) => break,
                // Another writer took the number (a repository without our lock file).
                Err(_) if dir.join(next.to_string()).exists() => {
                    next += 1;
                    meta.version = next;
                }
                Err(e) => {
                    let _ = fs::remove_dir_all(&staged);
                    return Err(io("publish", &dir)(e));
                }
            }
        }
        let mut state = match self.state(p.name) {
            Ok(s) => s,
            Err(ModelError::UnknownModel(_)) => ModelState::default(),
            Err(e) => return Err(e),
        };
        state.default = Some(next);
        for label in p.labels {
            state.labels.insert(label.clone(), next);
        }
        self.write_state(p.name, &state)?;
        Ok(next)
    }

    /// Makes an earlier version the default: `to`, or else the latest one before the
    /// current default. Returns (from, to).
    pub fn rollback(&self, name: &str, to: Option<u64>) -> Result<(u64, u64), ModelError> {
        let dir = self.model_dir(name)?;
        let _lock = lock(&dir)?;
        let from = self.default_version(name)?;
        let target = match to {
            Some(v) => self.version(name, v)?.meta.version,
            None => self
                .versions(name)?
                .iter()
                .map(|v| v.meta.version)
                .filter(|&v| v < from)
                .max()
                .ok_or_else(|| ModelError::NothingToRollBackTo(name.to_owned()))?,
        };
        let mut state = self.state(name)?;
        state.default = Some(target);
        self.write_state(name, &state)?;
        Ok((from, target))
    }

    /// Points `label` at `version`, or removes it (`None`). A `canary` label may take a share
    /// of unpinned traffic.
    pub fn set_label(
        &self,
        name: &str,
        label: &str,
        version: Option<u64>,
        canary_share: Option<f64>,
    ) -> Result<(), ModelError> {
        if !crate::plan::valid_label(label) {
            return Err(ModelError::Invalid(format!(
                "'{label}' is not a label: use lower-case letters, digits, '-' and '_', starting with a letter"
            )));
        }
        if let Some(share) = canary_share
            && !(0.0..=1.0).contains(&share)
        {
            return Err(ModelError::Invalid(format!(
                "a canary share is between 0 and 1, not {share}"
            )));
        }
        let dir = self.model_dir(name)?;
        let _lock = lock(&dir)?;
        let mut state = self.state(name)?;
        match version {
            Some(v) => {
                self.version(name, v)?;
                state.labels.insert(label.to_owned(), v);
            }
            None => {
                if state.labels.remove(label).is_none() {
                    return Err(ModelError::UnknownLabel {
                        name: name.to_owned(),
                        label: label.to_owned(),
                    });
                }
            }
        }
        if let Some(share) = canary_share {
            state.canary_share = share;
        }
        self.write_state(name, &state)
    }

    fn write_state(&self, name: &str, state: &ModelState) -> Result<(), ModelError> {
        let path = self.model_dir(name)?.join("model.json");
        let tmp = path.with_extension("json.tmp");
        write_synced(
            &tmp,
            &serde_json::to_vec_pretty(state).expect("state serialises"),
        )?;
        fs::rename(&tmp, &path).map_err(io("replace", &path))
    }
}

/// Holds a model's lock file until dropped.
fn lock(dir: &Path) -> Result<fs::File, ModelError> {
    let path = dir.join(".lock");
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io("open", &path))?;
    file.lock().map_err(io("lock", &path))?;
    Ok(file)
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), ModelError> {
    use std::io::Write;
    let mut file = fs::File::create(path).map_err(io("write", path))?;
    file.write_all(bytes).map_err(io("write", path))?;
    file.sync_all().map_err(io("sync", path))
}

/// Copies a file or folder (hard links would share the store's read-only inodes, which
/// is safe, but a copy keeps the repository whole if the store is pruned).
fn copy_tree(from: &Path, to: &Path) -> Result<(), ModelError> {
    if from.is_dir() {
        fs::create_dir_all(to).map_err(io("create", to))?;
        for entry in fs::read_dir(from).map_err(io("read", from))?.flatten() {
            copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
        Ok(())
    } else {
        fs::copy(from, to).map_err(io("copy", from))?;
        let file = fs::File::open(to).map_err(io("open", to))?;
        file.sync_all().map_err(io("sync", to))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publish(repo: &Repository, dir: &Path, labels: &[String]) -> u64 {
        let model = dir.join("m.json");
        let predictor = dir.join("p.wasm");
        fs::write(&model, "{}").unwrap();
        fs::write(&predictor, "wasm").unwrap();
        repo.publish(&Publication {
            name: "cancer",
            model: &model,
            model_digest: "sha256:aa",
            predictor: &predictor,
            predictor_digest: "sha256:bb",
            signature: Signature::default(),
            run: Some("r1"),
            metrics: BTreeMap::new(),
            labels,
        })
        .unwrap()
    }

    #[test]
    fn versions_are_numbered_published_and_rolled_back() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::open(dir.path());
        assert!(repo.names().unwrap().is_empty());
        assert_eq!(publish(&repo, dir.path(), &["stable".into()]), 1);
        assert_eq!(publish(&repo, dir.path(), &[]), 2);
        assert_eq!(publish(&repo, dir.path(), &[]), 3);
        assert_eq!(repo.names().unwrap(), ["cancer"]);
        assert_eq!(repo.default_version("cancer").unwrap(), 3);
        let v2 = repo.version("cancer", 2).unwrap();
        assert_eq!(fs::read(v2.model_path()).unwrap(), b"{}");
        assert_eq!(v2.meta.run.as_deref(), Some("r1"));
        assert_eq!(repo.state("cancer").unwrap().labels["stable"], 1);

        assert_eq!(repo.rollback("cancer", None).unwrap(), (3, 2));
        assert_eq!(repo.rollback("cancer", Some(1)).unwrap(), (2, 1));
        assert!(matches!(
            repo.rollback("cancer", None),
            Err(ModelError::NothingToRollBackTo(_))
        ));
        assert!(matches!(
            repo.rollback("cancer", Some(9)),
            Err(ModelError::UnknownVersion { .. })
        ));
        // A new version takes over again.
        assert_eq!(publish(&repo, dir.path(), &[]), 4);
        assert_eq!(repo.default_version("cancer").unwrap(), 4);
        assert!(
            !fs::read_dir(dir.path().join("models/cancer"))
                .unwrap()
                .flatten()
                .any(|e| { e.file_name().to_string_lossy().starts_with(".publishing") })
        );
    }

    #[test]
    fn labels_and_the_canary_share() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::open(dir.path());
        publish(&repo, dir.path(), &[]);
        publish(&repo, dir.path(), &[]);
        repo.set_label("cancer", "canary", Some(2), Some(0.1))
            .unwrap();
        let state = repo.state("cancer").unwrap();
        assert_eq!((state.labels["canary"], state.canary_share), (2, 0.1));
        assert!(repo.set_label("cancer", "Canary", Some(2), None).is_err());
        assert!(repo.set_label("cancer", "canary", Some(7), None).is_err());
        assert!(repo.set_label("cancer", "canary", None, Some(1.5)).is_err());
        repo.set_label("cancer", "canary", None, None).unwrap();
        assert!(matches!(
            repo.set_label("cancer", "canary", None, None),
            Err(ModelError::UnknownLabel { .. })
        ));
        assert!(matches!(
            repo.state("nope"),
            Err(ModelError::UnknownModel(_))
        ));
        assert!(matches!(
            repo.versions("../etc"),
            Err(ModelError::UnknownModel(_))
        ));
    }
}
