//! Process executor (`--runner process`): runs a container implementation's command
//! directly on the host, in the task's working folder, the way KFP's local
//! SubprocessRunner does, for machines without Docker. It is chosen only when the user
//! asks. There is no sandbox: the program sees the host, its environment (plus the
//! component's `env`) and the network; Sluice enforces timeouts and cancellation (the
//! whole process group is killed) and captures the output, nothing more. Inputs and
//! outputs are the task folder's own paths.

use std::process::Stdio;

use futures::future::BoxFuture;
use tokio::io::AsyncReadExt;
use tokio::process::Command;

use super::capture::{Capture, StdStreams};
use super::{
    Completion, Executor, Failure, Invocation, Kind, Paths, PrepareError, Prepared, Report, Target,
    expand_args,
};
use crate::spec::Component;

#[derive(Debug, Default)]
pub struct ProcessExecutor {
    /// Bytes kept of the beginning and of the end of each output stream.
    pub log_keep: Option<usize>,
}

fn container_of(component: &Component) -> Result<&crate::spec::ContainerSpec, String> {
    let spec = component
        .spec
        .implementation
        .container
        .as_ref()
        .ok_or_else(|| {
            format!(
                "component '{}' has no container implementation",
                component.name()
            )
        })?;
    if !spec.file_outputs.is_empty() {
        return Err(format!(
            "component '{}' declares fileOutputs, paths inside its image, which the process runner cannot provide",
            component.name()
        ));
    }
    Ok(spec)
}

/// The program a container implementation runs: its first word, when that is written
/// out; `Ok(None)` when a placeholder gives it (`IfPresent`, `Concat`, an input's value,
/// in KFP v1's form or the IR's `{{$...}}` and `{"IfPresent": ...}` text), so only the
/// task's inputs decide it and it is looked for when the task runs.
fn program(spec: &crate::spec::ContainerSpec) -> Result<Option<&str>, ()> {
    use crate::spec::placeholder::Arg;
    match spec.command.first().or(spec.args.first()) {
        Some(Arg::Literal(p)) if !p.contains("{{$") && !p.trim_start().starts_with("{\"") => {
            Ok(Some(p))
        }
        Some(_) => Ok(None),
        None => Err(()),
    }
}

impl Executor for ProcessExecutor {
    fn prepare<'a>(&'a self, target: Target<'a>) -> BoxFuture<'a, Result<Prepared, PrepareError>> {
        Box::pin(async move {
            let spec = container_of(target.component)
                .map_err(|message| PrepareError::Other { message })?;
            let program = program(spec).map_err(|()| PrepareError::Other {
                message: format!(
                    "component '{}' names no program to run: its command is empty (the process runner cannot use an image's entrypoint)",
                    target.component.name()
                ),
            })?;
            let (implementation, executable_digest) = match program {
                Some(program) => {
                    let path = which::which(program).map_err(|_| PrepareError::HostLacks {
                        message: format!("cannot find the program '{program}' on this host's PATH"),
                    })?;
                    // The program's bytes, so that the task cache and resume tell an
                    // edited program from the one that ran.
                    let file = path.clone();
                    let digest = tokio::task::spawn_blocking(move || file_digest(&file))
                        .await
                        .map_err(|e| PrepareError::Other {
                            message: format!("cannot read {}: {e}", path.display()),
                        })?
                        .map_err(|e| PrepareError::Other {
                            message: format!("cannot read {}: {e}", path.display()),
                        })?;
                    (format!("process {}", path.display()), Some(digest))
                }
                None => ("process (its inputs name the program)".to_owned(), None),
            };
            Ok(Prepared {
                kind: Kind::Process,
                implementation,
                reason: String::new(),
                executable_digest,
                transform: None,
            })
        })
    }

    fn execute(&self, inv: Invocation) -> BoxFuture<'_, Report> {
        Box::pin(async move {
            let keep = self.log_keep.unwrap_or(super::capture::DEFAULT_KEEP);
            let io = StdStreams::new(&inv.sink, keep);
            let result = run(&inv, &io).await;
            Report {
                ran_on: None,
                result,
                logs: io.finish(&[]),
            }
        })
    }
}

async fn run(inv: &Invocation, io: &StdStreams) -> Result<Completion, Failure> {
    let spec = container_of(&inv.component).map_err(Failure::failed)?;
    inv.dir
        .ensure()
        .map_err(|e| Failure::failed(crate::error_chain(&e)))?;
    let root = std::path::absolute(&inv.dir.root)
        .map_err(|e| Failure::failed(format!("cannot resolve the task folder: {e}")))?;
    let outputs = std::path::absolute(&inv.dir.outputs)
        .map_err(|e| Failure::failed(format!("cannot resolve the task folder: {e}")))?;
    let dir = crate::store::TaskDir {
        root: root.clone(),
        outputs,
    };
    let mut argv = expand_args(inv, Paths::Host(&dir), &spec.command)?;
    argv.extend(expand_args(inv, Paths::Host(&dir), &spec.args)?);
    let Some((program, args)) = argv.split_first() else {
        return Err(Failure::failed("the command line is empty"));
    };
    let mut child = Command::new(program)
        .args(args)
        .current_dir(&root)
        .envs(&spec.env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Failure::failed(format!("cannot start {program}: {e}")))?;
    let pid = child.id();
    // Should Sluice be killed, the next process to open the home stops this group.
    if let Some(ticks) = pid.and_then(crate::process_start_ticks) {
        let file = root.join(crate::store::PROCESS_FILE);
        let _ = std::fs::write(file, format!("{} {ticks}\n", pid.unwrap_or_default()));
    }
    let pump = |mut from: Box<dyn tokio::io::AsyncRead + Unpin + Send>, to: Capture| async move {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = from.read(&mut buf).await {
            if n == 0 {
                break;
            }
            to.write(&buf[..n]);
        }
    };
    let out = pump(
        Box::new(child.stdout.take().expect("piped")),
        io.stdout.clone(),
    );
    let err = pump(
        Box::new(child.stderr.take().expect("piped")),
        io.stderr.clone(),
    );
    let status = tokio::select! {
        (status, (), ()) = async { tokio::join!(child.wait(), out, err) } => status,
        _ = inv.cancel.cancelled() => {
            kill_group(pid);
            let _ = child.wait().await;
            return Err(Failure::interrupted("interrupted"));
        }
    };
    let status = status.map_err(|e| Failure::failed(format!("waiting for {program}: {e}")))?;
    // Children the program left behind do not outlive the task.
    kill_group(pid);
    if status.success() {
        return Ok(Completion::default());
    }
    use std::os::unix::process::ExitStatusExt;
    let message = match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        _ => "failed".to_owned(),
    };
    Err(Failure::failed(io.explain(message)))
}

fn kill_group(pid: Option<u32>) {
    if let Some(pgid) = pid.and_then(|p| rustix::process::Pid::from_raw(p as i32)) {
        let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
    }
}

/// `sha256:<hex>` of a file's bytes, read in chunks.
fn file_digest(path: &std::path::Path) -> std::io::Result<String> {
    use sha2::Digest;
    use std::io::Read;
    let mut hasher = sha2::Sha256::new();
    let mut file = std::fs::File::open(path)?;
    let mut chunk = vec![0; 1 << 16];
    loop {
        match file.read(&mut chunk)? {
            0 => break,
            n => hasher.update(&chunk[..n]),
        }
    }
    Ok(format!("sha256:{}", hex::encode(hasher.finalize())))
}
