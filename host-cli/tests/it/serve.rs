//! Deploy and serve, end to end through the `sluice` binary: the example pipeline
//! publishes its model, `sluice serve` answers both protocols with the evaluation step's
//! own predictions, new versions go live under load without a failed request, rollback
//! and labels move traffic, idle versions scale to zero and come back, and every bad
//! request gets a 4xx with a message.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use serde_json::{Value, json};
use sluice_runtime::store::{DeployState, RunRecord, Store};

use crate::support::{Home, cache_dir, root};

pub(crate) const PIPELINE: &str = "examples/breast-cancer/pipeline.yaml";
pub(crate) const MODEL: &str = "breast-cancer";

/// A `sluice serve` process of a home, stopped (SIGTERM, then waited for) when dropped.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) url: String,
    pub(crate) token: String,
    log: PathBuf,
}

impl Server {
    pub(crate) fn start(home: &Home, args: &[&str]) -> Server {
        let log = home.dir.path().join(format!("serve-{}.log", uuid_ish()));
        let info = home.dir.path().join("home/serve/server.json");
        let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["serve", "--bind", "127.0.0.1:0"])
            .args(args)
            .current_dir(root())
            .env("SLUICE_HOME", home.dir.path().join("home"))
            .env("SLUICE_CACHE_DIR", cache_dir())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(log.with_extension("err")).unwrap())
            .spawn()
            .expect("sluice serve starts");
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut server = Server {
            child,
            url: String::new(),
            token: String::new(),
            log,
        };
        loop {
            if let Ok(text) = std::fs::read_to_string(&info) {
                let v: Value = serde_json::from_str(&text).unwrap();
                if v["pid"] == server.child.id() {
                    server.url = v["url"].as_str().unwrap().to_owned();
                    break;
                }
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("sluice serve exited {status}: {}", server.output());
            }
            assert!(
                Instant::now() < deadline,
                "sluice serve did not start: {}",
                server.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server.token = std::fs::read_to_string(home.dir.path().join("home/serve/admin-token"))
            .unwrap()
            .trim()
            .to_owned();
        server
    }

    pub(crate) fn output(&self) -> String {
        let out = std::fs::read_to_string(&self.log).unwrap_or_default();
        let err = std::fs::read_to_string(self.log.with_extension("err")).unwrap_or_default();
        format!("--- stdout\n{out}--- stderr\n{err}")
    }

    pub(crate) fn address(&self) -> &str {
        self.url.trim_start_matches("http://")
    }

    /// Stops with SIGTERM and returns the exit status.
    pub(crate) fn stop(&mut self) -> std::process::ExitStatus {
        Command::new("kill")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        self.child.wait().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}

fn uuid_ish() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

pub(crate) fn client() -> Client {
    sluice_runtime::init_tls();
    Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// The last run of a home.
pub(crate) fn last_run(home: &Home) -> RunRecord {
    let list = home.expect(&["runs", "list", "--json", "-n", "1"], 0);
    let runs: Vec<RunRecord> = serde_json::from_str(&list.stdout).unwrap();
    let shown = home.expect(&["runs", "show", &runs[0].id, "--json"], 0);
    serde_json::from_str(&shown.stdout).unwrap()
}

/// The bytes of a task's output in a run.
fn output(home: &Home, run: &RunRecord, task: &str, name: &str) -> Vec<u8> {
    let digest = &run
        .tasks
        .iter()
        .find(|t| t.name == task)
        .unwrap()
        .outputs
        .iter()
        .find(|o| o.name == name)
        .unwrap()
        .digest;
    Store::open(&home.dir.path().join("home"))
        .unwrap()
        .read(digest)
        .unwrap()
}

/// The raw feature rows of the run's test split, and the evaluation step's prediction
/// (probability, label) for each.
pub(crate) fn test_rows_and_predictions(
    home: &Home,
    run: &RunRecord,
) -> (Vec<Vec<f64>>, Vec<(f64, String)>) {
    let test = String::from_utf8(output(home, run, "split", "test")).unwrap();
    let mut lines = test.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let label = header.iter().position(|h| *h == "diagnosis").unwrap();
    let rows: Vec<Vec<f64>> = lines
        .map(|l| {
            l.split(',')
                .enumerate()
                .filter(|(i, _)| *i != label)
                .map(|(_, x)| x.parse().unwrap())
                .collect()
        })
        .collect();
    let predictions = String::from_utf8(output(home, run, "evaluate", "predictions")).unwrap();
    let mut lines = predictions.lines();
    assert_eq!(lines.next(), Some("probability,label"));
    let predictions: Vec<(f64, String)> = lines
        .map(|l| {
            let (p, label) = l.split_once(',').unwrap();
            (p.parse().unwrap(), label.to_owned())
        })
        .collect();
    assert_eq!(rows.len(), predictions.len());
    (rows, predictions)
}

/// The same prediction: the label exactly, the probability to the last bits (JSON
/// parsing may round the shortest decimal form one unit in the last place).
pub(crate) fn assert_same(got: &[(f64, String)], expected: &[(f64, String)], via: &str) {
    assert_eq!(got.len(), expected.len(), "{via}");
    for (i, ((p, l), (q, m))) in got.iter().zip(expected).enumerate() {
        assert_eq!(l, m, "{via}: row {i}");
        assert!(
            (p - q).abs() <= 4.0 * f64::EPSILON * q.abs().max(f64::MIN_POSITIVE),
            "{via}: row {i}: {p} vs {q}"
        );
    }
}

pub(crate) fn pairs(probabilities: &Value, labels: &Value) -> Vec<(f64, String)> {
    probabilities
        .as_array()
        .unwrap()
        .iter()
        .zip(labels.as_array().unwrap())
        .map(|(p, l)| (p.as_f64().unwrap(), l.as_str().unwrap().to_owned()))
        .collect()
}

pub(crate) fn infer(client: &Client, url: &str, path: &str, rows: &[Vec<f64>]) -> (u16, Value) {
    let flat: Vec<f64> = rows.iter().flatten().copied().collect();
    let body = json!({"inputs": [{"name": "features", "shape": [rows.len(), 30], "datatype": "FP64", "data": flat}]});
    let response = client
        .post(format!("{url}{path}"))
        .json(&body)
        .send()
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().unwrap_or(Value::Null))
}

#[test]
fn the_example_deploys_and_serves_its_evaluation_predictions() {
    let home = Home::new();
    let ran = home.expect(&["run", PIPELINE], 0);
    assert!(
        ran.stdout
            .contains("deploy: published model 'breast-cancer' version 1; no server runs"),
        "{}",
        ran.stdout
    );
    let run = last_run(&home);
    let deploy = run.deploy.clone().unwrap();
    assert_eq!(
        (deploy.state, deploy.version),
        (DeployState::Deployed, Some(1))
    );

    let listed: Value =
        serde_json::from_str(&home.expect(&["models", "list", "--json"], 0).stdout).unwrap();
    assert_eq!(
        listed,
        json!([{"name": MODEL, "default": 1, "versions": [1], "labels": {}, "canary_share": 0.0}])
    );
    let shown: Value =
        serde_json::from_str(&home.expect(&["models", "show", MODEL, "--json"], 0).stdout).unwrap();
    let version = &shown["versions"][0];
    assert_eq!(version["run"], json!(run.id));
    assert_eq!(
        version["signature"]["inputs"],
        json!([{"name": "features", "datatype": "FP64", "shape": [-1, 30]}])
    );
    assert!(version["metrics"]["evaluate"]["accuracy"].as_f64().unwrap() >= 0.93);
    // Laid out as TF Serving lays out a model base path.
    let dir = home.dir.path().join("home/models/breast-cancer/1");
    assert!(dir.join("model").is_file() && dir.join("predictor.wasm").is_file());

    let (rows, expected) = test_rows_and_predictions(&home, &run);
    let server = Server::start(&home, &[]);
    let http = client();

    // Open Inference Protocol, every test row in one request.
    let (status, answer) = infer(&http, &server.url, "/v2/models/breast-cancer/infer", &rows);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["model_name"], MODEL);
    assert_eq!(answer["model_version"], "1");
    assert_eq!(answer["outputs"][0]["shape"], json!([rows.len()]));
    assert_same(
        &pairs(&answer["outputs"][0]["data"], &answer["outputs"][1]["data"]),
        &expected,
        "v2",
    );

    // TF Serving, row format then column format.
    let url = format!("{}/v1/models/breast-cancer:predict", server.url);
    let answer: Value = http
        .post(&url)
        .json(&json!({"instances": rows}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let predictions = answer["predictions"].as_array().unwrap();
    let got: Vec<(f64, String)> = predictions
        .iter()
        .map(|p| {
            (
                p["probability"].as_f64().unwrap(),
                p["label"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_same(&got, &expected, "tfs rows");
    let answer: Value = http
        .post(&url)
        .json(&json!({"inputs": rows}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_same(
        &pairs(
            &answer["outputs"]["probability"],
            &answer["outputs"]["label"],
        ),
        &expected,
        "tfs columns",
    );

    // Status and metadata as TF Serving and OIP clients read them.
    let status: Value = http
        .get(format!("{}/v1/models/breast-cancer", server.url))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        status,
        json!({"model_version_status": [{"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}], "name": MODEL, "ready": true})
    );
    let meta: Value = http
        .get(format!(
            "{}/v1/models/breast-cancer/versions/1/metadata",
            server.url
        ))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let sig = &meta["metadata"]["signature_def"]["signature_def"]["serving_default"];
    assert_eq!(sig["inputs"]["features"]["dtype"], "DT_DOUBLE");
    assert_eq!(
        sig["inputs"]["features"]["tensor_shape"]["dim"][1]["size"],
        "30"
    );
    assert_eq!(sig["method_name"], "tensorflow/serving/predict");
    let meta: Value = http
        .get(format!("{}/v2/models/breast-cancer", server.url))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(meta["versions"], json!(["1"]));
    assert_eq!(
        meta["outputs"][1],
        json!({"name": "label", "datatype": "BYTES", "shape": [-1]})
    );
    for path in [
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/breast-cancer/ready",
        "/v2/models/breast-cancer/versions/1/ready",
    ] {
        let response = http.get(format!("{}{path}", server.url)).send().unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }

    // Stock clients, unchanged: Triton's and KServe's Python clients, and `requests` on
    // TF Serving's API.
    let rows_file = home.dir.path().join("rows.csv");
    let text: String = rows
        .iter()
        .map(|r| r.iter().map(f64::to_string).collect::<Vec<_>>().join(",") + "\n")
        .collect();
    std::fs::write(&rows_file, text).unwrap();
    let python = std::env::var("SLUICE_TEST_PYTHON").expect(
        "SLUICE_TEST_PYTHON names a Python with tritonclient[http], kserve and requests; scripts/test.sh sets one up",
    );
    let out = Command::new(python)
        .arg(root().join("tests/clients/stock_clients.py"))
        .args([server.address(), MODEL])
        .arg(&rows_file)
        .stderr(Stdio::inherit())
        .output()
        .expect("the stock clients' script runs");
    assert!(out.status.success(), "the stock clients failed");
    let results: Value = serde_json::from_slice(&out.stdout).unwrap();
    for (client, got) in results.as_object().unwrap() {
        let got: Vec<(f64, String)> = got
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p[0].as_f64().unwrap(), p[1].as_str().unwrap().to_owned()))
            .collect();
        assert_same(&got, &expected, client);
    }
    let mut clients: Vec<&String> = results.as_object().unwrap().keys().collect();
    clients.sort();
    assert_eq!(
        clients,
        [
            "kserve_v1",
            "kserve_v2_binary",
            "kserve_v2_json",
            "tfs_column",
            "tfs_row",
            "triton_binary",
            "triton_defaults",
            "triton_deflate",
            "triton_gzip",
            "triton_json"
        ]
    );

    let metrics = http
        .get(format!("{}/metrics", server.url))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains(
            r#"sluice_requests_total{code="200",model="breast-cancer",protocol="tfs",version="1"}"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"sluice_pool_instances{model="breast-cancer",version="1"}"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("sluice_request_duration_seconds_bucket"),
        "{metrics}"
    );
}

/// A copy of the example pipeline with absolute paths and another gate.
fn pipeline_with_gate(home: &Home, gate: &str) -> PathBuf {
    let example = root().join("examples/breast-cancer");
    let text = std::fs::read_to_string(example.join("pipeline.yaml"))
        .unwrap()
        .replace("gate: accuracy >= 0.93", &format!("gate: {gate}"))
        .replace("../../", &format!("{}/", root().display()))
        .replace(
            "default: data/",
            &format!("default: {}/data/", example.display()),
        );
    let path = home.dir.path().join("pipeline.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn nothing_is_deployed_when_a_task_fails_or_the_gate_does_not_hold() {
    let home = Home::new();
    let ran = home.expect(&["run", PIPELINE, "-p", "test_fraction=1.5"], 1);
    assert!(
        ran.stdout
            .contains("nothing deployed as model 'breast-cancer': the run failed (split failed"),
        "{}",
        ran.stdout
    );
    assert_eq!(last_run(&home).deploy.unwrap().state, DeployState::Skipped);

    let strict = pipeline_with_gate(&home, "accuracy >= 0.999 && recall > 0.99");
    let ran = home.expect(&["run", strict.to_str().unwrap()], 0);
    assert!(
        ran.stdout.contains("nothing deployed as model 'breast-cancer': the gate `accuracy >= 0.999 && recall > 0.99` does not hold (accuracy = 0.986"),
        "{}",
        ran.stdout
    );
    let ran = home.expect(&["models", "list"], 0);
    assert!(ran.stdout.contains("no models yet"), "{}", ran.stdout);
    assert!(!home.dir.path().join("home/models/breast-cancer/1").exists());
}

#[test]
fn a_new_version_goes_live_under_load_then_rolls_back() {
    let home = Home::new();
    home.expect(&["run", PIPELINE], 0);
    let run = last_run(&home);
    let (rows, _) = test_rows_and_predictions(&home, &run);
    let server = Server::start(&home, &[]);

    // Clients keep asking while a second run, with another regularisation, deploys.
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|i| {
            let stop = stop.clone();
            let url = server.url.clone();
            let row = vec![rows[i].clone()];
            std::thread::spawn(move || {
                let http = client();
                let mut seen = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let (status, answer) =
                        infer(&http, &url, "/v2/models/breast-cancer/infer", &row);
                    seen.push((
                        status,
                        answer["model_version"].as_str().unwrap_or("").to_owned(),
                    ));
                }
                seen
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let ran = home.expect(&["run", PIPELINE, "-p", "l2=0.5"], 0);
    let live = format!(
        "deploy: published model 'breast-cancer' version 2; the server at {} now serves version 2",
        server.url
    );
    assert!(ran.stdout.contains(&live), "{}", ran.stdout);
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for client in clients {
        let seen = client.join().unwrap();
        total += seen.len();
        assert!(
            seen.iter().all(|(status, _)| *status == 200),
            "a request failed: {seen:?}"
        );
        assert_eq!(seen.first().unwrap().1, "1");
        assert_eq!(seen.last().unwrap().1, "2");
        // Once a client saw the new version, it never saw the old one again.
        let first_new = seen.iter().position(|(_, v)| v == "2").unwrap();
        assert!(seen[first_new..].iter().all(|(_, v)| v == "2"));
    }
    assert!(total > 40, "only {total} requests during the swap");

    let http = client();
    // Rollback through the CLI reaches the running server at once.
    let ran = home.expect(&["models", "rollback", MODEL], 0);
    assert!(
        ran.stdout.contains("rolled back from version 2 to 1"),
        "{}",
        ran.stdout
    );
    let (_, answer) = infer(
        &http,
        &server.url,
        "/v2/models/breast-cancer/infer",
        &rows[..1],
    );
    assert_eq!(answer["model_version"], "1");
    // A pinned version still serves.
    let (status, answer) = infer(
        &http,
        &server.url,
        "/v2/models/breast-cancer/versions/2/infer",
        &rows[..1],
    );
    assert_eq!((status, answer["model_version"].as_str()), (200, Some("2")));

    // Labels pin versions; a canary takes its share of unpinned traffic.
    home.expect(&["models", "label", MODEL, "stable", "1"], 0);
    home.expect(
        &["models", "label", MODEL, "canary", "2", "--share", "0.25"],
        0,
    );
    let predict = |path: &str| -> Value {
        http.post(format!("{}/v1/models/{path}:predict", server.url))
            .json(&json!({"instances": [rows[0]]}))
            .send()
            .unwrap()
            .json()
            .unwrap()
    };
    assert!(predict("breast-cancer/labels/stable")["predictions"].is_array());
    let status: Value = http
        .get(format!(
            "{}/v1/models/breast-cancer/labels/canary",
            server.url
        ))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(status["model_version_status"][0]["version"], "2");
    let mut canary = 0;
    for _ in 0..200 {
        let (_, answer) = infer(
            &http,
            &server.url,
            "/v2/models/breast-cancer/infer",
            &rows[..1],
        );
        if answer["model_version"] == "2" {
            canary += 1;
        }
    }
    assert_eq!(canary, 50, "a 25% canary share of 200 requests");
    let ran = home.expect(&["models", "rollback", MODEL, "--to", "7"], 2);
    assert!(ran.stderr.contains("no version 7"), "{}", ran.stderr);
}

#[test]
fn the_pool_grows_with_demand_shrinks_when_idle_and_scales_to_zero() {
    let home = Home::new();
    home.expect(&["run", PIPELINE], 0);
    let run = last_run(&home);
    let (rows, expected) = test_rows_and_predictions(&home, &run);
    // A model whose every prediction takes 300 ms, so concurrent requests overlap
    // however fast the machine reads them.
    let x: &[(&str, &str, &[i64])] = &[("x", "FP64", &[-1])];
    crate::serve_spec::publish_probe(&home, "slow", x, x, json!({"spin_ms": 300}));
    let server = Server::start(
        &home,
        &[
            "--max-instances",
            "3",
            "--idle-timeout",
            "500ms",
            "--scale-to-zero",
            "2s",
        ],
    );
    let http = client();
    let metric = |http: &Client, name: &str, model: &str| -> Option<u64> {
        let text = http
            .get(format!("{}/metrics", server.url))
            .send()
            .unwrap()
            .text()
            .unwrap();
        let series = format!(r#"{name}{{model="{model}",version="1"}} "#);
        text.lines()
            .find_map(|l| l.strip_prefix(&series))
            .map(|v| v.parse().unwrap())
    };
    let instances = |http: &Client, model: &str| metric(http, "sluice_pool_instances", model);
    let loads = |http: &Client| metric(http, "sluice_model_loads_total", MODEL);
    // Loaded and warmed at start: one instance.
    assert_eq!((instances(&http, MODEL), loads(&http)), (Some(1), Some(1)));
    assert_eq!(instances(&http, "slow"), Some(1));

    // Eight concurrent requests: the pool grows to its maximum, and never past it.
    let burst: Vec<_> = (0..8)
        .map(|_| {
            let url = format!("{}/v1/models/slow:predict", server.url);
            std::thread::spawn(move || {
                client()
                    .post(url)
                    .body(r#"{"instances": [1.5]}"#)
                    .send()
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let mut peak = 0;
    while !burst.iter().all(|t| t.is_finished()) {
        peak = peak.max(instances(&http, "slow").unwrap());
        std::thread::sleep(Duration::from_millis(20));
    }
    for request in burst {
        assert_eq!(request.join().unwrap(), 200);
    }
    let grown = instances(&http, "slow").unwrap();
    assert_eq!(
        (peak.max(grown), grown <= 3),
        (3, true),
        "{grown} instances after a burst of 8 with at most 3 (peak {peak})"
    );

    // Idle instances go, down to one warm instance; then the unused versions unload.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = vec![grown];
    while instances(&http, "slow") != Some(0) || instances(&http, MODEL) != Some(0) {
        assert!(Instant::now() < deadline, "never scaled to zero: {seen:?}");
        let now = instances(&http, "slow").unwrap();
        if seen.last() != Some(&now) {
            seen.push(now);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        seen.contains(&1),
        "no warm instance was kept before scaling to zero: {seen:?}"
    );

    // The next request loads it again.
    let (status, answer) = infer(&http, &server.url, "/v2/models/breast-cancer/infer", &rows);
    assert_eq!(status, 200);
    assert_same(
        &pairs(&answer["outputs"][0]["data"], &answer["outputs"][1]["data"]),
        &expected,
        "after scaling to zero",
    );
    assert_eq!((instances(&http, MODEL), loads(&http)), (Some(1), Some(2)));
}

#[test]
fn bad_requests_get_a_4xx_and_a_message() {
    let home = Home::new();
    home.expect(&["run", PIPELINE], 0);
    let mut server = Server::start(&home, &["--body-limit", "64"]);
    let http = client();
    let row: Vec<f64> = vec![1.0; 30];
    let big = json!({"instances": vec![row.clone(); 1000]});
    let cases: Vec<(&str, &str, Value, u16, &str)> = vec![
        (
            "POST",
            "/v1/models/breast-cancer:predict",
            json!({"instances": [[1.0, 2.0]]}),
            400,
            "input 'features' has shape [1, 2], but the model takes [-1, 30]",
        ),
        (
            "POST",
            "/v1/models/breast-cancer:predict",
            json!({"instances": [vec!["x"; 30]]}),
            400,
            "element 0 is \"x\", not FP64",
        ),
        (
            "POST",
            "/v1/models/breast-cancer:predict",
            json!({"rows": []}),
            400,
            "unknown key 'rows'",
        ),
        (
            "POST",
            "/v1/models/breast-cancer:predict",
            big,
            413,
            "larger than the limit of 65536 bytes",
        ),
        (
            "POST",
            "/v1/models/nope:predict",
            json!({"instances": [row]}),
            404,
            "model 'nope' is not served",
        ),
        (
            "POST",
            "/v1/models/breast-cancer/versions/9:predict",
            json!({"instances": [row]}),
            404,
            "has no version 9",
        ),
        (
            "POST",
            "/v1/models/breast-cancer/labels/gold:predict",
            json!({"instances": [row]}),
            404,
            "has no label 'gold'",
        ),
        (
            "POST",
            "/v1/models/breast-cancer:classify",
            json!({"examples": []}),
            400,
            "Sluice models answer :predict",
        ),
        (
            "GET",
            "/v1/models/breast-cancer:predict",
            Value::Null,
            405,
            ":predict takes POST",
        ),
        (
            "POST",
            "/v2/models/breast-cancer/infer",
            json!({"inputs": [{"name": "features", "shape": [2, 30], "datatype": "FP64", "data": row}]}),
            400,
            "holds 60 elements, but 30 were given",
        ),
        (
            "POST",
            "/v2/models/breast-cancer/infer",
            json!({"inputs": [{"name": "features", "shape": [1, 30], "datatype": "INT64", "data": vec![(1i64 << 53) + 1; 30]}]}),
            400,
            "input 'features' must be FP64: INT64 data cannot be converted to FP64 without loss: element 0 is 9007199254740993",
        ),
        (
            "POST",
            "/v2/models/breast-cancer/infer",
            json!({"inputs": [{"name": "features", "shape": [1, 30], "datatype": "BOOL", "data": vec![true; 30]}]}),
            400,
            "input 'features' must be FP64, not BOOL",
        ),
        (
            "POST",
            "/v2/models/breast-cancer/infer",
            json!({"inputs": [{"name": "x", "shape": [1, 30], "datatype": "FP64", "data": row}]}),
            400,
            "the model has no input 'x'",
        ),
        (
            "POST",
            "/v2/models/breast-cancer/infer",
            json!({"inputs": [{"name": "features", "shape": [1, 30], "datatype": "FP16", "data": row}]}),
            400,
            "datatype FP16 is not supported",
        ),
        (
            "POST",
            "/v2/models/breast-cancer/infer",
            json!({"inputs": [{"name": "features", "shape": [1, 30], "datatype": "FP64", "data": row}], "outputs": [{"name": "score"}]}),
            400,
            "the model has no output 'score'",
        ),
        (
            "POST",
            "/v2/models/breast-cancer/infer",
            json!({"inputs": []}),
            400,
            "'inputs' must be a non-empty list",
        ),
        (
            "POST",
            "/v2/models/breast-cancer/versions/x/infer",
            json!({}),
            404,
            "has no version 'x'",
        ),
        (
            "GET",
            "/v2/models/nope/ready",
            Value::Null,
            404,
            "model 'nope' is not served",
        ),
        (
            "GET",
            "/v3/anything",
            Value::Null,
            404,
            "no such endpoint: GET /v3/anything",
        ),
        (
            "DELETE",
            "/v2/models/breast-cancer",
            Value::Null,
            405,
            "does not take DELETE",
        ),
        (
            "POST",
            "/admin/models/breast-cancer/reload",
            json!({}),
            401,
            "Authorization: Bearer",
        ),
    ];
    for (method, path, body, status, message) in cases {
        let mut request = http.request(method.parse().unwrap(), format!("{}{path}", server.url));
        if !body.is_null() {
            request = request.json(&body);
        }
        let response = request.send().unwrap();
        let got = response.status().as_u16();
        let answer: Value = response.json().unwrap_or(Value::Null);
        assert_eq!(got, status, "{method} {path}: {answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(error.contains(message), "{method} {path}: {error}");
    }
    for raw in ["{\"instances\": [", "[1, 2]", ""] {
        let response = http
            .post(format!("{}/v1/models/breast-cancer:predict", server.url))
            .body(raw)
            .send()
            .unwrap();
        assert_eq!(response.status(), 400, "{raw}");
        let answer: Value = response.json().unwrap();
        assert!(
            answer["error"]
                .as_str()
                .unwrap()
                .starts_with("the request body"),
            "{answer}"
        );
    }
    let admin = |token: &str, action: &str| {
        http.post(format!(
            "{}/admin/models/breast-cancer/{action}",
            server.url
        ))
        .bearer_auth(token)
        .send()
        .unwrap()
    };
    assert_eq!(admin("wrong-token-wrong-token", "reload").status(), 401);
    assert_eq!(admin(&server.token, "explode").status(), 404);
    assert_eq!(admin(&server.token, "rollback").status(), 409);
    assert_eq!(admin(&server.token, "deploy").status(), 200);
    assert_eq!(admin(&server.token, "unload").status(), 200);
    let response = http
        .get(format!("{}/v2/models/breast-cancer", server.url))
        .send()
        .unwrap();
    assert_eq!(response.status(), 404);
    // Every error was answered; the server still runs, and stops cleanly.
    assert!(server.child.try_wait().unwrap().is_none());
    assert!(server.stop().success(), "{}", server.output());
    assert!(!home.dir.path().join("home/serve/server.json").exists());
}
