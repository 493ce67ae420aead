//! Wasm components in real OCI registries (Debian's CNCF distribution registry, started
//! by `scripts/registries.sh` on 127.0.0.1): push, pull by tag and by digest, the
//! artifact layout as other tools see it, the example pipeline run from the registry,
//! offline from the cache and not at all from an empty one, and basic auth.

use std::path::{Path, PathBuf};

use serde_json::Value;
use sluice_runtime::store::RunRecord;

use crate::support::{Home, root};

pub(crate) fn registry(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!(
            "{var} names a local test registry; scripts/test.sh starts them (scripts/registries.sh)"
        )
    })
}

/// A repository no other test (or earlier run) uses.
fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("test-{nanos}/{name}")
}

fn wasm(name: &str) -> PathBuf {
    root().join(format!(
        "sample-components/target/wasm32-wasip2/release/{name}.wasm"
    ))
}

#[test]
fn push_pull_by_tag_and_digest_and_inspect() {
    let home = Home::new();
    let host = registry("SLUICE_TEST_REGISTRY");
    let reference = format!("oci://{host}/{}:0.1.0", unique("validate"));
    let insecure = ["--insecure-registry", host.as_str()];
    let file = wasm("validate");
    let pushed = home.expect(
        &[&["push", file.to_str().unwrap(), &reference], &insecure[..]].concat(),
        0,
    );
    let pinned = pushed.stdout.lines().last().unwrap().to_owned();
    assert!(pinned.contains("@sha256:"), "{}", pushed.stdout);

    let pulled = home.expect(&[&["pull", &reference], &insecure[..]].concat(), 0);
    assert!(
        pulled.stdout.starts_with(&format!("pulled {pinned}")),
        "{}",
        pulled.stdout
    );
    let again = home.expect(&[&["pull", &reference], &insecure[..]].concat(), 0);
    assert!(
        again.stdout.starts_with(&format!("cached {pinned}")),
        "{}",
        again.stdout
    );
    let out = home.dir.path().join("copy.wasm");
    home.expect_under_umask(
        "022",
        &[
            &["pull", &pinned, "-o", out.to_str().unwrap()],
            &insecure[..],
        ]
        .concat(),
        0,
    );
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&file).unwrap());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644, "pull -o wrote mode {mode:o}");

    let inspected = home.expect(
        &[&["inspect", &reference, "--json"], &insecure[..]].concat(),
        0,
    );
    let v: Value = serde_json::from_str(&inspected.stdout).unwrap();
    assert_eq!(format!("{}", v["reference"].as_str().unwrap()), reference);
    assert_eq!(
        v["manifest"]["config"]["mediaType"],
        "application/vnd.wasm.config.v0+json"
    );
    let layers = v["manifest"]["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    assert_eq!(layers[0]["mediaType"], "application/wasm");
    assert_eq!(v["config"]["architecture"], "wasm");
    assert_eq!(v["config"]["os"], "wasip2");
    assert_eq!(v["config"]["layerDigests"][0], layers[0]["digest"]);
    let exports = v["config"]["component"]["exports"].as_array().unwrap();
    assert!(
        exports
            .iter()
            .any(|e| e.as_str().unwrap().starts_with("wasi:cli/run@")),
        "{exports:?}"
    );
    assert!(v["manifest"]["annotations"]["org.opencontainers.image.created"].is_string());

    // What any other OCI client sees: the manifest straight from the distribution API.
    let repo_tag = reference.trim_start_matches(&format!("oci://{host}/"));
    let (repo, tag) = repo_tag.rsplit_once(':').unwrap();
    sluice_runtime::init_tls();
    let raw: Value = reqwest::blocking::Client::new()
        .get(format!("http://{host}/v2/{repo}/manifests/{tag}"))
        .header("Accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        raw["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        raw["config"]["mediaType"],
        "application/vnd.wasm.config.v0+json"
    );

    let listed = home.expect(&["cache", "list", "--json"], 0);
    assert!(
        listed.stdout.contains(&format!("{host}/{repo}:{tag}")),
        "{}",
        listed.stdout
    );

    // Errors, one line each.
    let missing = home.expect(
        &[
            &["pull", &format!("oci://{host}/{}:1", unique("nothing"))],
            &insecure[..],
        ]
        .concat(),
        2,
    );
    assert!(
        missing.stderr.contains("(404 Not Found)"),
        "{}",
        missing.stderr
    );
    let https = home.expect(&["pull", &format!("oci://{host}/{}:1", unique("x"))], 2);
    assert!(
        https.stderr.contains("name it with --insecure-registry"),
        "{}",
        https.stderr
    );
    let bad = home.expect(&["pull", "oci://validate:1"], 2);
    assert!(
        bad.stderr
            .contains("expected oci://registry/repository:tag"),
        "{}",
        bad.stderr
    );
    let not_wasm = home.dir.path().join("not.wasm");
    std::fs::write(&not_wasm, b"hello").unwrap();
    let refused = home.expect(
        &[
            &["push", not_wasm.to_str().unwrap(), &reference],
            &insecure[..],
        ]
        .concat(),
        2,
    );
    assert!(
        refused.stderr.contains("is not a WebAssembly component"),
        "{}",
        refused.stderr
    );
}

/// The example pipeline with every wasm step taken from the registry: each component
/// file copied beside the pipeline with `implementation.wasm.component` an `oci://` tag.
pub(crate) fn registry_pipeline(home: &Home, host: &str) -> PathBuf {
    let dir = home.dir.path().join("from-registry");
    std::fs::create_dir_all(&dir).unwrap();
    let example = root().join("examples/breast-cancer");
    let mut pipeline = std::fs::read_to_string(example.join("pipeline.yaml"))
        .unwrap()
        .replace(
            "default: data/",
            &format!("default: {}/data/", example.display()),
        )
        .replace("../../", &format!("{}/", root().display()));
    let prefix = unique("sluice");
    for name in [
        "validate",
        "split",
        "normalize",
        "train",
        "evaluate",
        "package",
    ] {
        let reference = format!("oci://{host}/{prefix}/{name}:0.1.0");
        home.expect(
            &[
                "push",
                wasm(name).to_str().unwrap(),
                &reference,
                "--insecure-registry",
                host,
            ],
            0,
        );
        let source = root().join(format!("sample-components/{name}/component.yaml"));
        let yaml = std::fs::read_to_string(&source).unwrap().replace(
            &format!("component: ../target/wasm32-wasip2/release/{name}.wasm"),
            &format!("component: {reference}"),
        );
        assert!(yaml.contains(&reference), "{name}");
        let copy = dir.join(format!("{name}.yaml"));
        std::fs::write(&copy, yaml).unwrap();
        pipeline = pipeline.replace(
            &format!(
                "{}/sample-components/{name}/component.yaml",
                root().display()
            ),
            copy.to_str().unwrap(),
        );
    }
    let path = dir.join("pipeline.yaml");
    std::fs::write(&path, pipeline).unwrap();
    path
}

fn last_run(home: &Home, cache: &Path) -> RunRecord {
    let cache = cache.to_str().unwrap();
    let list = home.expect(
        &["--cache-dir", cache, "runs", "list", "--json", "-n", "1"],
        0,
    );
    let runs: Vec<RunRecord> = serde_json::from_str(&list.stdout).unwrap();
    let shown = home.expect(&["runs", "show", &runs[0].id, "--json"], 0);
    serde_json::from_str(&shown.stdout).unwrap()
}

#[test]
fn the_example_runs_from_the_registry_then_offline_from_the_cache() {
    let home = Home::new();
    let host = registry("SLUICE_TEST_REGISTRY");
    let pipeline = registry_pipeline(&home, &host);
    let pipeline = pipeline.to_str().unwrap();
    // A cache of its own: the shared one may hold these components already.
    let cache = home.dir.path().join("cache");
    let cache_arg = cache.to_str().unwrap();
    home.expect(
        &[
            "--cache-dir",
            cache_arg,
            "run",
            pipeline,
            "--insecure-registry",
            &host,
        ],
        0,
    );
    let run = last_run(&home, &cache);
    let validate = run.tasks.iter().find(|t| t.name == "validate").unwrap();
    let implementation = validate.implementation.as_deref().unwrap();
    assert!(
        implementation.starts_with(&format!("wasm transform oci://{host}/"))
            && implementation.contains("/validate@sha256:"),
        "{implementation}"
    );
    let accuracy = run
        .tasks
        .iter()
        .find(|t| t.name == "evaluate")
        .unwrap()
        .metrics["accuracy"];
    assert!(accuracy >= 0.93);

    // Offline: the same bytes from the cache, no registry asked (the flag forbids it).
    home.expect(
        &[
            "--cache-dir",
            cache_arg,
            "run",
            pipeline,
            "--offline",
            "--no-cache",
        ],
        0,
    );
    let offline = last_run(&home, &cache);
    for (a, b) in run.tasks.iter().zip(&offline.tasks) {
        assert_eq!(a.executable_digest, b.executable_digest, "{}", a.name);
        assert_eq!(a.implementation, b.implementation, "{}", a.name);
    }

    // An empty cache offline fails before anything runs, naming the reference.
    let empty = home.dir.path().join("empty-cache");
    let failed = home.expect(
        &[
            "--cache-dir",
            empty.to_str().unwrap(),
            "run",
            pipeline,
            "--offline",
        ],
        2,
    );
    assert!(
        failed
            .stderr
            .contains("is not in the cache, and --offline forbids pulling it"),
        "{}",
        failed.stderr
    );
    assert!(
        failed.stderr.contains(&format!("oci://{host}/")),
        "{}",
        failed.stderr
    );
    assert!(
        !empty.join("oci/manifests").exists()
            || std::fs::read_dir(empty.join("oci/manifests/sha256"))
                .unwrap()
                .next()
                .is_none()
    );

    // The tag moves (the same component pushed again: a new manifest); a re-run of the
    // first run still takes the digest that run recorded, a new run the new one.
    let tagged = validate
        .implementation
        .as_deref()
        .unwrap()
        .split_whitespace()
        .last()
        .unwrap()
        .to_owned();
    let (repository, first_digest) = tagged.split_once('@').unwrap();
    let moved = format!("{repository}:0.1.0");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    home.expect(
        &[
            "push",
            wasm("validate").to_str().unwrap(),
            &moved,
            "--insecure-registry",
            &host,
        ],
        0,
    );
    home.expect(
        &[
            "--cache-dir",
            cache_arg,
            "runs",
            "rerun",
            &run.id,
            "--insecure-registry",
            &host,
        ],
        0,
    );
    let rerun = last_run(&home, &cache);
    let implementation = |r: &RunRecord| {
        r.tasks
            .iter()
            .find(|t| t.name == "validate")
            .unwrap()
            .implementation
            .clone()
            .unwrap()
    };
    assert!(
        implementation(&rerun).ends_with(&format!("@{first_digest}")),
        "{}",
        implementation(&rerun)
    );
    assert_eq!(rerun.params, run.params);
    home.expect(
        &[
            "--cache-dir",
            cache_arg,
            "run",
            pipeline,
            "--insecure-registry",
            &host,
        ],
        0,
    );
    let fresh = last_run(&home, &cache);
    assert!(
        !implementation(&fresh).ends_with(&format!("@{first_digest}")),
        "{}",
        implementation(&fresh)
    );
}

#[test]
fn basic_auth_registries_need_the_credentials() {
    let home = Home::new();
    let host = registry("SLUICE_TEST_AUTH_REGISTRY");
    let user = registry("SLUICE_TEST_REGISTRY_USER");
    let password = registry("SLUICE_TEST_REGISTRY_PASSWORD");
    let reference = format!("oci://{host}/{}:1", unique("split"));
    let file = wasm("split");
    let file = file.to_str().unwrap();
    let denied = home.expect(&["push", file, &reference, "--insecure-registry", &host], 2);
    assert!(
        denied.stderr.contains("(401 Unauthorized)"),
        "{}",
        denied.stderr
    );
    home.expect(
        &[
            "push",
            file,
            &reference,
            "--insecure-registry",
            &host,
            "--username",
            &user,
            "--password",
            &password,
        ],
        0,
    );
    let wrong = home.expect(
        &[
            "pull",
            &reference,
            "--insecure-registry",
            &host,
            "--username",
            &user,
            "--password",
            "wrong",
        ],
        2,
    );
    assert!(
        wrong.stderr.contains("refused the credentials"),
        "{}",
        wrong.stderr
    );
    assert!(
        !wrong.stderr.contains("wrong"),
        "the password leaked: {}",
        wrong.stderr
    );

    // Credentials from a Docker config file, as `docker login` leaves them.
    use base64::Engine as _;
    let docker = home.dir.path().join("docker");
    std::fs::create_dir_all(&docker).unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    std::fs::write(
        docker.join("config.json"),
        format!(r#"{{"auths": {{"{host}": {{"auth": "{auth}"}}}}}}"#),
    )
    .unwrap();
    let pulled = home.sluice_with(
        &["pull", &reference, "--insecure-registry", &host],
        &[("DOCKER_CONFIG", docker.to_str().unwrap())],
    );
    assert_eq!(pulled.code, 0, "{}", pulled.stderr);
    assert!(pulled.stdout.starts_with("pulled "), "{}", pulled.stdout);
}

#[test]
fn a_tampered_blob_is_refused_and_the_cache_stays_clean() {
    let home = Home::new();
    let host = registry("SLUICE_TEST_REGISTRY");
    let data = PathBuf::from(registry("SLUICE_TEST_REGISTRY_DATA"));
    // A component no other test pushes: the registry stores each blob once for all
    // repositories, and the others must not see the damage.
    let reference = format!("oci://{host}/{}:1", unique("probe"));
    let file = wasm("probe");
    home.expect(
        &[
            "push",
            file.to_str().unwrap(),
            &reference,
            "--insecure-registry",
            &host,
        ],
        0,
    );
    // Alter one byte of the stored layer, as a compromised registry or mirror would.
    let bytes = std::fs::read(&file).unwrap();
    let digest = sluice_runtime::oci::sha256(&bytes);
    let hex = &digest["sha256:".len()..];
    let blob = data.join(format!(
        "docker/registry/v2/blobs/sha256/{}/{hex}/data",
        &hex[..2]
    ));
    let mut stored = std::fs::read(&blob).unwrap();
    assert_eq!(stored, bytes);
    let middle = stored.len() / 2;
    stored[middle] ^= 0xff;
    std::fs::write(&blob, &stored).unwrap();

    let cache = home.dir.path().join("cache");
    let cache_arg = cache.to_str().unwrap();
    let refused = home.expect(
        &[
            "--cache-dir",
            cache_arg,
            "pull",
            &reference,
            "--insecure-registry",
            &host,
        ],
        2,
    );
    assert!(refused.stderr.contains(&digest), "{}", refused.stderr);
    assert_eq!(refused.stderr.lines().count(), 1, "{}", refused.stderr);
    let listed = home.expect(&["--cache-dir", cache_arg, "cache", "list", "--json"], 0);
    assert_eq!(listed.stdout.trim(), "[]");
    let leftovers: Vec<_> = std::fs::read_dir(cache.join("oci/manifests/sha256"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // A run naming the tampered component fails before any task starts.
    let component = home.dir.path().join("validate.yaml");
    let yaml = std::fs::read_to_string(root().join("sample-components/validate/component.yaml"))
        .unwrap()
        .replace(
            "component: ../target/wasm32-wasip2/release/validate.wasm",
            &format!("component: {reference}"),
        );
    std::fs::write(&component, yaml).unwrap();
    let example = root().join("examples/breast-cancer");
    let pipeline = std::fs::read_to_string(example.join("pipeline.yaml"))
        .unwrap()
        .replace(
            "../../sample-components/validate/component.yaml",
            component.to_str().unwrap(),
        )
        .replace(
            "default: data/",
            &format!("default: {}/data/", example.display()),
        )
        .replace("../../", &format!("{}/", root().display()));
    let path = home.dir.path().join("pipeline.yaml");
    std::fs::write(&path, pipeline).unwrap();
    let failed = home.expect(
        &[
            "--cache-dir",
            cache_arg,
            "run",
            path.to_str().unwrap(),
            "--insecure-registry",
            &host,
        ],
        2,
    );
    assert!(failed.stderr.contains(&digest), "{}", failed.stderr);
    assert!(
        home.expect(&["--cache-dir", cache_arg, "runs", "list", "--json"], 0)
            .stdout
            .trim()
            == "[]"
    );
    let listed = home.expect(&["--cache-dir", cache_arg, "cache", "list", "--json"], 0);
    assert_eq!(listed.stdout.trim(), "[]");
    std::fs::write(&blob, &bytes).unwrap();
}

#[test]
fn a_task_names_a_registry_component_directly() {
    let home = Home::new();
    let host = registry("SLUICE_TEST_REGISTRY");
    let reference = format!("oci://{host}/{}:1", unique("validate"));
    let component = root().join("sample-components/validate/component.yaml");
    home.expect(
        &[
            "push",
            component.to_str().unwrap(),
            &reference,
            "--insecure-registry",
            &host,
        ],
        0,
    );
    let example = root().join("examples/breast-cancer");
    let pipeline = std::fs::read_to_string(example.join("pipeline.yaml"))
        .unwrap()
        .replace(
            "default: data/",
            &format!("default: {}/data/", example.display()),
        )
        .replace(
            "../../sample-components/validate/component.yaml",
            &reference,
        )
        .replace("../../", &format!("{}/", root().display()));
    assert!(pipeline.contains(&format!("component: {reference}")));
    let path = home.dir.path().join("pipeline.yaml");
    std::fs::write(&path, pipeline).unwrap();
    let cache = home.dir.path().join("cache");
    let cache = cache.to_str().unwrap();
    let path = path.to_str().unwrap();
    home.expect(
        &[
            "--cache-dir",
            cache,
            "run",
            path,
            "--insecure-registry",
            &host,
        ],
        0,
    );
    home.expect(&["--cache-dir", cache, "run", path, "--offline"], 0);
    let run = last_run(&home, Path::new(cache));
    let validate = run.tasks.iter().find(|t| t.name == "validate").unwrap();
    assert!(
        validate
            .implementation
            .as_deref()
            .unwrap()
            .contains(&format!("oci://{host}/")),
        "{:?}",
        validate.implementation
    );

    // A plain .wasm carries no component file to run from.
    let bare = format!("oci://{host}/{}:1", unique("bare"));
    let file = wasm("validate");
    home.expect(
        &[
            "push",
            file.to_str().unwrap(),
            &bare,
            "--insecure-registry",
            &host,
        ],
        0,
    );
    let text = std::fs::read_to_string(path)
        .unwrap()
        .replace(&reference, &bare);
    std::fs::write(path, text).unwrap();
    let refused = home.expect(
        &[
            "--cache-dir",
            cache,
            "run",
            path,
            "--insecure-registry",
            &host,
        ],
        2,
    );
    assert!(
        refused.stderr.contains("carries no component file"),
        "{}",
        refused.stderr
    );
}

#[test]
fn an_image_index_is_followed_to_its_wasm_manifest_or_refused_in_one_line() {
    let home = Home::new();
    let host = registry("SLUICE_TEST_REGISTRY");
    let repo = unique("indexed");
    let insecure = ["--insecure-registry", host.as_str()];
    let pushed = home.expect(
        &[
            &[
                "push",
                wasm("validate").to_str().unwrap(),
                &format!("oci://{host}/{repo}:component"),
            ],
            &insecure[..],
        ]
        .concat(),
        0,
    );
    let pinned = pushed.stdout.lines().last().unwrap().to_owned();
    let digest = pinned.rsplit_once('@').unwrap().1.to_owned();
    sluice_runtime::init_tls();
    let http = reqwest::blocking::Client::new();
    let manifest = http
        .get(format!("http://{host}/v2/{repo}/manifests/{digest}"))
        .header("Accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    // An index as multi-platform tools write one: the wasm entry beside another.
    let put_index = |tag: &str, platforms: &[(&str, &str)]| {
        let manifests: Vec<Value> = platforms
            .iter()
            .map(|(os, architecture)| {
                serde_json::json!({
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": digest,
                    "size": manifest.len(),
                    "platform": {"architecture": architecture, "os": os},
                })
            })
            .collect();
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": manifests,
        });
        let response = http
            .put(format!("http://{host}/v2/{repo}/manifests/{tag}"))
            .header("Content-Type", "application/vnd.oci.image.index.v1+json")
            .body(index.to_string())
            .send()
            .unwrap();
        assert!(response.status().is_success(), "{:?}", response.text());
    };
    put_index("multi", &[("linux", "amd64"), ("wasip2", "wasm")]);
    let pulled = home.expect(
        &[
            &["pull", &format!("oci://{host}/{repo}:multi")],
            &insecure[..],
        ]
        .concat(),
        0,
    );
    assert!(
        pulled
            .stdout
            .contains(&format!("oci://{host}/{repo}@{digest}")),
        "the index's wasm manifest, pinned: {}",
        pulled.stdout
    );
    put_index("linux-only", &[("linux", "amd64"), ("linux", "arm64")]);
    let refused = home.expect(
        &[
            &["pull", &format!("oci://{host}/{repo}:linux-only")],
            &insecure[..],
        ]
        .concat(),
        2,
    );
    assert_eq!(
        refused.stderr.trim(),
        format!(
            "error: oci://{host}/{repo}:linux-only is an OCI image index with no wasm/wasip2 manifest (it lists linux/amd64, linux/arm64)"
        )
    );
}
