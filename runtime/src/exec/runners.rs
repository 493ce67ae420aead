//! Which implementation runs each task, and why. A component may carry both `wasm` and
//! `container`: wasm runs by default; the container runs when the task requests
//! accelerators, asks for more memory than a wasm step can have, when the user or the
//! pipeline prefers it, or when the wasm implementation cannot be loaded. Containers run in
//! Docker, or directly on the host with `--runner process` (never chosen silently). Docker
//! is contacted only when some task needs it, so wasm-only pipelines run without it.

use std::collections::HashMap;
use std::sync::Arc;

use futures::future::BoxFuture;

use super::docker::{DockerConfig, DockerExecutor};
use super::process::ProcessExecutor;
use super::wasm::WasmExecutor;
use super::{Executor, Failure, Invocation, Kind, PrepareError, Prepared, Report, Target};
use crate::error_chain;
use crate::spec::{ByteSize, Prefer};

/// How container implementations run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ContainerRunner {
    #[default]
    Docker,
    /// On the host, without isolation, like KFP's SubprocessRunner.
    Process,
}

impl std::str::FromStr for ContainerRunner {
    type Err = String;
    fn from_str(s: &str) -> Result<ContainerRunner, String> {
        match s {
            "docker" => Ok(ContainerRunner::Docker),
            "process" => Ok(ContainerRunner::Process),
            other => Err(format!("expected docker or process, found '{other}'")),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Policy {
    pub runner: ContainerRunner,
    /// `--prefer` for every task.
    pub prefer: Option<Prefer>,
    /// `--prefer task=...`, which wins over everything else.
    pub prefer_tasks: HashMap<String, Prefer>,
    /// The most memory a wasm step can have; a task asking for more needs a container.
    pub wasm_max_memory: u64,
    pub docker: DockerConfig,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            runner: ContainerRunner::Docker,
            prefer: None,
            prefer_tasks: HashMap::new(),
            // wasm32 addresses at most 4 GiB.
            wasm_max_memory: 4 << 30,
            docker: DockerConfig::default(),
        }
    }
}

/// The first decision, before anything is loaded.
#[derive(Debug, PartialEq, Eq)]
enum Want {
    Wasm { reason: String, required: bool },
    Container { reason: String },
}

fn want(target: &Target<'_>, policy: &Policy) -> Result<Want, String> {
    let imp = &target.component.spec.implementation;
    let (has_wasm, has_container) = (imp.wasm.is_some(), imp.container.is_some());
    let only_container = |reason: String| {
        if has_container {
            Ok(Want::Container { reason })
        } else {
            Err(format!(
                "{reason}, but component '{}' has no container implementation",
                target.component.name()
            ))
        }
    };
    if let Some(acc) = &target.resources.accelerator {
        return only_container(format!("the task requests {} {}", acc.count, acc.kind));
    }
    if let Some(memory) = target.resources.memory
        && memory.0 > policy.wasm_max_memory
    {
        return only_container(format!(
            "the task asks for {memory} of memory, more than a wasm step can have ({})",
            ByteSize(policy.wasm_max_memory)
        ));
    }
    let (preference, source) = match (
        policy.prefer_tasks.get(target.task),
        policy.prefer,
        target.prefer,
    ) {
        (Some(p), _, _) => (Some(*p), format!("--prefer {}={p}", target.task)),
        (None, Some(p), _) => (Some(p), format!("--prefer {p}")),
        (None, None, Some(p)) => (Some(p), format!("the pipeline prefers {p} for this task")),
        (None, None, None) => (None, String::new()),
    };
    Ok(match (preference, has_wasm, has_container) {
        (Some(Prefer::Container), _, true) => Want::Container { reason: source },
        (Some(Prefer::Wasm), true, _) => Want::Wasm {
            reason: source,
            required: true,
        },
        (Some(Prefer::Container), _, false) => Want::Wasm {
            reason: format!("{source}, but the component has only wasm"),
            required: true,
        },
        (Some(Prefer::Wasm), false, _) => Want::Container {
            reason: format!("{source}, but the component has only a container"),
        },
        (None, true, _) => Want::Wasm {
            reason: "wasm runs by default".into(),
            required: !has_container,
        },
        (None, false, _) => Want::Container {
            reason: "the component has no wasm implementation".into(),
        },
    })
}

/// The executor the scheduler uses: decides per task, then hands each attempt to the
/// wasm, Docker or process executor.
pub struct Runners {
    wasm: Arc<WasmExecutor>,
    docker: tokio::sync::OnceCell<Arc<DockerExecutor>>,
    process: ProcessExecutor,
    policy: Policy,
}

impl Runners {
    pub fn new(wasm: Arc<WasmExecutor>, policy: Policy) -> Runners {
        Runners {
            wasm,
            docker: tokio::sync::OnceCell::new(),
            process: ProcessExecutor::default(),
            policy,
        }
    }

    async fn docker(&self) -> Result<&Arc<DockerExecutor>, PrepareError> {
        self.docker
            .get_or_try_init(|| async {
                DockerExecutor::connect(self.policy.docker.clone())
                    .await
                    .map(Arc::new)
            })
            .await
    }

    async fn container(
        &self,
        target: Target<'_>,
        reason: String,
    ) -> Result<Prepared, PrepareError> {
        let mut prepared = match self.policy.runner {
            ContainerRunner::Docker => self.docker().await?.prepare(target).await?,
            ContainerRunner::Process => self.process.prepare(target).await?,
        };
        prepared.reason = reason;
        Ok(prepared)
    }
}

impl Runners {
    /// How a task would run, deciding as `prepare` does and loading wasm components (to
    /// read their interfaces), but without contacting Docker or pulling anything.
    pub async fn describe(&self, target: Target<'_>) -> Result<Prepared, PrepareError> {
        let container = |reason: String| {
            let image = target
                .component
                .spec
                .implementation
                .container
                .as_ref()
                .map_or("", |c| c.image.as_str());
            let kind = match self.policy.runner {
                ContainerRunner::Docker => Kind::Container,
                ContainerRunner::Process => Kind::Process,
            };
            Prepared {
                kind,
                implementation: format!("container {image}"),
                reason,
                executable_digest: None,
                transform: None,
            }
        };
        match want(&target, &self.policy).map_err(|message| PrepareError::Other { message })? {
            Want::Container { reason } => Ok(container(reason)),
            Want::Wasm { reason, required } => match self.wasm.prepare(target).await {
                Ok(mut prepared) => {
                    prepared.reason = reason;
                    Ok(prepared)
                }
                Err(e) if !required => Ok(container(format!(
                    "the wasm implementation cannot be loaded: {}",
                    error_chain(&e)
                ))),
                Err(e) => Err(e),
            },
        }
    }
}

impl Executor for Runners {
    fn prepare<'a>(&'a self, target: Target<'a>) -> BoxFuture<'a, Result<Prepared, PrepareError>> {
        Box::pin(async move {
            match want(&target, &self.policy).map_err(|message| PrepareError::Other { message })? {
                Want::Container { reason } => self.container(target, reason).await,
                Want::Wasm { reason, required } => match self.wasm.prepare(target).await {
                    Ok(mut prepared) => {
                        prepared.reason = reason;
                        Ok(prepared)
                    }
                    Err(e) if !required => {
                        let reason = format!(
                            "the wasm implementation cannot be loaded: {}",
                            error_chain(&e)
                        );
                        self.container(target, reason).await
                    }
                    Err(e) => Err(e),
                },
            }
        })
    }

    fn times_itself(&self, prepared: &Prepared) -> bool {
        prepared.kind == Kind::Wasm && self.wasm.times_itself(prepared)
    }

    fn execute(&self, inv: Invocation) -> BoxFuture<'_, Report> {
        Box::pin(async move {
            match inv.prepared.kind {
                Kind::Wasm => self.wasm.execute(inv).await,
                Kind::Process => self.process.execute(inv).await,
                Kind::Container => match self.docker().await {
                    Ok(docker) => docker.execute(inv).await,
                    Err(e) => Report {
                        ran_on: None,
                        result: Err(Failure::failed(error_chain(&e))),
                        logs: Vec::new(),
                    },
                },
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::spec::{Component, ResourceSpec};

    const BOTH: &str =
        "name: both\nimplementation:\n  wasm: {component: x.wasm}\n  container: {image: x}\n";
    const WASM: &str = "name: wasm\nimplementation:\n  wasm: {component: x.wasm}\n";
    const CONTAINER: &str = "name: container\nimplementation:\n  container: {image: x}\n";

    fn decide(
        yaml: &str,
        resources: &str,
        prefer: Option<Prefer>,
        policy: &Policy,
    ) -> Result<Want, String> {
        let component = Component::parse(Path::new("c.yaml"), yaml).unwrap();
        let resources: ResourceSpec = serde_yaml_ng::from_str(resources).unwrap();
        want(
            &Target {
                task: "t",
                component: &component,
                resources: &resources,
                prefer,
            },
            policy,
        )
    }

    fn container(reason: &str) -> Result<Want, String> {
        Ok(Want::Container {
            reason: reason.into(),
        })
    }

    #[test]
    fn wasm_by_default() {
        let p = Policy::default();
        assert_eq!(
            decide(BOTH, "{}", None, &p),
            Ok(Want::Wasm {
                reason: "wasm runs by default".into(),
                required: false
            })
        );
        assert_eq!(
            decide(WASM, "{}", None, &p),
            Ok(Want::Wasm {
                reason: "wasm runs by default".into(),
                required: true
            })
        );
        assert_eq!(
            decide(CONTAINER, "{}", None, &p),
            container("the component has no wasm implementation")
        );
    }

    #[test]
    fn accelerators_and_big_memory_need_a_container() {
        let p = Policy::default();
        assert_eq!(
            decide(BOTH, "{accelerator: {type: nvidia.com/gpu}}", None, &p),
            container("the task requests 1 nvidia.com/gpu")
        );
        assert_eq!(
            decide(BOTH, "{memory: 8Gi}", None, &p),
            container("the task asks for 8Gi of memory, more than a wasm step can have (4Gi)")
        );
        assert_eq!(
            decide(WASM, "{memory: 8Gi}", None, &p),
            Err("the task asks for 8Gi of memory, more than a wasm step can have (4Gi), but component 'wasm' has no container implementation".into())
        );
        assert!(matches!(
            decide(BOTH, "{memory: 2Gi}", None, &p),
            Ok(Want::Wasm { .. })
        ));
    }

    #[test]
    fn preferences_from_the_command_line_win() {
        let mut p = Policy::default();
        assert_eq!(
            decide(BOTH, "{}", Some(Prefer::Container), &p),
            container("the pipeline prefers container for this task")
        );
        p.prefer = Some(Prefer::Wasm);
        assert!(matches!(
            decide(BOTH, "{}", Some(Prefer::Container), &p),
            Ok(Want::Wasm { .. })
        ));
        p.prefer_tasks.insert("t".into(), Prefer::Container);
        assert_eq!(
            decide(BOTH, "{}", None, &p),
            container("--prefer t=container")
        );
        p.prefer_tasks.clear();
        p.prefer = Some(Prefer::Container);
        assert_eq!(
            decide(BOTH, "{}", None, &p),
            container("--prefer container")
        );
        assert_eq!(
            decide(WASM, "{}", None, &p),
            Ok(Want::Wasm {
                reason: "--prefer container, but the component has only wasm".into(),
                required: true
            })
        );
    }
}
