//! Each escape a guest might try is denied or stopped with a clear task error, while the
//! host survives and a sibling task in the same run completes.

use std::net::TcpListener;
use std::sync::Arc;

use sluice_runtime::exec::wasm::{WasmConfig, WasmExecutor};
use sluice_runtime::schedule::{Options, Scheduler};
use sluice_runtime::store::{RunKind, RunRecord, RunState, TaskState};
use tokio_util::sync::CancellationToken;

use crate::support::{Env, cache_dir, cancelled_after, task};

/// Runs a probe with `args` beside a well-behaved sibling, and checks the sibling.
async fn attempt(env: &Env, args: &str, component_extra: &str, task_extra: &str) -> RunRecord {
    env.probe("attack", args, component_extra);
    env.probe("sibling", "[echo, sibling done]", "");
    let run = env
        .run(&format!(
            "name: sandbox\ntasks:\n  attack: {{component: attack.yaml{task_extra}}}\n  sibling: {{component: sibling.yaml}}\n"
        ))
        .await;
    let sibling = task(&run, "sibling");
    assert_eq!(sibling.state, TaskState::Succeeded, "{:?}", sibling.error);
    assert!(env.logs(&run, "sibling").contains("sibling done"));
    run
}

fn denied(env: &Env, run: &RunRecord) -> String {
    let t = task(run, "attack");
    assert_eq!(
        t.state,
        TaskState::Failed,
        "the probe got through: {}",
        env.logs(run, "attack")
    );
    let error = t.error.clone().unwrap();
    assert!(
        error.starts_with("exited with code 1 (stderr: denied: "),
        "{error}"
    );
    error
}

#[tokio::test]
async fn host_files_outside_the_preopens_are_invisible() {
    let env = Env::new();
    for path in [
        "/etc/passwd",
        "/inputs/../etc/passwd",
        "../etc/passwd",
        env.path("home/sluice.db").to_str().unwrap(),
    ] {
        let run = attempt(&env, &format!("[read, '{path}']"), "", "").await;
        denied(&env, &run);
    }
    let run = attempt(&env, "[ls, /]", "", "").await;
    denied(&env, &run);
}

#[tokio::test]
async fn inputs_are_read_only() {
    let env = Env::new();
    let run = attempt(
        &env,
        "[write, {inputPath: data}, overwritten]",
        "inputs:\n- {name: data}",
        ", inputs: {data: original}",
    )
    .await;
    let t = task(&run, "attack");
    assert_eq!(t.state, TaskState::Failed);
    let stored = env.store.read(&t.inputs[0].digest).unwrap();
    assert_eq!(stored, b"original", "the stored input changed");
}

#[tokio::test]
async fn symlinks_cannot_lead_out() {
    let env = Env::new();
    let secret = env.path("secret.txt");
    std::fs::write(&secret, "host secret").unwrap();
    for target in [
        secret.to_str().unwrap(),
        "../../../../../../../../etc/passwd",
        "/etc/passwd",
    ] {
        let run = attempt(
            &env,
            &format!("[symlink-out, /outputs/out, '{target}']"),
            "outputs:\n- {name: out}",
            "",
        )
        .await;
        denied(&env, &run);
        assert!(!env.logs(&run, "attack").contains("host secret"));
    }
}

#[tokio::test]
async fn there_is_no_network() {
    let env = Env::new();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let run = attempt(&env, &format!("[connect, '{addr}']"), "", "").await;
    denied(&env, &run);
    assert!(
        listener.accept().is_err(),
        "the guest reached the host's listener"
    );
    let run = attempt(&env, "[resolve, localhost]", "", "").await;
    denied(&env, &run);
}

#[tokio::test]
async fn the_host_environment_is_not_inherited() {
    // SAFETY of the test: set before any guest runs; only this test reads it.
    let env = Env::new();
    let visible: Vec<_> = std::env::vars().map(|(k, _)| k).collect();
    let name = visible
        .iter()
        .find(|k| k.as_str() == "PATH" || k.as_str() == "HOME")
        .expect("the test process has PATH or HOME");
    let run = attempt(&env, &format!("[env, {name}]"), "", "").await;
    denied(&env, &run);

    env.probe("declared", "[env, GREETING]", "");
    std::fs::write(
        env.path("declared.yaml"),
        format!(
            "name: declared\nimplementation:\n  wasm:\n    component: {}\n    args: [env, GREETING]\n    env: {{GREETING: hello}}\n",
            sluice_test_artifacts::PROBE
        ),
    )
    .unwrap();
    let run = env
        .run("name: p\ntasks:\n  t: {component: declared.yaml}\n")
        .await;
    assert_eq!(task(&run, "t").state, TaskState::Succeeded);
    assert!(env.logs(&run, "t").contains("hello"));
}

#[tokio::test]
async fn an_infinite_loop_is_stopped_by_the_cpu_deadline() {
    let env = Env::new();
    let run = attempt(&env, "[spin]", "", ", resources: {cpu_time: 300ms}").await;
    let t = task(&run, "attack");
    assert_eq!(t.state, TaskState::Failed);
    assert_eq!(t.error.as_deref(), Some("CPU time limit of 300ms exceeded"));
}

#[tokio::test]
async fn an_infinite_loop_is_stopped_by_the_timeout() {
    let env = Env::new();
    let run = attempt(&env, "[spin]", "", ", timeout: 300ms").await;
    let t = task(&run, "attack");
    assert_eq!(t.error.as_deref(), Some("timed out after 300ms"));
    let (start, end) = (t.started_at.unwrap(), t.ended_at.unwrap());
    let took = end.as_millisecond() - start.as_millisecond();
    assert!(
        took < 3000,
        "the loop ran on for {took}ms after its timeout"
    );
}

/// On a multi-threaded runtime an attempt runs on the worker thread that asks for it,
/// where nothing else watches its clock: its own limit stops a guest looping in its code
/// (at an epoch tick) and one asleep in a host call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_runtime_worker_a_loop_and_a_sleep_stop_at_their_timeout() {
    let env = Env::new();
    for args in ["[spin]", "[sleep, '600000']"] {
        let run = attempt(&env, args, "", ", timeout: 300ms").await;
        let t = task(&run, "attack");
        assert_eq!(t.error.as_deref(), Some("timed out after 300ms"), "{args}");
        let took = t.ended_at.unwrap().as_millisecond() - t.started_at.unwrap().as_millisecond();
        assert!(took < 3000, "{args} ran on for {took}ms after its timeout");
    }
}

/// The same guests on a runtime worker stop when their run is cancelled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_runtime_worker_cancelling_stops_a_loop_and_a_sleep() {
    let env = Env::new();
    env.probe("spin", "[spin]", "");
    env.probe("nap", "[sleep, '600000']", "");
    let cancel = cancelled_after(300);
    let started = std::time::Instant::now();
    let run = env
        .run_with(
            "name: p\ntasks:\n  spin: {component: spin.yaml}\n  nap: {component: nap.yaml}\n",
            Options {
                parallelism: 2,
                ..crate::support::no_cache()
            },
            cancel,
        )
        .await;
    assert!(started.elapsed().as_secs() < 5, "{:?}", started.elapsed());
    assert_eq!(run.state, RunState::Cancelled);
    for name in ["spin", "nap"] {
        assert_eq!(task(&run, name).state, TaskState::Cancelled, "{name}");
    }
}

#[tokio::test]
async fn a_memory_bomb_is_stopped_by_the_cap() {
    let env = Env::new();
    let run = attempt(&env, "[membomb]", "", ", resources: {memory: 64Mi}").await;
    let error = task(&run, "attack").error.clone().unwrap();
    assert!(
        error.starts_with("memory limit of 64Mi exceeded (the component asked for "),
        "{error}"
    );
    // A component that stays under its cap is unaffected.
    let run = attempt(&env, "[alloc, '32']", "", ", resources: {memory: 64Mi}").await;
    assert_eq!(task(&run, "attack").state, TaskState::Succeeded);
}

#[tokio::test]
async fn a_trap_fails_only_its_task() {
    let env = Env::new();
    let run = attempt(&env, "[trap]", "", "").await;
    let error = task(&run, "attack").error.clone().unwrap();
    assert!(error.starts_with("trapped: "), "{error}");
    assert!(
        error.ends_with("(stderr: probe: deliberate trap)"),
        "{error}"
    );
}

#[tokio::test]
async fn chatty_output_is_bounded() {
    let env = Env::new();
    let run = attempt(&env, "[flood, '5000000']", "", "").await;
    assert_eq!(task(&run, "attack").state, TaskState::Succeeded);
    let logs = env.store.logs(&run.id, "attack").unwrap();
    let stdout = logs.iter().find(|l| l.stream == "stdout").unwrap();
    assert!(stdout.omitted > 3_000_000, "{}", stdout.omitted);
    assert!(stdout.content.len() < 1_100_000, "{}", stdout.content.len());
}

#[tokio::test]
async fn a_guest_holding_thousands_of_files_fails_itself_not_its_sibling() {
    let env = Env::new();
    let run = attempt(
        &env,
        "[hold-files, {outputPath: out}, '5000']",
        "outputs:\n- {name: out}",
        "",
    )
    .await;
    let error = task(&run, "attack").error.clone().unwrap();
    assert!(
        error.starts_with("open-files limit of 1024 reached"),
        "{error}"
    );
    // The limit is the task's to raise, and a guest under it is unaffected.
    let run = attempt(
        &env,
        "[hold-files, {outputPath: out}, '1500']",
        "outputs:\n- {name: out}",
        ", resources: {open_files: 2000}",
    )
    .await;
    let t = task(&run, "attack");
    assert_eq!(t.state, TaskState::Succeeded, "{:?}", t.error);
    assert!(env.logs(&run, "attack").contains("held 1500"));
}

/// Every way a guest can make a file take space is charged before it happens.
#[tokio::test]
async fn writes_past_the_storage_limit_fail_the_task_as_they_happen() {
    let env = Env::new();
    for args in [
        // Streamed writes, as `std::fs::File::write` makes them.
        "[fill, {outputPath: out}, '3000000']",
        // A hole: one byte a terabyte in, which would read back as a terabyte of zeros.
        "[sparse, {outputPath: out}, '1000000000000']",
        // `set-size` past the end.
        "[grow, {outputPath: out}, '3000000']",
    ] {
        let run = attempt(
            &env,
            args,
            "outputs:\n- {name: out}",
            ", resources: {ephemeral_storage: 1Mi}",
        )
        .await;
        let t = task(&run, "attack");
        let error = t.error.clone().unwrap_or_default();
        assert!(
            error.starts_with(
                "ephemeral storage limit of 1Mi exceeded (the component tried to write "
            ),
            "{args}: {error}"
        );
        // Nothing past the limit reached the disk.
        let attempt_dir = env.path("home").join("runs").join(&run.id);
        let on_disk = dir_bytes(&attempt_dir);
        assert!(on_disk <= 1 << 20, "{args}: {on_disk} bytes on disk");
    }
    let run = attempt(
        &env,
        "[fill, {outputPath: out}, '500000']",
        "outputs:\n- {name: out}",
        ", resources: {ephemeral_storage: 1Mi}",
    )
    .await;
    let t = task(&run, "attack");
    assert_eq!(t.state, TaskState::Succeeded, "{:?}", t.error);
    assert_eq!(t.outputs[0].size, 500_000);
}

/// Bytes the files under `dir` take on disk (allocated blocks, so holes count nothing).
fn dir_bytes(dir: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                dir_bytes(&e.path())
            } else {
                meta.blocks() * 512
            }
        })
        .sum()
}

#[tokio::test]
async fn a_command_line_past_the_argv_limit_is_refused_before_the_guest_starts() {
    let env = Env::new();
    let big = "x".repeat(3 << 20);
    let run = attempt(
        &env,
        "[echo, {inputValue: text}]",
        "inputs:\n- {name: text, type: String}",
        &format!(", inputs: {{text: {big}}}"),
    )
    .await;
    let error = task(&run, "attack").error.clone().unwrap();
    assert!(
        error.starts_with("the command line is 3.0Mi, over the limit of 2Mi (pass large values"),
        "{error}"
    );
}

/// An attempt's instance may take the slot an earlier attempt of the same component had
/// (the pooling allocator keeps its memory mapped and resets it in place): it starts
/// with none of what that attempt left in its memory.
#[tokio::test]
async fn an_attempt_sees_nothing_of_the_one_before_it() {
    let env = Env::new();
    env.probe("stash", "[stash, secret-of-the-first]", "");
    env.probe("peek", "[peek]", "");
    let run = env
        .run("name: slots\ntasks:\n  stash: {component: stash.yaml}\n  peek: {component: peek.yaml, after: [stash]}\n  again: {component: peek.yaml, after: [peek]}\n")
        .await;
    assert!(
        env.logs(&run, "stash").contains("stashed"),
        "{}",
        env.logs(&run, "stash")
    );
    for task in ["peek", "again"] {
        let logs = env.logs(&run, task);
        assert!(
            logs.contains("empty") && !logs.contains("secret"),
            "{task}: {logs}"
        );
    }
}

/// Attempts past the executor's instance slots wait for one to end, and all succeed: a
/// task's time limit counts from when its attempt has an instance, not while it waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempts_past_the_instance_slots_wait_for_one_and_the_wait_is_not_their_time() {
    let env = Env::new();
    env.probe("nap", "[sleep, '200']", "");
    let executor = WasmExecutor::new(WasmConfig {
        instances: 1,
        ..WasmConfig::new(cache_dir())
    })
    .unwrap();
    let scheduler = Scheduler {
        store: env.store.clone(),
        executor: Arc::new(executor),
        observer: env.events.clone(),
        options: Options {
            parallelism: 3,
            ..crate::support::no_cache()
        },
        cancel: CancellationToken::new(),
    };
    // One at a time, the last waits about 400 ms for the one slot: more than its limit.
    let plan = env.plan(
        "name: slots\ntasks:\n  a: {component: nap.yaml, timeout: 300ms}\n  b: {component: nap.yaml, timeout: 300ms}\n  c: {component: nap.yaml, timeout: 300ms}\n",
    );
    let started = std::time::Instant::now();
    let outcome = scheduler
        .run(Arc::new(plan), RunKind::Pipeline)
        .await
        .unwrap();
    let run = env.store.run(&outcome.run_id).unwrap();
    for name in ["a", "b", "c"] {
        let t = task(&run, name);
        assert_eq!(t.state, TaskState::Succeeded, "{name}: {:?}", t.error);
    }
    assert!(started.elapsed() >= std::time::Duration::from_millis(600));
}
