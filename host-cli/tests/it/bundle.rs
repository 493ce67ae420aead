//! Bundles for air-gapped sites: `sluice bundle` writes one OCI image-layout archive with
//! a pipeline, its files and its registry components; `sluice run <bundle>` runs it on a
//! fresh home with an empty cache and no registry (`--offline`), after the originals are
//! gone; a damaged bundle is refused.

use std::path::{Path, PathBuf};

use serde_json::Value;
use sluice_runtime::store::RunRecord;

use crate::support::{Home, root};

fn last_run(home: &Home) -> RunRecord {
    let list = home.expect(&["runs", "list", "--json", "-n", "1"], 0);
    let runs: Vec<RunRecord> = serde_json::from_str(&list.stdout).unwrap();
    let shown = home.expect(&["runs", "show", &runs[0].id, "--json"], 0);
    serde_json::from_str(&shown.stdout).unwrap()
}

fn entries(bundle: &Path) -> Vec<(String, Vec<u8>)> {
    use std::io::Read;
    let mut archive = tar::Archive::new(std::fs::File::open(bundle).unwrap());
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().into_owned();
            let mut bytes = Vec::new();
            e.read_to_end(&mut bytes).unwrap();
            (name, bytes)
        })
        .collect()
}

/// Runs a bundle on a fresh home with an empty cache and no network.
fn run_offline(bundle: &Path) -> (Home, RunRecord) {
    let fresh = Home::new();
    let cache = fresh.dir.path().join("empty-cache");
    fresh.expect(
        &[
            "--cache-dir",
            cache.to_str().unwrap(),
            "run",
            bundle.to_str().unwrap(),
            "--offline",
        ],
        0,
    );
    let run = last_run(&fresh);
    (fresh, run)
}

#[test]
fn the_example_travels_as_one_bundle() {
    let home = Home::new();
    let bundle = home.dir.path().join("example.tar");
    let wrote = home.expect(
        &[
            "bundle",
            "examples/breast-cancer/pipeline.yaml",
            "-o",
            bundle.to_str().unwrap(),
        ],
        0,
    );
    assert!(
        wrote.stdout.contains("0 registry components"),
        "{}",
        wrote.stdout
    );

    // A valid OCI image layout.
    let entries = entries(&bundle);
    assert_eq!(entries[0].0, "oci-layout");
    let layout: Value = serde_json::from_slice(&entries[0].1).unwrap();
    assert_eq!(layout["imageLayoutVersion"], "1.0.0");
    let index: Value = serde_json::from_slice(&entries[1].1).unwrap();
    assert_eq!(index["schemaVersion"], 2);
    for (name, bytes) in &entries[2..] {
        let hex = name.strip_prefix("blobs/sha256/").unwrap();
        assert_eq!(sluice_runtime::oci::sha256(bytes), format!("sha256:{hex}"));
    }

    let (_, run) = run_offline(&bundle);
    let accuracy = run
        .tasks
        .iter()
        .find(|t| t.name == "evaluate")
        .unwrap()
        .metrics["accuracy"];
    assert!(accuracy >= 0.93, "{accuracy}");

    // One flipped byte in a blob, and the bundle is refused with one line.
    let damaged = home.dir.path().join("damaged.tar");
    let mut bytes = std::fs::read(&bundle).unwrap();
    let needle = b"mean_radius";
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap();
    bytes[at] = b'M';
    std::fs::write(&damaged, bytes).unwrap();
    let fresh = Home::new();
    let refused = fresh.expect(&["run", damaged.to_str().unwrap(), "--offline"], 2);
    assert!(
        refused
            .stderr
            .contains("is not a usable bundle: blob sha256:"),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("does not match its digest"),
        "{}",
        refused.stderr
    );
    assert_eq!(refused.stderr.lines().count(), 1, "{}", refused.stderr);
}

#[test]
fn a_registry_backed_pipeline_runs_from_its_bundle_without_the_registry() {
    let home = Home::new();
    let host = std::env::var("SLUICE_TEST_REGISTRY")
        .expect("SLUICE_TEST_REGISTRY names a local test registry; scripts/test.sh starts them");
    // A self-contained folder: data, predictor and component files beside the pipeline,
    // every wasm step in the registry. It is deleted before the bundle runs.
    let dir = home.dir.path().join("project");
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let example = root().join("examples/breast-cancer");
    for file in ["breast_cancer.csv", "schema.json"] {
        std::fs::copy(example.join("data").join(file), dir.join("data").join(file)).unwrap();
    }
    let release = root().join("sample-components/target/wasm32-wasip2/release");
    std::fs::copy(release.join("predictor.wasm"), dir.join("predictor.wasm")).unwrap();
    let mut pipeline = std::fs::read_to_string(example.join("pipeline.yaml"))
        .unwrap()
        .replace(
            "../../sample-components/target/wasm32-wasip2/release/predictor.wasm",
            "predictor.wasm",
        );
    let prefix = format!(
        "bundle-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let mut references = Vec::new();
    for name in [
        "validate",
        "split",
        "normalize",
        "train",
        "evaluate",
        "package",
    ] {
        let reference = format!("oci://{host}/{prefix}/{name}:0.1.0");
        let wasm: PathBuf = release.join(format!("{name}.wasm"));
        home.expect(
            &[
                "push",
                wasm.to_str().unwrap(),
                &reference,
                "--insecure-registry",
                &host,
            ],
            0,
        );
        let yaml = std::fs::read_to_string(
            root().join(format!("sample-components/{name}/component.yaml")),
        )
        .unwrap()
        .replace(
            &format!("component: ../target/wasm32-wasip2/release/{name}.wasm"),
            &format!("component: {reference}"),
        );
        std::fs::write(dir.join(format!("{name}.yaml")), yaml).unwrap();
        pipeline = pipeline.replace(
            &format!("../../sample-components/{name}/component.yaml"),
            &format!("{name}.yaml"),
        );
        references.push(reference);
    }
    assert!(!pipeline.contains("../../"), "{pipeline}");
    std::fs::write(dir.join("pipeline.yaml"), pipeline).unwrap();

    let bundle = home.dir.path().join("bundle.tar");
    let wrote = home.expect(
        &[
            "bundle",
            dir.join("pipeline.yaml").to_str().unwrap(),
            "-o",
            bundle.to_str().unwrap(),
            "--insecure-registry",
            &host,
        ],
        0,
    );
    assert!(
        wrote.stdout.contains("6 registry components"),
        "{}",
        wrote.stdout
    );
    let index: Value = serde_json::from_slice(&entries(&bundle)[1].1).unwrap();
    let names: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["annotations"]["org.opencontainers.image.ref.name"].as_str())
        .collect();
    for reference in &references {
        assert!(names.contains(&reference.as_str()), "{names:?}");
    }

    std::fs::remove_dir_all(&dir).unwrap();
    let (_, run) = run_offline(&bundle);
    let validate = run.tasks.iter().find(|t| t.name == "validate").unwrap();
    let implementation = validate.implementation.as_deref().unwrap();
    assert!(
        implementation.contains(&format!("oci://{host}/{prefix}/validate@sha256:")),
        "{implementation}"
    );
    assert!(
        run.tasks
            .iter()
            .find(|t| t.name == "evaluate")
            .unwrap()
            .metrics["accuracy"]
            >= 0.93
    );
}

#[test]
fn container_images_travel_with_images() {
    let home = Home::new();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    // An image tag of this test's own, removed from the engine before the bundle runs.
    let image = format!("sluice-samples/train:bundle-{nanos}");
    let docker = |args: &[&str]| {
        let status = std::process::Command::new("docker")
            .args(args)
            .status()
            .expect("docker runs");
        assert!(status.success(), "docker {args:?}");
    };
    docker(&["tag", "sluice-samples/train:0.1.0", &image]);
    let dir = home.dir.path().join("project");
    std::fs::create_dir_all(&dir).unwrap();
    let example = root().join("examples/breast-cancer");
    let train = std::fs::read_to_string(root().join("sample-components/train/component.yaml"))
        .unwrap()
        .replace(
            "image: sluice-samples/train:0.1.0",
            &format!("image: {image}"),
        )
        .replace(
            "../target/",
            &format!("{}/sample-components/target/", root().display()),
        );
    assert!(train.contains(&image));
    std::fs::write(dir.join("train.yaml"), train).unwrap();
    let pipeline = std::fs::read_to_string(example.join("pipeline-container.yaml"))
        .unwrap()
        .replace("../../sample-components/train/component.yaml", "train.yaml")
        .replace(
            "default: data/",
            &format!("default: {}/data/", example.display()),
        )
        .replace("../../", &format!("{}/", root().display()));
    std::fs::write(dir.join("pipeline.yaml"), pipeline).unwrap();
    let bundle = home.dir.path().join("with-images.tar");
    let wrote = home.expect(
        &[
            "bundle",
            dir.join("pipeline.yaml").to_str().unwrap(),
            "-o",
            bundle.to_str().unwrap(),
            "--with-images",
        ],
        0,
    );
    assert!(
        wrote.stdout.contains("1 container images"),
        "{}",
        wrote.stdout
    );
    docker(&["rmi", &image]);

    let fresh = Home::new();
    let cache = fresh.dir.path().join("empty-cache");
    let ran = fresh.expect(
        &[
            "--cache-dir",
            cache.to_str().unwrap(),
            "run",
            bundle.to_str().unwrap(),
            "--offline",
        ],
        0,
    );
    assert!(
        ran.stderr
            .contains(&format!("loaded container images from the bundle: {image}")),
        "{}",
        ran.stderr
    );
    let run = last_run(&fresh);
    let train = run.tasks.iter().find(|t| t.name == "train").unwrap();
    assert_eq!(
        train.implementation.as_deref(),
        Some(format!("container {image}").as_str())
    );
    docker(&["rmi", &image]);
}
