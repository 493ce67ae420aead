//! The part of Argo Workflows' `argoproj.io/v1alpha1` schema an export writes: field names
//! and shapes as Argo's Go types (`pkg/apis/workflow/v1alpha1`) serialize them, so that
//! `serde` writes exactly what `argo submit` and `kubectl create` read. Optional fields are
//! left out when empty.

use std::collections::BTreeMap;

use indexmap::IndexMap;
use serde::Serialize;

/// The API group and version of every exported document.
pub const API_VERSION: &str = "argoproj.io/v1alpha1";

fn is_false(b: &bool) -> bool {
    !b
}

/// A `Workflow` or a `WorkflowTemplate` (same spec, different `kind`).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Workflow {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: WorkflowSpec,
}

#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generate_name: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowSpec {
    pub entrypoint: String,
    #[serde(skip_serializing_if = "Arguments::is_empty")]
    pub arguments: Arguments,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact_repository_ref: Option<ArtifactRepositoryRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<u32>,
    /// Secrets every pod pulls its images with.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,
    /// The template run after the workflow ends, whatever its phase.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_exit: Option<String>,
    /// Kubernetes volumes (`emptyDir` here), as JSON.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<serde_json::Value>,
    pub templates: Vec<Template>,
}

/// A Kubernetes object of the namespace, by name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct LocalObjectReference {
    pub name: String,
}

/// Names an artifact repository of the cluster: a key of a `ConfigMap`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactRepositoryRef {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_map: Option<String>,
    pub key: String,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Arguments {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<Parameter>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<Artifact>,
}

impl Arguments {
    pub fn is_empty(&self) -> bool {
        self.parameters.is_empty() && self.artifacts.is_empty()
    }

    /// Passes `name`: an artifact `from` the expression (nothing when it is `optional`
    /// and missing), or a parameter of its value.
    pub fn pass(&mut self, name: &str, artifact: bool, expr: &str, optional: bool) {
        if artifact {
            self.artifacts.push(Artifact {
                name: name.to_owned(),
                from: Some(expr.to_owned()),
                optional,
                ..Artifact::default()
            });
        } else {
            self.parameters.push(Parameter {
                name: name.to_owned(),
                value: Some(expr.to_owned()),
                ..Parameter::default()
            });
        }
    }
}

#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Parameter {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_from: Option<ValueFrom>,
}

/// Where an output parameter's value comes from.
#[derive(Clone, Debug, Serialize)]
pub struct ValueFrom {
    /// A file in the main container whose content is the value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// A parameter of the DAG's tasks (`{{tasks.X.outputs.parameters.Y}}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameter: Option<String>,
}

impl ValueFrom {
    pub fn path(path: String) -> ValueFrom {
        ValueFrom {
            path: Some(path),
            parameter: None,
        }
    }

    pub fn parameter(parameter: String) -> ValueFrom {
        ValueFrom {
            path: None,
            parameter: Some(parameter),
        }
    }
}

/// An artifact: declared by a template (`path`), passed by a DAG task (`from`), or given
/// by a location (`raw`, `http`, `s3`, `gcs`).
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Artifact {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(skip_serializing_if = "is_false")]
    pub optional: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archive: Option<ArchiveStrategy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw: Option<RawArtifact>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpArtifact>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3: Option<BucketKey>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gcs: Option<BucketKey>,
}

/// How an output artifact is stored: `none: {}` keeps a file as it is (no tarball).
#[derive(Clone, Debug, Serialize)]
pub struct ArchiveStrategy {
    pub none: serde_json::Map<String, serde_json::Value>,
}

impl ArchiveStrategy {
    pub fn none() -> ArchiveStrategy {
        ArchiveStrategy {
            none: serde_json::Map::new(),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct RawArtifact {
    pub data: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct HttpArtifact {
    pub url: String,
}

/// An object in a bucket; without `bucket`, the artifact repository's.
#[derive(Clone, Debug, Serialize)]
pub struct BucketKey {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    pub key: String,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Inputs {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<Parameter>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<Artifact>,
}

impl Inputs {
    pub fn is_empty(&self) -> bool {
        self.parameters.is_empty() && self.artifacts.is_empty()
    }
}

pub type Outputs = Inputs;

#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Template {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<TemplateMeta>,
    #[serde(skip_serializing_if = "Inputs::is_empty")]
    pub inputs: Inputs,
    #[serde(skip_serializing_if = "Inputs::is_empty")]
    pub outputs: Outputs,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dag: Option<DagTemplate>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub init_containers: Vec<Container>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<Container>,
    /// Most tasks of this template (a DAG's, or a loop's iterations) running at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_strategy: Option<RetryStrategy>,
    /// Seconds an attempt may run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_deadline_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memoize: Option<Memoize>,
    /// Kubernetes volumes of the template's pod, as JSON.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<serde_json::Value>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Kubernetes tolerations, as JSON.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<serde_json::Value>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct TemplateMeta {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DagTemplate {
    pub tasks: Vec<DagTask>,
}

#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DagTask {
    pub name: String,
    pub template: String,
    #[serde(skip_serializing_if = "Arguments::is_empty")]
    pub arguments: Arguments,
    /// Argo's dependency expression (`a && (b.Succeeded || b.Failed)`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub depends: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub with_param: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub with_items: Option<Vec<serde_json::Value>>,
}

#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub image: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    #[serde(skip_serializing_if = "Resources::is_empty")]
    pub resources: Resources,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volume_mounts: Vec<VolumeMount>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvVar {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Where the value comes from instead (`{"secretKeyRef": {"name", "key"}}`), as JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_from: Option<serde_json::Value>,
}

/// Kubernetes quantities by resource name (`memory`, `cpu`, `nvidia.com/gpu`).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Resources {
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub requests: IndexMap<String, String>,
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub limits: IndexMap<String, String>,
}

impl Resources {
    pub fn is_empty(&self) -> bool {
        self.requests.is_empty() && self.limits.is_empty()
    }
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeMount {
    pub name: String,
    pub mount_path: String,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryStrategy {
    /// Retries after the first attempt.
    pub limit: u32,
    /// `Always`: a pod that errored (its node went away) is retried too, as Sluice does.
    pub retry_policy: String,
    pub backoff: Backoff,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Backoff {
    /// The first delay, as a Go duration (`1s`).
    pub duration: String,
    pub factor: u32,
    /// The longest delay between two attempts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cap: Option<String>,
}

/// Argo's memoization: outputs of a template by key, kept in a `ConfigMap`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Memoize {
    pub key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_age: Option<String>,
    pub cache: MemoizeCache,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoizeCache {
    pub config_map: ConfigMapKeySelector,
}

#[derive(Clone, Debug, Serialize)]
pub struct ConfigMapKeySelector {
    pub name: String,
}
