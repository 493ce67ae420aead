//! Parsing: Sluice pipeline files and KFP v1 component files, from text into checked
//! structures. This is the only stage that reads pipeline and component files; it never
//! touches wasm, containers or the store.

pub mod component;
pub mod gate;
pub mod graph;
pub mod pipeline;
pub mod placeholder;
pub mod resources;
pub mod types;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use indexmap::IndexMap;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

pub use component::{Component, ComponentSpec, ContainerSpec, InputSpec, OutputSpec, WasmSpec};
pub use pipeline::{
    BackendSpec, Binding, DeploySpec, ParamSpec, PipelineSpec, Prefer, RetrySpec, SlurmSpec,
    TaskSpec, check_sbatch_option, check_slurm_name,
};
pub use resources::{ByteSize, HumanDuration, ResourceSpec};
pub use types::{ParamType, TypeSpec};

/// A file that could not be read or understood. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: {message}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}: {field}: {message}", path.display())]
    Invalid {
        path: PathBuf,
        field: String,
        message: String,
    },
}

/// Parses YAML, turning serde's errors into one line with the file, line and column.
pub(crate) fn from_yaml<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, SpecError> {
    serde_yaml_ng::from_str(text).map_err(|err| yaml_error(path, err))
}

pub(crate) fn yaml_error(path: &Path, err: serde_yaml_ng::Error) -> SpecError {
    let full = err.to_string();
    match err.location() {
        Some(loc) => {
            // serde_yaml_ng writes " at line L column C" into the message (once for the
            // problem, again for its context); the location goes in front instead.
            let message = strip_locations(&full);
            SpecError::Syntax {
                path: path.to_owned(),
                line: loc.line(),
                column: loc.column(),
                message,
            }
        }
        None => SpecError::Invalid {
            path: path.to_owned(),
            field: "(document)".into(),
            message: full,
        },
    }
}

fn strip_locations(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find(" at line ") {
        out.push_str(&rest[..at]);
        let tail = &rest[at + " at line ".len()..];
        let digits = |s: &str| s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let n = digits(tail);
        match tail[n..].strip_prefix(" column ") {
            Some(col) if n > 0 => rest = &col[digits(col)..],
            _ => {
                out.push_str(" at line ");
                rest = tail;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Joins `relative` to `base` and removes `.` and `..` segments without touching the
/// file system, so paths in messages read as a person would write them.
pub fn join_clean(base: &Path, relative: &str) -> PathBuf {
    use std::path::Component as C;
    let mut out = PathBuf::new();
    for part in base.join(relative).components() {
        match part {
            C::CurDir => {}
            C::ParentDir => match out.components().next_back() {
                Some(C::Normal(_)) => {
                    out.pop();
                }
                Some(C::RootDir) => {}
                _ => out.push(".."),
            },
            other => out.push(other),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

/// `sha256:<hex>` of some bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// What kind of document a YAML file holds, judged by its top-level keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DocumentKind {
    Pipeline,
    Component,
    /// A pipeline compiled by the KFP SDK (`PipelineSpec` IR).
    KfpIr,
}

pub fn detect_kind(path: &Path) -> Result<DocumentKind, SpecError> {
    let text = read(path)?;
    // A compiled KFP pipeline may carry a second document (platform settings).
    let first = serde_yaml_ng::Deserializer::from_str(&text).next();
    let value: serde_yaml_ng::Value = match first {
        Some(doc) => {
            use serde::Deserialize;
            serde_yaml_ng::Value::deserialize(doc).map_err(|e| yaml_error(path, e))?
        }
        None => serde_yaml_ng::Value::Null,
    };
    let has = |key: &str| value.get(key).is_some();
    if has("implementation") {
        Ok(DocumentKind::Component)
    } else if has("tasks") {
        Ok(DocumentKind::Pipeline)
    } else if has("pipelineInfo") || has("deploymentSpec") {
        Ok(DocumentKind::KfpIr)
    } else if value
        .get("apiVersion")
        .and_then(|v| v.as_str())
        .is_some_and(|v| v.starts_with("argoproj.io/"))
    {
        Err(SpecError::Invalid {
            path: path.to_owned(),
            field: "apiVersion".into(),
            message: "an Argo Workflow, as KFP v1's compiler wrote pipelines: Sluice runs pipelines compiled by the KFP v2 SDK (recompile with kfp 2.x) and KFP v1 component files".into(),
        })
    } else {
        Err(SpecError::Invalid {
            path: path.to_owned(),
            field: "(document)".into(),
            message: "expected a pipeline (with `tasks`), a component (with `implementation`) or a pipeline compiled by the KFP SDK (with `pipelineInfo`)".into(),
        })
    }
}

fn read(path: &Path) -> Result<String, SpecError> {
    crate::files::read_text_limited(path, crate::files::SPEC_FILE_MAX, crate::files::Follow::Yes)
        .map_err(|source| SpecError::Read {
            path: path.to_owned(),
            source,
        })
}

/// A pipeline file with the component files its tasks name.
#[derive(Debug)]
pub struct PipelineFile {
    pub path: PathBuf,
    pub spec: PipelineSpec,
    /// `sha256:` digest of the pipeline file's bytes.
    pub digest: String,
    /// Each task's component, or why it could not be loaded.
    pub components: IndexMap<String, Result<Arc<Component>, Arc<SpecError>>>,
}

impl PipelineFile {
    /// Reads a pipeline and every component file it names (each file once).
    /// A component that fails to load is kept as an error for `plan` to report
    /// against its task, so one run of `validate` shows every problem.
    pub fn load(path: &Path) -> Result<PipelineFile, SpecError> {
        PipelineFile::load_with(path, &HashMap::new())
    }

    /// Like [`PipelineFile::load`], with the component files of tasks that name a
    /// registry component (`oci://...`), as pulled beforehand.
    pub fn load_with(
        path: &Path,
        pulled: &HashMap<String, PathBuf>,
    ) -> Result<PipelineFile, SpecError> {
        let text = read(path)?;
        let spec: PipelineSpec = from_yaml(path, &text)?;
        let base = path.parent().unwrap_or(Path::new(""));
        let mut by_path: HashMap<PathBuf, Result<Arc<Component>, Arc<SpecError>>> = HashMap::new();
        let mut components = IndexMap::new();
        for (name, task) in &spec.tasks {
            let file = if crate::oci::is_reference(&task.component) {
                match pulled.get(&task.component) {
                    Some(file) => file.clone(),
                    None => {
                        let error = SpecError::Invalid {
                            path: path.to_owned(),
                            field: format!("tasks.{name}.component"),
                            message: format!(
                                "{} is in a registry; `sluice run` pulls it",
                                task.component
                            ),
                        };
                        components.insert(name.clone(), Err(Arc::new(error)));
                        continue;
                    }
                }
            } else {
                join_clean(base, &task.component)
            };
            let loaded = by_path
                .entry(file.clone())
                .or_insert_with(|| Component::load(&file).map(Arc::new).map_err(Arc::new))
                .clone();
            components.insert(name.clone(), loaded);
        }
        Ok(PipelineFile {
            path: path.to_owned(),
            digest: sha256_hex(text.as_bytes()),
            spec,
            components,
        })
    }

    /// The folder relative paths in the pipeline are resolved against.
    pub fn base_dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new(""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_taken_out_of_messages() {
        assert_eq!(
            strip_locations(
                "did not find expected ',' at line 4 column 4, while parsing a flow mapping at line 3 column 6"
            ),
            "did not find expected ',', while parsing a flow mapping"
        );
        assert_eq!(
            strip_locations("ends at line breaks"),
            "ends at line breaks"
        );
    }

    #[test]
    fn paths_are_cleaned_lexically() {
        assert_eq!(
            join_clean(Path::new("a/b"), "../c/./d.yaml"),
            Path::new("a/c/d.yaml")
        );
        assert_eq!(join_clean(Path::new("a"), "../../x"), Path::new("../x"));
        assert_eq!(join_clean(Path::new("/a"), "../../x"), Path::new("/x"));
        assert_eq!(join_clean(Path::new(""), "x.yaml"), Path::new("x.yaml"));
    }

    #[test]
    fn syntax_errors_carry_line_and_column() {
        let err =
            from_yaml::<PipelineSpec>(Path::new("p.yaml"), "name: p\ntasks:\n  a: {component: x\n")
                .unwrap_err()
                .to_string();
        assert!(err.starts_with("p.yaml:4:1: "), "{err}");
    }

    #[test]
    fn type_errors_carry_their_field_path() {
        let err = from_yaml::<PipelineSpec>(
            Path::new("p.yaml"),
            "name: p\ntasks:\n  a:\n    component: c.yaml\n    retries: lots\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("p.yaml:4:"), "{err}");
        assert!(err.contains("tasks.a: retries: expected a count"), "{err}");
    }

    #[test]
    fn resource_errors_name_their_field_at_its_value() {
        for (field, value, expected) in [
            (
                "memory",
                "-5Mi",
                "expected a memory quantity such as 512Mi or 2G, found '-5Mi'",
            ),
            ("ephemeral_storage", "1.5.3Gi", "expected a memory quantity"),
            (
                "cpu",
                "0",
                "expected CPU cores such as 2, 0.5 or 500m, found '0'",
            ),
            (
                "cpu_time",
                "soon",
                "expected a duration such as 30s, 5m or 250ms, found 'soon'",
            ),
            (
                "open_files",
                "0",
                "expected a number of open files from 1 to 4294967295, found '0'",
            ),
            (
                "open_files",
                "-1",
                "expected a number of open files from 1 to 4294967295, found '-1'",
            ),
            (
                "open_files",
                "[]",
                "invalid type: sequence, expected a number of open files",
            ),
        ] {
            let text = format!(
                "name: p\ntasks:\n  a:\n    component: c.yaml\n    resources:\n      {field}: {value}\n"
            );
            let err = from_yaml::<PipelineSpec>(Path::new("p.yaml"), &text)
                .unwrap_err()
                .to_string();
            let at = 9 + field.len();
            assert!(
                err.starts_with(&format!("p.yaml:6:{at}: ")),
                "{field}: {err}"
            );
            assert!(
                err.contains(&format!("tasks.a.resources.{field}: {expected}")),
                "{field}: {err}"
            );
        }
    }
}
