//! The web UI (`sluice ui`): its pages over HTTP — what they show of real runs, what they
//! refuse and how they serve artifacts — and the same pages in a real Chromium, driven
//! through WebDriver (chromedriver, started by `scripts/browser.sh`), with a screenshot
//! of each page kept under the target folder and an accessibility check (axe-core, from
//! PyPI) of each.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use reqwest::header;
use serde_json::Value;
use sluice_runtime::store::RunRecord;

use crate::support::{Home, cache_dir, root};

const EXAMPLE: &str = "examples/breast-cancer/pipeline.yaml";

/// `sluice ui` on a test home, on a port of its own.
struct UiServer {
    child: Child,
    url: String,
}

impl UiServer {
    fn start(home: &Home) -> UiServer {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["ui", "--bind", "127.0.0.1:0"])
            .current_dir(root())
            .env("SLUICE_HOME", home.dir.path().join("home"))
            .env("SLUICE_CACHE_DIR", cache_dir())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("sluice ui starts");
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let url = line
            .strip_prefix("UI at ")
            .and_then(|rest| rest.split_once("/ui/ "))
            .map(|(url, _)| url.to_owned())
            .unwrap_or_else(|| panic!("sluice ui said: {line}"));
        // Keep reading, so the process never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        UiServer { child, url }
    }

    fn get(&self, path: &str) -> reqwest::blocking::Response {
        client().get(format!("{}{path}", self.url)).send().unwrap()
    }

    fn page(&self, path: &str) -> String {
        let response = self.get(path);
        assert_eq!(response.status(), 200, "GET {path}");
        response.text().unwrap()
    }
}

impl Drop for UiServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client() -> Client {
    sluice_runtime::init_tls();
    Client::builder()
        .timeout(Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn run(home: &Home, args: &[&str]) -> RunRecord {
    let mut all = vec!["run"];
    all.extend_from_slice(args);
    all.push("--json");
    home.expect(&all, 0).record()
}

fn model_default(home: &Home) -> u64 {
    let list = home.expect(&["models", "list", "--json"], 0);
    let models: Value = serde_json::from_str(&list.stdout).unwrap();
    models[0]["default"].as_u64().unwrap()
}

#[test]
fn pages_show_runs_tasks_comparisons_lineage_and_models_and_refuse_what_they_must() {
    let home = Home::new();
    let weak = run(&home, &[EXAMPLE, "-p", "l2=1"]);
    let better = run(&home, &[EXAMPLE]);
    let hostile = run(
        &home,
        &[
            "tests/cases/run-params/pipeline.yaml",
            "-p",
            "text=<script>alert('x')</script>",
        ],
    );
    let ui = UiServer::start(&home);

    // The runs list, newest first; every page carries a policy that runs only the UI's
    // own script and style.
    let response = ui.get("/ui/");
    let csp = response.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert_eq!(
        response.headers()[header::X_CONTENT_TYPE_OPTIONS],
        "nosniff"
    );
    let list = response.text().unwrap();
    let at = |id: &str| list.find(id).unwrap_or_else(|| panic!("{id} listed"));
    assert!(at(&hostile.id) < at(&better.id) && at(&better.id) < at(&weak.id));
    // Filters, one page at a time, and what a bad filter gets.
    let only = ui.page("/ui/?pipeline=params");
    assert!(only.contains(&hostile.id) && !only.contains(&better.id));
    let first = ui.page("/ui/?limit=1");
    assert!(first.contains(&hostile.id) && !first.contains(&better.id));
    let next = format!("after={}", hostile.id);
    assert!(first.contains(&next), "a link to the next page");
    let second = ui.page(&format!("/ui/?limit=1&{next}"));
    assert!(second.contains(&better.id) && !second.contains(&hostile.id));
    let bad = ui.get("/ui/?state=finished");
    assert_eq!(bad.status(), 400);
    assert!(
        bad.text()
            .unwrap()
            .contains("state: expected one of running")
    );
    assert_eq!(ui.get("/ui/?since=yesterday").status(), 400);

    // A run: its graph (every task a node, coloured by state), parameters, deploy outcome
    // and timings.
    let page = ui.page(&format!("/ui/runs/{}", better.id));
    for task in &better.tasks {
        assert!(
            page.contains(&format!("data-task=\"{}\"", task.name)),
            "{}",
            task.name
        );
    }
    assert!(page.contains("node-state-succeeded"));
    assert!(
        page.matches("<svg").count() >= 2,
        "the graph and the Gantt chart"
    );
    assert!(page.contains("published") || page.contains("deployed"));
    assert_eq!(ui.get("/ui/runs/20000101-000000-dead").status(), 404);

    // Whatever a run holds is shown as text, never as markup.
    let page = ui.page(&format!("/ui/runs/{}", hostile.id));
    assert!(
        page.contains("&lt;script&gt;alert('x')&lt;/script&gt;"),
        "{page}"
    );
    assert!(!page.contains("<script>alert"));
    let task = ui.page(&format!("/ui/runs/{}/tasks/a", hostile.id));
    assert!(!task.contains("<script>alert"));

    // A task: metrics, previews (the predictions table as a table), logs.
    let evaluate = ui.page(&format!("/ui/runs/{}/tasks/evaluate", better.id));
    assert!(evaluate.contains("<td>accuracy</td>"), "{evaluate}");
    assert!(evaluate.contains("<th scope=\"col\">probability</th>"));
    assert!(evaluate.contains("confusion matrix"), "the step's log");

    // Downloads: the stored bytes, as an attachment, as text at most, sandboxed.
    let predictions = better
        .tasks
        .iter()
        .find(|t| t.name == "evaluate")
        .unwrap()
        .outputs
        .iter()
        .find(|o| o.name == "predictions")
        .unwrap();
    let download = ui.get(&format!(
        "/ui/artifacts/{}?name=predictions",
        predictions.digest
    ));
    assert_eq!(download.status(), 200);
    let h = download.headers().clone();
    assert_eq!(h[header::CONTENT_TYPE], "text/plain; charset=utf-8");
    assert_eq!(
        h[header::CONTENT_DISPOSITION],
        "attachment; filename=\"predictions\""
    );
    assert!(
        h[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("sandbox")
    );
    assert_eq!(download.bytes().unwrap().len() as u64, predictions.size);
    assert_eq!(ui.get("/ui/artifacts/sha256:00?name=x").status(), 400);

    // Two runs side by side: the parameter that differs, both accuracies, ROC curves.
    let compare = ui.page(&format!("/ui/compare?run={}&run={}", weak.id, better.id));
    assert!(compare.contains("class=\"differs\""));
    let accuracy = |r: &RunRecord| {
        r.tasks
            .iter()
            .find(|t| t.name == "evaluate")
            .unwrap()
            .metrics["accuracy"]
    };
    for r in [&weak, &better] {
        assert!(compare.contains(&format!("<td class=\"num\">{}</td>", accuracy(r))));
    }
    assert!(compare.contains("ROC curve"));
    assert!(compare.contains("Confusion matrix"));

    // Lineage: the model artifact, from the task that made it to the tasks that read it.
    let model = crate::support::trained_model(&better);
    let lineage = ui.page(&format!("/ui/lineage/{model}"));
    let (made, read) = lineage.split_once("Read by").unwrap();
    assert!(made.contains("/tasks/train\""));
    assert!(read.contains("/tasks/evaluate\"") && read.contains("/tasks/package\""));

    // The models page, and changes: only with the token, only from the UI's own pages.
    let models = ui.page("/ui/models");
    assert!(models.contains("breast-cancer"));
    assert_eq!(model_default(&home), 2);
    let token = std::fs::read_to_string(home.dir.path().join("home/serve/admin-token")).unwrap();
    let rollback = |origin: Option<&str>, token: &str| {
        let mut request = client()
            .post(format!("{}/ui/models/breast-cancer/rollback", ui.url))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(format!("to=1&token={token}"));
        if let Some(origin) = origin {
            request = request.header(header::ORIGIN, origin);
        }
        request.send().unwrap().status().as_u16()
    };
    assert_eq!(rollback(None, token.trim()), 403);
    assert_eq!(rollback(Some("http://evil.example"), token.trim()), 403);
    assert_eq!(rollback(Some(&ui.url), "not-the-token"), 401);
    assert_eq!(model_default(&home), 2, "nothing changed");
    assert_eq!(rollback(Some(&ui.url), token.trim()), 303);
    assert_eq!(model_default(&home), 1);
    let unknown = client()
        .post(format!("{}/ui/models/nope/rollback", ui.url))
        .header(header::ORIGIN, &ui.url)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("token={}", token.trim()))
        .send()
        .unwrap();
    assert_eq!(unknown.status(), 404);
    assert!(unknown.text().unwrap().contains("no model named 'nope'"));

    // What a user or another site may send gets one line on the UI's error page.
    let refused = |path: &str, host: Option<&str>| {
        let mut request = client().get(format!("{}{path}", ui.url));
        if let Some(host) = host {
            request = request.header(header::HOST, host);
        }
        let response = request.send().unwrap();
        (response.status().as_u16(), response.text().unwrap())
    };
    // A page of another site whose name points at 127.0.0.1 (DNS rebinding).
    let (status, _) = refused("/ui/", Some("attacker.example:8580"));
    assert_eq!(status, 421);
    let (status, _) = refused(
        &format!("/ui/artifacts/{}?name=x", predictions.digest),
        Some("attacker.example"),
    );
    assert_eq!(status, 421);
    assert_eq!(refused("/ui/", Some("localhost:8580")).0, 200);
    let (status, page) = refused("/ui/?limit=abc", None);
    assert_eq!(status, 400);
    assert!(page.contains("<h1>") && page.contains("limit"), "{page}");
    let (status, page) = refused("/ui/?after=20000101-000000-dead", None);
    assert_eq!(status, 400);
    assert!(page.contains("after: no run"), "{page}");
    let (status, page) = refused("/ui/nothing-here", None);
    assert_eq!(status, 404);
    assert!(page.contains("no page at /ui/nothing-here"), "{page}");
    // Out-of-range pages show the last; a unique prefix of a run's id finds it.
    assert_eq!(
        refused(
            &format!("/ui/runs/{}?page=18446744073709551615", better.id),
            None
        )
        .0,
        200
    );
    let prefix = &better.id[..better.id.len() - 1];
    let matching = [&weak.id, &better.id, &hostile.id]
        .iter()
        .filter(|id| id.starts_with(prefix))
        .count();
    assert_eq!(matching, 1, "a prefix of one run's id only");
    let (status, page) = refused(&format!("/ui/runs/{prefix}"), None);
    assert_eq!(status, 200);
    assert!(page.contains(&format!("Run <code>{}</code>", better.id)));
}

/// A run whose `sluice` was killed shows, in a UI started before it was, as interrupted,
/// its running task failed and nothing still running or following.
#[test]
fn a_killed_run_shows_as_interrupted_with_nothing_running() {
    let home = Home::new();
    home.expect(&["runs", "list"], 0);
    let ui = UiServer::start(&home);
    let pipeline = ticking_pipeline(home.dir.path());
    let (mut child, _stderr, _) = home.start_run(&pipeline, "tick: started");
    let page = ui.page("/ui/");
    let id = page
        .split("data-run=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    // Let the task write a line or two into its live log, then kill the driver outright.
    std::thread::sleep(Duration::from_millis(900));
    let live = home.dir.path().join(format!("home/runs/{id}/.live"));
    assert!(live.exists(), "the running task's live log");
    child.kill().unwrap();
    child.wait().unwrap();
    let page = ui.page(&format!("/ui/runs/{id}"));
    assert!(page.contains("state-interrupted"), "{page}");
    let tasks = page.split("<table class=\"tasks\">").nth(1).unwrap();
    assert!(
        !tasks.contains("state-running") && !tasks.contains("state-pending"),
        "{tasks}"
    );
    assert!(tasks.contains("state-failed") && tasks.contains("state-skipped"));
    assert!(
        !live.exists(),
        "the live logs of an interrupted run are gone"
    );
    // Its events end at once.
    let events = ui.get(&format!("/ui/runs/{id}/events")).text().unwrap();
    assert!(events.contains("event: end"), "{events}");
}

/// A WebDriver session in headless Chromium.
struct Browser {
    client: fantoccini::Client,
    shots: PathBuf,
    axe: String,
}

impl Browser {
    async fn open() -> Browser {
        let webdriver = std::env::var("SLUICE_TEST_WEBDRIVER").unwrap_or_else(|_| {
            panic!(
                "SLUICE_TEST_WEBDRIVER is not set: start chromedriver with `eval \"$(scripts/browser.sh start)\"`"
            )
        });
        let chromium = std::env::var("SLUICE_TEST_CHROMIUM").unwrap_or("chromium".into());
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,1000"],
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = fantoccini::ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&webdriver)
            .await
            .unwrap_or_else(|e| panic!("no WebDriver session at {webdriver}: {e}"));
        let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots");
        std::fs::create_dir_all(&shots).unwrap();
        Browser {
            client,
            shots,
            axe: axe_source(),
        }
    }

    async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    /// The page as it is, saved as `<name>.png`, and checked against the WCAG 2 A and AA
    /// rules axe-core knows (labels, contrast, names, structure).
    async fn check(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
        let script = format!(
            "{}\nconst done = arguments[arguments.length - 1];\n\
             axe.run(document, {{runOnly: {{type: 'tag', values: ['wcag2a', 'wcag2aa']}}}})\n\
               .then(r => done(r.violations.map(v => v.id + ': ' + v.help + ' (' + \
                 v.nodes.map(n => n.target.join(' ')).slice(0, 3).join(', ') + ')')))\n\
               .catch(e => done(['axe failed: ' + e]));",
            self.axe
        );
        let violations = self.client.execute_async(&script, vec![]).await.unwrap();
        assert_eq!(violations, serde_json::json!([]), "{name}: accessibility");
    }

    /// The `class` of the element `css` selects, once `pred` holds for it (within 30 s).
    async fn wait_for_class(&self, css: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(el) = self.client.find(fantoccini::Locator::Css(css)).await
                && let Ok(Some(class)) = el.attr("class").await
                && pred(&class)
            {
                return class;
            }
            assert!(Instant::now() < deadline, "{css} never matched");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn text(&self, css: &str) -> String {
        self.client
            .find(fantoccini::Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .text()
            .await
            .unwrap()
    }
}

/// axe-core's script, from the `axe-playwright-python` package of the test virtualenv
/// (found without importing it: it imports Playwright, which is not installed).
fn axe_source() -> String {
    let python = std::env::var("SLUICE_TEST_PYTHON")
        .expect("SLUICE_TEST_PYTHON names the test virtualenv's python (scripts/test.sh sets it)");
    let out = Command::new(python)
        .args([
            "-c",
            "import importlib.util, pathlib; \
             spec = importlib.util.find_spec('axe_playwright_python'); \
             print(pathlib.Path(spec.submodule_search_locations[0]) / 'axe.min.js')",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(String::from_utf8(out.stdout).unwrap().trim()).unwrap()
}

/// A pipeline whose first task writes a line every 400 ms for about 3 s.
fn ticking_pipeline(dir: &Path) -> PathBuf {
    let probe = root().join("sample-components/target/wasm32-wasip2/release/probe.wasm");
    std::fs::write(
        dir.join("tick.yaml"),
        format!(
            "name: tick\ninputs:\n- {{name: n, type: Integer}}\nimplementation:\n  wasm:\n    component: {}\n    args: [tick, {{inputValue: n}}, '400']\n",
            probe.display()
        ),
    )
    .unwrap();
    let pipeline = dir.join("ticking.yaml");
    std::fs::write(
        &pipeline,
        "name: ticking\ntasks:\n  tick: {component: tick.yaml, inputs: {n: 8}}\n  after: {component: tick.yaml, inputs: {n: 1}, after: [tick]}\n",
    )
    .unwrap();
    pipeline
}

#[test]
fn in_a_browser_runs_update_live_logs_follow_runs_compare_and_a_model_rolls_back() {
    let home = Home::new();
    let weak = run(&home, &[EXAMPLE, "-p", "l2=1"]);
    let better = run(&home, &[EXAMPLE]);
    let server = crate::serve::Server::start(&home, &["--ui"]);
    // The model server answers the UI's pages too.
    let models = crate::serve::client()
        .get(format!("{}/ui/models", server.url))
        .send()
        .unwrap();
    assert_eq!(models.status(), 200);
    assert!(models.text().unwrap().contains("breast-cancer"));
    let ui = UiServer::start(&home);
    let pipeline = ticking_pipeline(home.dir.path());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let b = Browser::open().await;

        // The runs list.
        b.goto(&format!("{}/ui/", ui.url)).await;
        let list = b.text("table.runs").await;
        assert!(
            list.contains(&weak.id) && list.contains(&better.id),
            "{list}"
        );
        b.check("runs").await;

        // A run opened while it runs: its first node turns from running to succeeded.
        let (mut child, _stderr, _) = home.start_run(&pipeline, "tick: started");
        let running: Value = serde_json::from_str(
            &home
                .expect(&["runs", "list", "--json", "-n", "1"], 0)
                .stdout,
        )
        .unwrap();
        let id = running[0]["id"].as_str().unwrap().to_owned();
        b.goto(&format!("{}/ui/runs/{id}", ui.url)).await;
        b.wait_for_class("#node-0", |c| c.contains("node-state-running"))
            .await;
        b.check("run-running").await;
        // The task's page follows what it writes while it runs.
        b.goto(&format!("{}/ui/runs/{id}/tasks/tick", ui.url)).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let live = match b.client.find(fantoccini::Locator::Css("#live-log")).await {
                Ok(el) => el.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if live.contains("tick 2") {
                break;
            }
            assert!(Instant::now() < deadline, "no live output: {live:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        b.check("task-live").await;
        b.goto(&format!("{}/ui/runs/{id}", ui.url)).await;
        b.wait_for_class("#node-0", |c| c.contains("node-state-succeeded"))
            .await;
        assert!(child.wait().unwrap().success());
        // Once it has ended, the page shows the final record; the log stays.
        b.wait_for_class("#run-state .state", |c| c.contains("state-succeeded"))
            .await;
        // ... after it reloads: nothing follows the run any more.
        let deadline = Instant::now() + Duration::from_secs(30);
        while b
            .client
            .find(fantoccini::Locator::Css("[data-events]"))
            .await
            .is_ok()
        {
            assert!(Instant::now() < deadline, "the page never reloaded");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(b.text("table.tasks").await.contains("wasm command"));
        b.check("run").await;
        b.goto(&format!("{}/ui/runs/{id}/tasks/tick", ui.url)).await;
        assert!(b.text("pre.log").await.contains("tick 8"));

        // Two runs compared: both accuracies in one table, ROC curves drawn.
        b.goto(&format!(
            "{}/ui/compare?run={}&run={}",
            ui.url, weak.id, better.id
        ))
        .await;
        let metrics = b.text("#metrics").await;
        for r in [&weak, &better] {
            let accuracy = r
                .tasks
                .iter()
                .find(|t| t.name == "evaluate")
                .unwrap()
                .metrics["accuracy"];
            assert!(metrics.contains(&accuracy.to_string()), "{metrics}");
        }
        assert!(b.text("main").await.contains("ROC curve"));
        b.check("compare").await;

        // The models page: roll back with the token; the server serves version 1.
        b.goto(&format!("{}/ui/models", ui.url)).await;
        assert_eq!(
            b.text("#model-breast-cancer .served-default").await.trim(),
            "2"
        );
        b.check("models").await;
        let form = b
            .client
            .form(fantoccini::Locator::Css("form[action$='/rollback']"))
            .await
            .unwrap();
        let token = server.token.clone();
        form.set_by_name("token", &token).await.unwrap();
        form.submit().await.unwrap();
        let default = b.text("#model-breast-cancer .default-version").await;
        assert_eq!(default.trim(), "1");
        // The server said which version it serves now.
        let served = b.text("#model-breast-cancer .served-default").await;
        assert_eq!(served.trim(), "1");
        b.check("models-rolled-back").await;
        b.client.close().await.unwrap();
    });
    // The server serves version 1 by default now.
    let metadata: Value = crate::serve::client()
        .get(format!("{}/v1/models/breast-cancer/metadata", server.url))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(metadata["model_spec"]["version"], "1", "{metadata}");
}
