//! Docker executor: container lifecycle for `implementation.container` steps, through the
//! Docker Engine API (bollard). The only module that talks to Docker; it never imports
//! wasmtime. Inputs are mounted read-only at `/tmp/inputs/<name>/data`, outputs read-write
//! at `/tmp/outputs/<name>/data`, as KFP's local runners lay them out; what a container
//! leaves there is collected into the store by `exec::collect_outputs`, like any executor's.
//! Every container is labelled with its run, task and process, and removed after its task
//! (unless kept for debugging); containers of Sluice processes that died are swept away
//! when the next one connects.

use std::collections::HashMap;
use std::path::{Component as PathPart, Path, PathBuf};
use std::sync::{Arc, Mutex};

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::models::{ContainerCreateBody, DeviceRequest, HostConfig, Mount, MountType};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, DownloadFromContainerOptions, KillContainerOptions,
    ListContainersOptions, LogsOptions, RemoveContainerOptions,
};
use futures::StreamExt;
use futures::future::BoxFuture;

use super::capture::StdStreams;
use super::{
    Completion, Executor, Failure, FailureKind, Invocation, Kind, Paths, PrepareError, Prepared,
    Report, Target, expand_args,
};
use crate::spec::ContainerSpec;
use crate::spec::resources::Accelerator;

/// Where a container finds its inputs and outputs.
pub const CONTAINER_INPUTS: &str = "/tmp/inputs";
pub const CONTAINER_OUTPUTS: &str = "/tmp/outputs";

/// When to pull an image.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PullPolicy {
    /// Pull only images the engine does not have.
    #[default]
    IfNotPresent,
    Always,
    /// Never pull; an image the engine lacks is an error.
    Never,
}

impl std::str::FromStr for PullPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<PullPolicy, String> {
        match s {
            "if-not-present" => Ok(PullPolicy::IfNotPresent),
            "always" => Ok(PullPolicy::Always),
            "never" => Ok(PullPolicy::Never),
            other => Err(format!(
                "expected if-not-present, always or never, found '{other}'"
            )),
        }
    }
}

impl std::fmt::Display for PullPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PullPolicy::IfNotPresent => "if-not-present",
            PullPolicy::Always => "always",
            PullPolicy::Never => "never",
        })
    }
}

#[derive(Clone, Debug)]
pub struct DockerConfig {
    pub pull: PullPolicy,
    /// Leave each task's container in place (stopped) for debugging.
    pub keep_containers: bool,
    /// Bytes kept of the beginning and of the end of each output stream.
    pub log_keep: usize,
}

impl Default for DockerConfig {
    fn default() -> Self {
        DockerConfig {
            pull: PullPolicy::IfNotPresent,
            keep_containers: false,
            log_keep: super::capture::DEFAULT_KEEP,
        }
    }
}

/// Labels put on every container Sluice creates.
pub const LABEL_RUN: &str = "sluice.run";
pub const LABEL_TASK: &str = "sluice.task";
pub const LABEL_PID: &str = "sluice.pid";
/// That process's start tick ([`crate::process_start_ticks`]): another process with its
/// id (a container's pid 1, an id reused) is not taken for it.
pub const LABEL_PID_START: &str = "sluice.pid-start";
/// On containers kept by `--keep-containers`, which the sweep leaves alone.
pub const LABEL_KEEP: &str = "sluice.keep";

pub struct DockerExecutor {
    docker: Docker,
    endpoint: String,
    config: DockerConfig,
    /// Image ids by reference, each looked up (or pulled) once.
    images: Mutex<HashMap<String, Arc<tokio::sync::OnceCell<String>>>>,
}

fn endpoint() -> String {
    std::env::var("DOCKER_HOST")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unix:///var/run/docker.sock".into())
}

/// A client of the engine at [`endpoint`]: `DOCKER_HOST` when it is set and not empty
/// (as the Docker CLI reads it), else the local socket.
fn connect() -> Result<Docker, bollard::errors::Error> {
    match std::env::var("DOCKER_HOST") {
        Ok(host) if !host.is_empty() => Docker::connect_with_defaults(),
        _ => Docker::connect_with_socket_defaults(),
    }
}

impl DockerExecutor {
    /// Connects to the engine at `DOCKER_HOST` (default: the local Unix socket), agrees on
    /// an API version, and removes containers left by Sluice processes that died.
    pub async fn connect(config: DockerConfig) -> Result<DockerExecutor, PrepareError> {
        let endpoint = endpoint();
        let unreachable = |e: bollard::errors::Error| PrepareError::Unreachable {
            service: format!("the Docker Engine at {endpoint}"),
            detail: format!("{e}; is the Docker daemon running?"),
        };
        let docker = connect().map_err(unreachable)?;
        let docker = docker.negotiate_version().await.map_err(unreachable)?;
        docker.ping().await.map_err(unreachable)?;
        let executor = DockerExecutor {
            docker,
            endpoint,
            config,
            images: Mutex::new(HashMap::new()),
        };
        executor.sweep_orphans().await;
        Ok(executor)
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Removes containers whose Sluice process is gone (killed before it could clean up),
    /// except those kept on purpose.
    async fn sweep_orphans(&self) {
        let options = ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([(
                "label".to_owned(),
                vec![LABEL_PID.to_owned()],
            )])),
            ..Default::default()
        };
        let Ok(containers) = self.docker.list_containers(Some(options)).await else {
            return;
        };
        for c in containers {
            let labels = c.labels.unwrap_or_default();
            if labels.contains_key(LABEL_KEEP) {
                continue;
            }
            let pid = labels.get(LABEL_PID).and_then(|p| p.parse::<u32>().ok());
            let start = labels
                .get(LABEL_PID_START)
                .and_then(|t| t.parse::<u64>().ok());
            if let (Some(pid), Some(id)) = (pid, c.id)
                && !crate::process_alive(pid, None, start)
            {
                let _ = self.remove(&id).await;
            }
        }
    }

    /// The id of `reference`, pulling it as the pull policy says.
    async fn image(&self, reference: &str) -> Result<String, PrepareError> {
        let cell = self
            .images
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(reference.to_owned())
            .or_default()
            .clone();
        cell.get_or_try_init(|| async {
            let present = self.docker.inspect_image(reference).await.ok();
            let pull = match (self.config.pull, &present) {
                (PullPolicy::Always, _) | (PullPolicy::IfNotPresent, None) => true,
                (PullPolicy::Never, None) => {
                    return Err(PrepareError::Other {
                        message: format!(
                            "image '{reference}' is not present in the Docker Engine, and the pull policy is never"
                        ),
                    });
                }
                _ => false,
            };
            if pull {
                let options = CreateImageOptions {
                    from_image: Some(reference.to_owned()),
                    ..Default::default()
                };
                let mut progress = self.docker.create_image(Some(options), None, None);
                while let Some(step) = progress.next().await {
                    if let Err(e) = step {
                        if registry_unreachable(&e) {
                            return Err(PrepareError::Unreachable {
                                service: format!("the registry of image '{reference}'"),
                                detail: e.to_string(),
                            });
                        }
                        return Err(PrepareError::Other {
                            message: format!(
                                "image '{reference}' is not present in the Docker Engine and cannot be pulled: {e}"
                            ),
                        });
                    }
                }
            }
            let image = self
                .docker
                .inspect_image(reference)
                .await
                .map_err(|e| PrepareError::Other {
                    message: format!("cannot inspect image '{reference}': {e}"),
                })?;
            Ok(image.id.unwrap_or_else(|| reference.to_owned()))
        })
        .await
        .cloned()
    }

    async fn remove(&self, id: &str) -> Result<(), bollard::errors::Error> {
        let options = RemoveContainerOptions {
            force: true,
            v: true,
            ..Default::default()
        };
        self.docker.remove_container(id, Some(options)).await
    }

    /// Whether the engine can give containers NVIDIA GPUs.
    async fn has_gpu_runtime(&self) -> bool {
        match self.docker.info().await {
            Ok(info) => info
                .runtimes
                .is_some_and(|r| r.keys().any(|k| k.contains("nvidia"))),
            Err(_) => false,
        }
    }

    async fn run(&self, inv: &Invocation, io: &StdStreams) -> Result<Completion, Failure> {
        let spec = inv
            .component
            .spec
            .implementation
            .container
            .as_ref()
            .ok_or_else(|| Failure::failed("the component has no container implementation"))?;
        let image = self
            .image(&spec.image)
            .await
            .map_err(|e| Failure::failed(e.to_string()))?;
        // What runs is the image that was prepared and is recorded, not one the tag
        // names since.
        if let Some(prepared) = &inv.prepared.executable_digest
            && *prepared != image
        {
            return Err(Failure {
                kind: FailureKind::InvalidInput,
                message: format!(
                    "image {} changed since the run prepared it (prepared {prepared}, now {image})",
                    spec.image
                ),
            });
        }
        let mut body = container_body(inv, spec, &image)?;
        if self.config.keep_containers
            && let Some(labels) = body.labels.as_mut()
        {
            labels.insert(LABEL_KEEP.to_owned(), "true".to_owned());
        }
        open_outputs(&inv.dir.outputs())?;

        let name = container_name(&inv.run_id, &inv.task, inv.attempt);
        let options = CreateContainerOptions {
            name: Some(name.clone()),
            ..Default::default()
        };
        let created = self
            .docker
            .create_container(Some(options), body)
            .await
            .map_err(|e| Failure::failed(format!("cannot create the container: {e}")))?;
        let id = created.id;
        let result = self.run_created(&id, &name, inv, spec, io).await;
        if !self.config.keep_containers {
            let _ = self.remove(&id).await;
        }
        result
    }

    async fn run_created(
        &self,
        id: &str,
        name: &str,
        inv: &Invocation,
        spec: &ContainerSpec,
        io: &StdStreams,
    ) -> Result<Completion, Failure> {
        if let Some(acc) = &inv.resources.accelerator
            && !self.has_gpu_runtime().await
        {
            return Err(Failure::failed(format!(
                "the task requests {} {}, but the Docker Engine at {} has no GPU runtime (the NVIDIA Container Toolkit is not installed)",
                acc.count, acc.kind, self.endpoint
            )));
        }
        self.docker
            .start_container(id, None)
            .await
            .map_err(|e| Failure::failed(format!("cannot start container {name}: {e}")))?;

        let mut logs = self.docker.logs(
            id,
            Some(LogsOptions {
                follow: true,
                stdout: true,
                stderr: true,
                ..Default::default()
            }),
        );
        let (stdout, stderr) = (io.stdout.clone(), io.stderr.clone());
        let copy_logs = async move {
            while let Some(Ok(chunk)) = logs.next().await {
                match chunk {
                    LogOutput::StdErr { message } => stderr.write(&message),
                    LogOutput::StdOut { message } | LogOutput::Console { message } => {
                        stdout.write(&message)
                    }
                    LogOutput::StdIn { .. } => {}
                }
            }
        };
        let mut wait = self.docker.wait_container(id, None);
        let waited = async {
            match wait.next().await {
                Some(Ok(response)) => Ok(response.status_code),
                Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => {
                    Ok(code)
                }
                Some(Err(e)) => Err(e.to_string()),
                None => Err("the engine stopped reporting on the container".to_owned()),
            }
        };
        let (code, ()) = tokio::select! {
            both = async { tokio::join!(waited, copy_logs) } => both,
            _ = inv.cancel.cancelled() => {
                let kill = KillContainerOptions { signal: "SIGKILL".into() };
                let _ = self.docker.kill_container(id, Some(kill)).await;
                return Err(Failure::interrupted("interrupted"));
            }
        };
        let code =
            code.map_err(|e| Failure::failed(format!("waiting for container {name}: {e}")))?;

        let state = self
            .docker
            .inspect_container(id, None)
            .await
            .ok()
            .and_then(|c| c.state);
        if state.as_ref().and_then(|s| s.oom_killed) == Some(true) {
            let limit = inv
                .resources
                .memory
                .map(|m| format!(" (limit {m})"))
                .unwrap_or_default();
            return Err(Failure::failed(format!(
                "killed for running out of memory{limit}"
            )));
        }
        if code != 0 {
            return Err(Failure::failed(
                io.explain(format!("exited with code {code}")),
            ));
        }
        for (output, path) in &spec.file_outputs {
            self.copy_out(id, path, &inv.dir.output_file(output))
                .await
                .map_err(|m| Failure::failed(format!("output '{output}': {m}")))?;
        }
        Ok(Completion::default())
    }

    /// Copies `path` out of a stopped container to `dest` (a file or a folder), for KFP's
    /// `fileOutputs`.
    async fn copy_out(&self, id: &str, path: &str, dest: &Path) -> Result<(), String> {
        let options = DownloadFromContainerOptions {
            path: path.to_owned(),
        };
        let mut archive = Vec::new();
        let mut stream = self.docker.download_from_container(id, Some(options));
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(bytes) => archive.extend_from_slice(&bytes),
                Err(e) => return Err(format!("was not written at {path} ({e})")),
            }
        }
        unpack_single(&archive, dest)
    }
}

/// The container for one attempt: the component's command and arguments with container
/// paths, its environment, the task folder mounted, and the task's limits.
fn container_body(
    inv: &Invocation,
    spec: &ContainerSpec,
    image: &str,
) -> Result<ContainerCreateBody, Failure> {
    let absolute = |p: PathBuf| {
        std::path::absolute(&p)
            .map_err(|e| Failure::failed(format!("cannot resolve {}: {e}", p.display())))
    };
    inv.dir
        .ensure()
        .map_err(|e| Failure::failed(crate::error_chain(&e)))?;
    // A KFP step sees its folders at their host paths, as KFP's local Docker runner
    // mounts its pipeline root: the artifacts' `uri`s are then the same inside and out,
    // and stay valid after the step, for the run's later tasks and importers.
    let host_dir = match &inv.kfp {
        Some(_) => Some(crate::store::TaskDir {
            root: absolute(inv.dir.root.clone())?,
            outputs: absolute(inv.dir.outputs())?,
        }),
        None => None,
    };
    let paths = match &host_dir {
        Some(dir) => Paths::Host(dir),
        None => Paths::Under {
            inputs: CONTAINER_INPUTS,
            outputs: CONTAINER_OUTPUTS,
        },
    };
    let command = expand_args(inv, paths, &spec.command)?;
    let args = expand_args(inv, paths, &spec.args)?;
    let device_requests = match &inv.resources.accelerator {
        Some(acc) => Some(device_requests(acc).map_err(Failure::failed)?),
        None => None,
    };
    let mount = |source: PathBuf, target: &str, read_only: bool| Mount {
        source: Some(source.display().to_string()),
        target: Some(target.to_owned()),
        typ: Some(MountType::BIND),
        read_only: Some(read_only),
        ..Default::default()
    };
    let memory = inv.resources.memory.map(|m| m.0 as i64);
    Ok(ContainerCreateBody {
        image: Some(image.to_owned()),
        entrypoint: (!command.is_empty()).then_some(command.clone()),
        cmd: (!command.is_empty() || !args.is_empty()).then_some(args),
        env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        labels: Some(
            [
                (LABEL_RUN.to_owned(), inv.run_id.clone()),
                (LABEL_TASK.to_owned(), inv.task.clone()),
                (LABEL_PID.to_owned(), std::process::id().to_string()),
            ]
            .into_iter()
            .chain(
                crate::process_start_ticks(std::process::id())
                    .map(|t| (LABEL_PID_START.to_owned(), t.to_string())),
            )
            .collect(),
        ),
        host_config: Some(HostConfig {
            mounts: Some(match &host_dir {
                Some(dir) => {
                    let mut mounts = vec![mount(
                        dir.inputs(),
                        &dir.inputs().display().to_string(),
                        true,
                    )];
                    // Every artifact of the run so far, read-only; its own outputs'
                    // folder inside it, writable.
                    if let Some(published) = dir.outputs.parent() {
                        mounts.push(mount(
                            published.to_owned(),
                            &published.display().to_string(),
                            true,
                        ));
                    }
                    mounts.push(mount(
                        dir.outputs(),
                        &dir.outputs().display().to_string(),
                        false,
                    ));
                    mounts
                }
                None => vec![
                    mount(inv.dir.inputs(), CONTAINER_INPUTS, true),
                    mount(inv.dir.outputs(), CONTAINER_OUTPUTS, false),
                ],
            }),
            memory,
            memory_swap: memory,
            nano_cpus: inv.resources.cpu.map(|c| c.millicores as i64 * 1_000_000),
            device_requests,
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// The Docker device request for an accelerator: NVIDIA GPUs through the `nvidia` driver.
fn device_requests(acc: &Accelerator) -> Result<Vec<DeviceRequest>, String> {
    match acc.kind.as_str() {
        "nvidia.com/gpu" | "gpu" | "nvidia" => Ok(vec![DeviceRequest {
            driver: Some("nvidia".into()),
            count: Some(i64::from(acc.count)),
            capabilities: Some(vec![vec!["gpu".into()]]),
            ..Default::default()
        }]),
        other => Err(format!(
            "Docker containers cannot be given '{other}' accelerators; only nvidia.com/gpu is supported"
        )),
    }
}

/// Output folders are made writable for everyone: an image may run as any user.
fn open_outputs(outputs: &Path) -> Result<(), Failure> {
    use std::os::unix::fs::PermissionsExt;
    let mut folders = vec![outputs.to_owned()];
    if let Ok(entries) = std::fs::read_dir(outputs) {
        folders.extend(entries.flatten().map(|e| e.path()));
    }
    for folder in folders {
        std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o777)).map_err(|e| {
            Failure::failed(format!(
                "cannot open {} to the container: {e}",
                folder.display()
            ))
        })?;
    }
    Ok(())
}

/// A name Docker accepts and people can read: `sluice-<run>-<task>-<attempt>`.
fn container_name(run: &str, task: &str, attempt: u32) -> String {
    let clean: String = format!("sluice-{run}-{task}-{attempt}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    clean
}

/// Unpacks the one file or folder in a tar archive from the engine to `dest`, refusing
/// links, devices and paths that leave `dest`.
fn unpack_single(archive: &[u8], dest: &Path) -> Result<(), String> {
    let mut tar = tar::Archive::new(archive);
    let entries = tar
        .entries()
        .map_err(|e| format!("unreadable archive from the engine: {e}"))?;
    let mut any = false;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("unreadable archive from the engine: {e}"))?;
        let path = entry.path().map_err(|e| e.to_string())?.into_owned();
        // The archive's first component is the copied file or folder's own name.
        let mut rest = PathBuf::new();
        for part in path.components().skip(1) {
            match part {
                PathPart::Normal(p) => rest.push(p),
                PathPart::CurDir => {}
                _ => {
                    return Err(format!(
                        "the archive holds an unsafe path {}",
                        path.display()
                    ));
                }
            }
        }
        let target = if rest.as_os_str().is_empty() {
            dest.to_owned()
        } else {
            dest.join(&rest)
        };
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            std::fs::create_dir_all(&target).map_err(|e| e.to_string())?;
        } else if kind.is_file() {
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
            }
            let mut file = std::fs::File::create(&target).map_err(|e| e.to_string())?;
            std::io::copy(&mut entry, &mut file).map_err(|e| e.to_string())?;
        } else {
            return Err(format!(
                "{} is not a regular file or folder",
                path.display()
            ));
        }
        any = true;
    }
    if any {
        Ok(())
    } else {
        Err("the engine sent an empty archive".into())
    }
}

impl Executor for DockerExecutor {
    fn prepare<'a>(&'a self, target: Target<'a>) -> BoxFuture<'a, Result<Prepared, PrepareError>> {
        Box::pin(async move {
            let spec = target
                .component
                .spec
                .implementation
                .container
                .as_ref()
                .ok_or_else(|| PrepareError::Other {
                    message: format!(
                        "component '{}' has no container implementation",
                        target.component.name()
                    ),
                })?;
            if let Some(acc) = &target.resources.accelerator {
                device_requests(acc).map_err(|message| PrepareError::Other { message })?;
            }
            let id = self.image(&spec.image).await?;
            Ok(Prepared {
                kind: Kind::Container,
                implementation: format!("container {}", spec.image),
                reason: String::new(),
                executable_digest: Some(id),
                transform: None,
            })
        })
    }

    fn execute(&self, inv: Invocation) -> BoxFuture<'_, Report> {
        Box::pin(async move {
            let io = StdStreams::new(&inv.sink, self.config.log_keep);
            let result = self.run(&inv, &io).await;
            Report {
                ran_on: None,
                result,
                logs: io.finish(&[]),
            }
        })
    }
}

async fn engine() -> Result<Docker, String> {
    let endpoint = endpoint();
    let unreachable =
        |e: bollard::errors::Error| format!("cannot reach the Docker Engine at {endpoint} ({e})");
    let docker = connect().map_err(unreachable)?;
    docker.negotiate_version().await.map_err(unreachable)
}

/// Moving images between the Docker Engine and an archive failed.
#[derive(Debug, thiserror::Error)]
pub enum ImagesError {
    /// The engine did not answer: the environment's to fix.
    #[error("{0}")]
    Unreachable(String),
    #[error("image {name} is not in the Docker Engine, so it cannot be bundled")]
    Missing {
        name: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("exporting images failed")]
    Export(#[source] bollard::errors::Error),
    #[error("loading images failed")]
    Load(#[source] bollard::errors::Error),
}

/// Whether a failed pull failed because the registry could not be reached (the
/// environment's to fix), rather than because it refused or has no such image. The Engine
/// answers the first with a server error, or reports it in the pull's progress stream in
/// the words of Go's network errors.
fn registry_unreachable(e: &bollard::errors::Error) -> bool {
    use bollard::errors::Error;
    const NETWORK: &[&str] = &[
        "no such host",
        "connection refused",
        "i/o timeout",
        "TLS handshake timeout",
        "network is unreachable",
        "connection reset by peer",
        "Client.Timeout exceeded",
        "server misbehaving",
    ];
    match e {
        Error::DockerResponseServerError {
            status_code,
            message,
        } => *status_code >= 500 || NETWORK.iter().any(|n| message.contains(n)),
        Error::DockerStreamError { error } => NETWORK.iter().any(|n| error.contains(n)),
        _ => false,
    }
}

/// Container images as the engine exports them (`docker save`): one tar archive.
pub async fn save_images(names: &[String]) -> Result<Vec<u8>, ImagesError> {
    let docker = engine().await.map_err(ImagesError::Unreachable)?;
    for name in names {
        docker
            .inspect_image(name)
            .await
            .map_err(|source| ImagesError::Missing {
                name: name.clone(),
                source,
            })?;
    }
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut stream = docker.export_images(&refs);
    let mut archive = Vec::new();
    while let Some(chunk) = stream.next().await {
        archive.extend_from_slice(&chunk.map_err(ImagesError::Export)?);
    }
    Ok(archive)
}

/// Loads images from a `docker save` archive into the engine (`docker load`).
pub async fn load_images(archive: Vec<u8>) -> Result<(), ImagesError> {
    let docker = engine().await.map_err(ImagesError::Unreachable)?;
    let options = bollard::query_parameters::ImportImageOptionsBuilder::default()
        .quiet(true)
        .build();
    let mut stream = docker.import_image(options, bollard::body_full(archive.into()), None);
    while let Some(item) = stream.next().await {
        item.map_err(ImagesError::Load)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registry_that_cannot_be_reached_is_told_from_one_that_refuses() {
        use bollard::errors::Error;
        let server = |status_code: u16, message: &str| Error::DockerResponseServerError {
            status_code,
            message: message.into(),
        };
        assert!(registry_unreachable(&server(
            500,
            "Get \"https://registry-1.docker.io/v2/\": dial tcp: lookup registry-1.docker.io: no such host"
        )));
        assert!(registry_unreachable(&Error::DockerStreamError {
            error: "Get \"https://r.example/v2/\": net/http: TLS handshake timeout".into()
        }));
        assert!(!registry_unreachable(&server(
            404,
            "pull access denied for nope, repository does not exist or may require 'docker login'"
        )));
        assert!(!registry_unreachable(&Error::DockerStreamError {
            error: "manifest for x:9 not found: manifest unknown".into()
        }));
    }

    #[test]
    fn gpus_become_nvidia_device_requests() {
        let acc = Accelerator {
            kind: "nvidia.com/gpu".into(),
            count: 2,
        };
        let r = &device_requests(&acc).unwrap()[0];
        assert_eq!(r.driver.as_deref(), Some("nvidia"));
        assert_eq!(r.count, Some(2));
        assert_eq!(r.capabilities, Some(vec![vec!["gpu".to_owned()]]));
        let tpu = Accelerator {
            kind: "tpu".into(),
            count: 1,
        };
        assert!(device_requests(&tpu).unwrap_err().contains("'tpu'"));
    }

    #[test]
    fn container_names_are_clean() {
        assert_eq!(
            container_name("20261128-141502-7f3a", "train model", 2),
            "sluice-20261128-141502-7f3a-train-model-2"
        );
    }

    #[test]
    fn archives_unpack_to_the_output_and_no_further() {
        let dir = tempfile::tempdir().unwrap();
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(5);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, "result.txt", &b"hello"[..])
            .unwrap();
        let archive = builder.into_inner().unwrap();
        let dest = dir.path().join("data");
        unpack_single(&archive, &dest.clone()).unwrap_or_else(|e| panic!("{e}"));
        // A single file unpacks to the destination itself.
        assert_eq!(std::fs::read(&dest).unwrap(), b"hello");

        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_old();
        header.as_old_mut().name[..13].copy_from_slice(b"out/../../x.t");
        header.set_size(1);
        header.set_cksum();
        builder.append(&header, &b"x"[..]).unwrap();
        let archive = builder.into_inner().unwrap();
        let err = unpack_single(&archive, &dir.path().join("other")).unwrap_err();
        assert!(err.contains("unsafe path"), "{err}");
        assert!(!dir.path().join("x.t").exists());
    }
}
