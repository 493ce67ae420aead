//! `sluice serve` under hostile load: requests for models that do not exist make no new
//! metric series; clients that stall are cut off at the header, body and keep-alive
//! timeouts; a body declared over the limit is refused before it is sent; the body budget
//! makes requests wait and then refuses them; and SIGTERM lets requests in flight finish,
//! then exits at the drain deadline even while a client stalls mid-request.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::serve::{Server, client};
use crate::serve_spec::{post, publish_probe, python_gzip};
use crate::support::Home;

const X: &[(&str, &str, &[i64])] = &[("x", "FP64", &[-1])];

/// The metric series a server exposes now: every sample line of `/metrics`.
fn series(url: &str) -> Vec<String> {
    let text = client()
        .get(format!("{url}/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.rsplit_once(' ').map_or(l, |(name, _)| name).to_owned())
        .collect()
}

/// Names no server has heard of.
fn random_names(n: usize, salt: &str) -> Vec<String> {
    (0..n)
        .map(|i| format!("ghost-{salt}-{i}-{}", i * 7919 % 104729))
        .collect()
}

#[test]
fn requests_for_models_that_do_not_exist_make_no_new_series() {
    let home = Home::new();
    publish_probe(&home, "echo", X, X, json!({}));
    let server = Server::start(&home, &[]);
    let http = client();
    let body = r#"{"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [1]}]}"#;
    let flood = |salt: &str| {
        for (i, name) in random_names(300, salt).iter().enumerate() {
            let url = &server.url;
            let requests = [
                format!("{url}/v2/models/{name}/infer"),
                format!("{url}/v1/models/{name}:predict"),
                format!("{url}/v1/models/{name}/versions/{i}:predict"),
                format!("{url}/v2/models/echo/versions/{}/infer", 1000 + i),
                format!("{url}/v1/models/echo/labels/{name}:predict"),
            ];
            for request in requests {
                let (status, _) = post(&http, &request, body);
                assert_eq!(status, 404, "{request}");
            }
        }
    };
    // Every protocol and code a served model's requests make, once.
    assert_eq!(
        post(&http, &format!("{}/v2/models/echo/infer", server.url), body).0,
        200
    );
    flood("a");
    let before = series(&server.url);
    flood("b");
    flood("c");
    let after = series(&server.url);
    assert_eq!(before, after, "a flood of unknown names changed the series");
    assert!(
        !after.iter().any(|s| s.contains("ghost")),
        "a client's name became a label"
    );
    // Unknown models are counted, under one fixed label.
    let unknown: Vec<&String> = after
        .iter()
        .filter(|s| s.starts_with("sluice_requests_total") && s.contains("_unknown"))
        .collect();
    assert_eq!(unknown.len(), 2, "{unknown:?}");
    assert!(after.len() < 200, "{} series", after.len());
}

/// Reads until the server closes the connection; how long that took.
fn closed_after(stream: &mut TcpStream, since: Instant) -> (Duration, Vec<u8>) {
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return (since.elapsed(), got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

fn connect(server: &Server) -> TcpStream {
    TcpStream::connect(server.url.trim_start_matches("http://")).unwrap()
}

/// The one-second timeouts were kept: not cut before most of a second, and cut well
/// before the half-minute the test would otherwise wait.
fn assert_cut_at_about_a_second(took: Duration, what: &str) {
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_secs(10),
        "{what}: closed after {took:?}"
    );
}

#[test]
fn stalled_clients_are_cut_off_at_each_timeout() {
    let home = Home::new();
    publish_probe(&home, "echo", X, X, json!({}));
    let server = Server::start(
        &home,
        &[
            "--header-timeout",
            "1s",
            "--keep-alive-timeout",
            "1s",
            "--body-timeout",
            "1s",
        ],
    );
    // A connection that never says anything.
    let mut silent = connect(&server);
    let (took, got) = closed_after(&mut silent, Instant::now());
    assert_cut_at_about_a_second(took, "a silent connection");
    assert!(got.is_empty());

    // Headers that never end, even trickled a byte at a time.
    let mut trickle = connect(&server);
    let start = Instant::now();
    let mut writer = trickle.try_clone().unwrap();
    let trickler = std::thread::spawn(move || {
        for byte in b"POST /v2/models/echo/infer HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
            if writer.write_all(&[*byte]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let (took, _) = closed_after(&mut trickle, start);
    assert_cut_at_about_a_second(took, "trickled headers");
    trickler.join().unwrap();

    // A body that stops arriving: 408, and the connection closed.
    let mut stalled = connect(&server);
    let start = Instant::now();
    stalled
        .write_all(b"POST /v2/models/echo/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"inputs\"")
        .unwrap();
    let (took, got) = closed_after(&mut stalled, start);
    assert_cut_at_about_a_second(took, "a stalled body");
    let answer = String::from_utf8_lossy(&got);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.contains("did not arrive within 1s (--body-timeout)"),
        "{answer}"
    );

    // A kept-alive connection left idle after its answer.
    let mut idle = connect(&server);
    idle.write_all(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut first = [0u8; 12];
    idle.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    let (took, _) = closed_after(&mut idle, Instant::now());
    assert_cut_at_about_a_second(took, "an idle kept-alive connection");

    // The server is none the worse.
    let (status, _) = post(
        &client(),
        &format!("{}/v2/models/echo/infer", server.url),
        r#"{"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [1]}]}"#,
    );
    assert_eq!(status, 200);
}

#[test]
fn a_body_declared_over_the_limit_is_refused_before_it_is_sent() {
    let home = Home::new();
    publish_probe(&home, "echo", X, X, json!({}));
    // Long timeouts: an answer within seconds can only come from the declared length.
    let server = Server::start(
        &home,
        &[
            "--body-limit",
            "64",
            "--body-timeout",
            "60s",
            "--header-timeout",
            "60s",
        ],
    );
    for expect in ["", "Expect: 100-continue\r\n"] {
        let mut stream = connect(&server);
        let start = Instant::now();
        stream
            .write_all(
                format!("POST /v2/models/echo/infer HTTP/1.1\r\nHost: x\r\n{expect}Content-Length: 1073741824\r\n\r\n")
                    .as_bytes(),
            )
            .unwrap();
        let (took, got) = closed_after(&mut stream, start);
        let answer = String::from_utf8_lossy(&got);
        assert!(answer.starts_with("HTTP/1.1 413"), "{expect}: {answer}");
        assert!(
            answer.contains("larger than the limit of 65536 bytes (--body-limit)"),
            "{answer}"
        );
        assert!(!answer.contains("100 Continue"), "{answer}");
        assert!(took < Duration::from_secs(10), "{took:?}");
    }
}

#[test]
fn the_body_budget_makes_requests_wait_then_refuses_them() {
    let home = Home::new();
    publish_probe(&home, "slow", X, X, json!({"spin_ms": 3000}));
    let server = Server::start(
        &home,
        &[
            "--body-limit",
            "1024",
            "--body-budget",
            "1",
            "--body-timeout",
            "1s",
        ],
    );
    let url = format!("{}/v2/models/slow/infer", server.url);
    let one = r#"{"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [1]}]"#;
    // Three kinds of request of which two do not fit a 1 MiB budget: 700 KB bodies (JSON
    // padded with spaces); the same, gzipped to a few KB, whose decoded bytes count; and
    // 60 KB bodies of 30,000 zeros, whose tensors (240 KB, and the predictor's copy)
    // count.
    let padded = format!("{one}{}}}", " ".repeat(700_000));
    let zeros = format!(
        r#"{{"inputs": [{{"name": "x", "shape": [30000], "datatype": "FP64", "data": [{}]}}]}}"#,
        vec!["0"; 30000].join(",")
    );
    let gzipped = python_gzip(padded.as_bytes());
    assert!(gzipped.len() < 20_000);
    let send = |body: &Vec<u8>, gzip: bool| -> (u16, String) {
        let mut request = client().post(&url).body(body.clone());
        if gzip {
            request = request.header("Content-Encoding", "gzip");
        }
        let response = request.send().unwrap();
        (response.status().as_u16(), response.text().unwrap())
    };
    for (kind, body, gzip) in [
        ("padded", padded.into_bytes(), false),
        ("gzipped", gzipped, true),
        ("dense", zeros.into_bytes(), false),
    ] {
        let first = {
            let (url, body) = (url.clone(), body.clone());
            std::thread::spawn(move || {
                let mut request = client().post(&url).body(body);
                if gzip {
                    request = request.header("Content-Encoding", "gzip");
                }
                request.send().unwrap().status().as_u16()
            })
        };
        std::thread::sleep(Duration::from_millis(500));
        let start = Instant::now();
        let (status, text) = send(&body, gzip);
        assert_eq!(status, 503, "{kind}: {text}");
        assert!(
            text.contains("budget of 1048576 bytes allows (--body-budget)"),
            "{kind}: {text}"
        );
        assert!(
            start.elapsed() >= Duration::from_millis(800),
            "{kind}: {:?}",
            start.elapsed()
        );
        assert_eq!(first.join().unwrap(), 200, "{kind}");
        // Once the first answer is out, its share is back.
        assert_eq!(send(&body, gzip).0, 200, "{kind}");
    }
    // A client that declares a whole body and sends none of it holds nothing.
    let mut idle = connect(&server);
    idle.write_all(
        b"POST /v2/models/slow/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n",
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let (status, text) = post(&client(), &url, one.to_owned() + "}");
    assert_eq!(status, 200, "{text}");
}

#[test]
fn a_request_whose_client_left_leaves_the_pool_as_it_was() {
    let home = Home::new();
    publish_probe(&home, "slow", X, X, json!({"spin_ms": 400}));
    let server = Server::start(&home, &["--scale-to-zero", "2s", "--idle-timeout", "200ms"]);
    let body = r#"{"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [1]}]}"#;
    let request = format!(
        "POST /v2/models/slow/infer HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    // Three clients that hang up while their predictions run.
    for _ in 0..3 {
        let mut stream = connect(&server);
        stream.write_all(request.as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        drop(stream);
    }
    std::thread::sleep(Duration::from_millis(1000));
    let metric = |name: &str| -> Option<u64> {
        let text = client()
            .get(format!("{}/metrics", server.url))
            .send()
            .unwrap()
            .text()
            .unwrap();
        let series = format!("{name}{{model=\"slow\",version=\"1\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&series))
            .map(|v| v.parse().unwrap())
    };
    assert_eq!(metric("sluice_pool_busy_instances"), Some(0));
    // Nobody asks any more: the version scales to zero, as it would without them.
    let deadline = Instant::now() + Duration::from_secs(20);
    while metric("sluice_pool_instances") != Some(0) {
        assert!(
            Instant::now() < deadline,
            "never scaled to zero: {:?} instances, {:?} busy",
            metric("sluice_pool_instances"),
            metric("sluice_pool_busy_instances")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_large_answer_read_slowly_arrives_whole() {
    let home = Home::new();
    publish_probe(&home, "echo", X, X, json!({}));
    // A keep-alive timeout far shorter than the time the answer takes to read.
    let server = Server::start(&home, &["--keep-alive-timeout", "1s"]);
    let python = std::env::var("SLUICE_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    // 1,000,000 values of 0.25: about 5 MB of answer, read through an 8 KiB receive
    // buffer at about 1.5 MB/s, so the server is still writing seconds after it has
    // the whole answer.
    let script = r#"
import json, socket, sys, time
host, port = sys.argv[1].rsplit(":", 1)
body = json.dumps({"instances": [0.25] * 1000000}).encode()
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
s.connect((host, int(port)))
s.sendall(b"POST /v1/models/echo:predict HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
got = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    got += chunk
    time.sleep(len(chunk) / 1.5e6)
    if b"\r\n\r\n" in got:
        head, rest = got.split(b"\r\n\r\n", 1)
        length = int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0].split(b":")[1])
        if len(rest) >= length:
            break
head, rest = got.split(b"\r\n\r\n", 1)
print(head.split(b"\r\n")[0].decode(), len(rest), len(json.loads(rest)["predictions"]))
"#;
    let out = Command::new(python)
        .args(["-c", script, server.url.trim_start_matches("http://")])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    assert!(text.trim_end().ends_with(" 1000000"), "{text}");
}

#[test]
fn sigterm_finishes_requests_in_flight_then_exits_despite_a_stalled_client() {
    let home = Home::new();
    publish_probe(&home, "slow", X, X, json!({"spin_ms": 1500}));
    let mut server = Server::start(
        &home,
        &[
            "--drain-timeout",
            "2s",
            "--body-timeout",
            "60s",
            "--header-timeout",
            "60s",
        ],
    );
    let url = format!("{}/v2/models/slow/infer", server.url);
    let in_flight = std::thread::spawn(move || {
        post(
            &client(),
            &url,
            r#"{"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [4]}]}"#,
        )
    });
    std::thread::sleep(Duration::from_millis(300));
    // A client that sends half a request and then nothing.
    let mut stalled = connect(&server);
    stalled
        .write_all(
            b"POST /v2/models/slow/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"in",
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let signalled = Instant::now();
    Command::new("kill")
        .arg(server.child.id().to_string())
        .status()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        TcpStream::connect(server.url.trim_start_matches("http://")).is_err(),
        "the server still accepts connections after SIGTERM"
    );
    let (status, text) = in_flight.join().unwrap();
    assert_eq!(status, 200, "the request in flight did not finish: {text}");
    let exited = server.child.wait().unwrap();
    let took = signalled.elapsed();
    assert!(exited.success(), "{}", server.output());
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(10),
        "exited {took:?} after SIGTERM, with a 2s drain"
    );
    assert!(
        server
            .output()
            .contains("stopped; 1 connection(s) still open after the 2s drain were closed"),
        "{}",
        server.output()
    );
    drop(stalled);
}
