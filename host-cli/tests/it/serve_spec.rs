//! `sluice serve` to the letter of its protocols: nested data checked against the shape,
//! shape arithmetic that never wraps, lossless numeric conversion, TF Serving's `b64`
//! values, `_bytes` outputs and non-finite tokens, honest answers (or a 500 naming the
//! model) when JSON cannot carry an output or a predictor breaks its signature, each
//! version's real load state, and the admin API's authorization scheme. Models with
//! chosen signatures are served by `predictor-probe`, published straight into the home's
//! model repository.

use std::io::Read;

use reqwest::blocking::Client;
use serde_json::{Value, json};
use sluice_runtime::models::{Publication, Repository, Signature, TensorSpec};
use sluice_runtime::spec::sha256_hex;

use crate::serve::{MODEL, PIPELINE, Server, client, infer, last_run, test_rows_and_predictions};
use crate::support::Home;

/// Publishes a model served by `predictor-probe`: `inputs` and `outputs` are
/// `(name, datatype, shape)`; the probe echoes inputs into same-named outputs and answers
/// the special names its documentation lists. Returns the version.
pub(crate) fn publish_probe(
    home: &Home,
    name: &str,
    inputs: &[(&str, &str, &[i64])],
    outputs: &[(&str, &str, &[i64])],
    extra: Value,
) -> u64 {
    let specs = |list: &[(&str, &str, &[i64])]| -> Vec<TensorSpec> {
        list.iter()
            .map(|(n, d, s)| TensorSpec {
                name: (*n).into(),
                datatype: (*d).into(),
                shape: s.to_vec(),
            })
            .collect()
    };
    let mut model = json!({
        "inputs": specs(inputs),
        "outputs": specs(outputs),
    });
    if let Value::Object(extra) = extra {
        model.as_object_mut().unwrap().extend(extra);
    }
    publish_model_bytes(
        home,
        name,
        &serde_json::to_vec(&model).unwrap(),
        Signature {
            inputs: specs(inputs),
            outputs: specs(outputs),
        },
    )
}

/// Publishes `bytes` as a model served by `predictor-probe`, with the signature given.
pub(crate) fn publish_model_bytes(
    home: &Home,
    name: &str,
    bytes: &[u8],
    signature: Signature,
) -> u64 {
    let file = home
        .dir
        .path()
        .join(format!("{name}-{}.json", sha256_hex(bytes)));
    std::fs::write(&file, bytes).unwrap();
    let predictor = std::path::Path::new(sluice_test_artifacts::PREDICTOR_PROBE);
    let wasm = std::fs::read(predictor).unwrap();
    Repository::open(&home.dir.path().join("home"))
        .publish(&Publication {
            name,
            model: &file,
            model_digest: &sha256_hex(bytes),
            predictor,
            predictor_digest: &sha256_hex(&wasm),
            signature,
            run: None,
            metrics: Default::default(),
            labels: &[],
        })
        .unwrap()
}

/// POSTs a raw body; the status and the body as text.
pub(crate) fn post(
    http: &Client,
    url: &str,
    body: impl Into<reqwest::blocking::Body>,
) -> (u16, String) {
    let response = http.post(url).body(body).send().unwrap();
    (response.status().as_u16(), response.text().unwrap())
}

fn error_of(text: &str) -> String {
    serde_json::from_str::<Value>(text).unwrap()["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn nested_data_must_match_the_declared_shape_in_every_format() {
    let home = Home::new();
    home.expect(&["run", PIPELINE], 0);
    let (rows, _) = test_rows_and_predictions(&home, &last_run(&home));
    let server = Server::start(&home, &[]);
    let http = client();
    let v2 = format!("{}/v2/models/{MODEL}/infer", server.url);
    let v1 = format!("{}/v1/models/{MODEL}:predict", server.url);

    // Two rows, nested as 31 and 29 values: 60 elements, as [2, 30] holds, but the
    // second row would be shifted by one feature.
    let mut long = rows[0].clone();
    long.push(rows[1][0]);
    let short = rows[1][1..].to_vec();
    let ragged = json!([long, short]);
    let (status, text) = post(
        &http,
        &v2,
        json!({"inputs": [{"name": "features", "shape": [2, 30], "datatype": "FP64", "data": ragged}]}).to_string(),
    );
    assert_eq!(status, 400, "{text}");
    assert_eq!(
        error_of(&text),
        "input 'features': data[0] holds more than 30 elements, but shape [2, 30] says 30"
    );
    let (status, text) = post(&http, &v1, json!({"instances": ragged}).to_string());
    assert_eq!(status, 400, "{text}");
    assert_eq!(
        error_of(&text),
        "input 'features' of instance 1: it differs in shape from the instances before it"
    );
    let (status, text) = post(&http, &v1, json!({"inputs": ragged}).to_string());
    assert_eq!(status, 400, "{text}");
    assert_eq!(
        error_of(&text),
        "input 'features': it is ragged: its lists at depth 1 differ in length or nesting"
    );
    // Nested as the shape says, or flat: the same answer, row by row.
    let nested = json!({"inputs": [{"name": "features", "shape": [2, 30], "datatype": "FP64", "data": [rows[0], rows[1]]}]});
    let (status, nested_answer) = post(&http, &v2, nested.to_string());
    assert_eq!(status, 200, "{nested_answer}");
    let (status, flat_answer) = infer(
        &http,
        &server.url,
        "/v2/models/breast-cancer/infer",
        &rows[..2],
    );
    assert_eq!(status, 200);
    let nested_answer: Value = serde_json::from_str(&nested_answer).unwrap();
    assert_eq!(nested_answer["outputs"], flat_answer["outputs"]);
    // Lists deeper than the shape, or values where it says lists.
    let (status, text) = post(
        &http,
        &v2,
        json!({"inputs": [{"name": "features", "shape": [60], "datatype": "FP64", "data": [rows[0], rows[1]]}]}).to_string(),
    );
    assert_eq!(
        (status, error_of(&text).as_str()),
        (
            400,
            "input 'features': 'data'[0] is a list, but shape [60] has only 1 dimensions"
        )
    );
}

#[test]
fn shape_arithmetic_never_wraps() {
    let home = Home::new();
    home.expect(&["run", PIPELINE], 0);
    let server = Server::start(&home, &[]);
    let http = client();
    let v2 = format!("{}/v2/models/{MODEL}/infer", server.url);
    for (shape, data, expected) in [
        (
            json!([-1, 30]),
            json!([]),
            "input 'features': dimension 0 of shape [-1, 30] is negative (-1)",
        ),
        (
            json!([2, -30]),
            json!([]),
            "input 'features': dimension 1 of shape [2, -30] is negative (-30)",
        ),
        (
            json!([4294967296u64, 4294967296u64]),
            json!([]),
            "input 'features': shape [4294967296, 4294967296] holds more elements than can be addressed",
        ),
        (
            // 2^62 * 4 wraps to 0 in unchecked u64 arithmetic, which would match empty data.
            json!([4611686018427387904u64, 4]),
            json!([]),
            "input 'features': shape [4611686018427387904, 4] holds more elements than can be addressed",
        ),
        (
            json!([18446744073709551615u64]),
            json!([]),
            "input 'features': dimension 0 of 'shape' is not a whole number a shape can hold",
        ),
    ] {
        let body = json!({"inputs": [{"name": "features", "shape": shape, "datatype": "FP64", "data": data}]});
        let (status, text) = post(&http, &v2, body.to_string());
        assert_eq!(
            (status, error_of(&text).as_str()),
            (400, expected),
            "{shape}"
        );
    }
    // The binary extension: a wrapping shape with no bytes is no empty tensor either.
    let header = json!({"inputs": [{"name": "features", "shape": [2305843009213693952u64, 8], "datatype": "FP64", "parameters": {"binary_data_size": 0}}]}).to_string();
    let response = http
        .post(&v2)
        .header("Inference-Header-Content-Length", header.len())
        .body(header)
        .send()
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(
        error_of(&response.text().unwrap()).contains("holds more elements than can be addressed")
    );
}

#[test]
fn numbers_convert_when_nothing_is_lost() {
    let home = Home::new();
    home.expect(&["run", PIPELINE], 0);
    let (rows, _) = test_rows_and_predictions(&home, &last_run(&home));
    let server = Server::start(&home, &[]);
    let http = client();
    let v2 = format!("{}/v2/models/{MODEL}/infer", server.url);
    let whole: Vec<i64> = rows[0].iter().map(|x| x.round() as i64).collect();
    let as_f64: Vec<f64> = whole.iter().map(|&x| x as f64).collect();
    let answer = |datatype: &str, data: Value| -> Value {
        let body = json!({"inputs": [{"name": "features", "shape": [1, 30], "datatype": datatype, "data": data}]});
        let (status, text) = post(&http, &v2, body.to_string());
        assert_eq!(status, 200, "{datatype}: {text}");
        serde_json::from_str::<Value>(&text).unwrap()["outputs"].clone()
    };
    let exact = answer("FP64", json!(as_f64));
    assert_eq!(answer("INT64", json!(whole)), exact);
    assert_eq!(answer("INT32", json!(whole)), exact);
    let singles: Vec<f32> = rows[0].iter().map(|&x| x as f32).collect();
    let widened: Vec<f64> = singles.iter().map(|&x| f64::from(x)).collect();
    assert_eq!(
        answer("FP32", json!(singles)),
        answer("FP64", json!(widened))
    );
    // A value FP64 cannot hold exactly is refused, naming it.
    let mut lossy = whole.clone();
    lossy[3] = (1 << 53) + 1;
    let body = json!({"inputs": [{"name": "features", "shape": [1, 30], "datatype": "INT64", "data": lossy}]});
    let (status, text) = post(&http, &v2, body.to_string());
    assert_eq!(status, 400);
    assert_eq!(
        error_of(&text),
        "input 'features' must be FP64: INT64 data cannot be converted to FP64 without loss: element 3 is 9007199254740993"
    );
}

#[test]
fn tf_serving_b64_values_bytes_outputs_and_non_finite_tokens() {
    let home = Home::new();
    publish_probe(
        &home,
        "echo",
        &[("image_bytes", "BYTES", &[-1]), ("x", "FP64", &[-1])],
        &[("image_bytes", "BYTES", &[-1]), ("x", "FP64", &[-1])],
        json!({}),
    );
    let server = Server::start(&home, &[]);
    let http = client();
    let v1 = format!("{}/v1/models/echo:predict", server.url);
    let v2 = format!("{}/v2/models/echo/infer", server.url);

    // Row format: b64 values in, `_bytes` outputs out as b64, NaN and infinities as
    // TF Serving writes them.
    let (status, text) = post(
        &http,
        &v1,
        r#"{"instances": [{"image_bytes": {"b64": "/9j/4A=="}, "x": NaN}, {"image_bytes": {"b64": "AAE="}, "x": -Infinity}]}"#,
    );
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        text,
        r#"{"predictions":[{"image_bytes":{"b64":"/9j/4A=="},"x":NaN},{"image_bytes":{"b64":"AAE="},"x":-Infinity}]}"#
    );
    let (status, text) = post(
        &http,
        &v1,
        r#"{"inputs": {"image_bytes": [{"b64": "aGk="}], "x": [Infinity]}}"#,
    );
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        text,
        r#"{"outputs":{"image_bytes":[{"b64":"aGk="}],"x":[Infinity]}}"#
    );

    // OIP's JSON cannot hold NaN: a 500 naming the model and output, never a null.
    let nan = json!({"inputs": [
        {"name": "image_bytes", "shape": [1], "datatype": "BYTES", "data": ["plain"]},
        {"name": "x", "shape": [1], "datatype": "FP64", "data": [1.0]}]})
    .to_string()
    .replace("1.0", "NaN");
    let (status, text) = post(&http, &v2, nan.clone());
    assert_eq!(status, 500, "{text}");
    assert_eq!(
        error_of(&text),
        "model 'echo' version 1 gave output 'x' whose element 0 is NaN, which JSON cannot hold; ask for it as binary data (\"parameters\": {\"binary_data\": true})"
    );
    // As binary data it travels as it is.
    let binary = nan.replace(
        r#""inputs""#,
        r#""parameters": {"binary_data_output": true}, "inputs""#,
    );
    let response = http.post(&v2).body(binary).send().unwrap();
    assert_eq!(response.status(), 200);
    let header_len: usize = response.headers()["inference-header-content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let bytes = response.bytes().unwrap();
    let tail = &bytes[header_len..];
    // "plain" as a 4-byte length and its bytes, then x's 8 bytes.
    assert_eq!(&tail[..9], b"\x05\0\0\0plain");
    assert!(f64::from_le_bytes(tail[9..17].try_into().unwrap()).is_nan());

    // BYTES that are not UTF-8 cross the binary extension unchanged, and JSON refuses
    // to mangle them.
    let header = json!({"inputs": [
        {"name": "image_bytes", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": 6}},
        {"name": "x", "shape": [1], "datatype": "FP64", "data": [2.5]}]})
    .to_string();
    let mut body = header.clone().into_bytes();
    body.extend_from_slice(&[2, 0, 0, 0, 0xff, 0xfe]);
    let response = http
        .post(&v2)
        .header("Inference-Header-Content-Length", header.len())
        .body(body.clone())
        .send()
        .unwrap();
    assert_eq!(response.status(), 500);
    assert!(
        error_of(&response.text().unwrap())
            .contains("gave output 'image_bytes' whose element 0 is not UTF-8 text")
    );
    let header = header.replace(
        r#""inputs""#,
        r#""parameters": {"binary_data_output": true}, "inputs""#,
    );
    let mut body = header.clone().into_bytes();
    body.extend_from_slice(&[2, 0, 0, 0, 0xff, 0xfe]);
    let response = http
        .post(&v2)
        .header("Inference-Header-Content-Length", header.len())
        .body(body)
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    let header_len: usize = response.headers()["inference-header-content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let bytes = response.bytes().unwrap();
    assert_eq!(
        &bytes[header_len..header_len + 6],
        &[2, 0, 0, 0, 0xff, 0xfe]
    );
    // TF Serving answers them as b64 whatever the output's name.
    let (status, text) = post(
        &http,
        &v1,
        r#"{"instances": [{"image_bytes": {"b64": "//4="}, "x": 0}]}"#,
    );
    assert_eq!(
        (status, text.as_str()),
        (
            200,
            r#"{"predictions":[{"image_bytes":{"b64":"//4="},"x":0.0}]}"#
        )
    );
}

#[test]
fn a_predictor_that_breaks_its_signature_is_a_500_naming_the_model() {
    let home = Home::new();
    let x: &[(&str, &str, &[i64])] = &[("x", "FP64", &[-1])];
    publish_probe(
        &home,
        "wraps",
        x,
        &[("overflowing_shape", "FP64", &[-1, 2])],
        json!({}),
    );
    publish_probe(
        &home,
        "short",
        x,
        &[("short_data", "FP64", &[-1])],
        json!({}),
    );
    publish_probe(&home, "retyped", x, &[("x", "FP32", &[-1])], json!({}));
    let server = Server::start(&home, &[]);
    let http = client();
    for (model, expected) in [
        (
            "wraps",
            "model 'wraps' version 1: the predictor gave output 'overflowing_shape' whose shape [18446744073709551615, 2] holds more elements than a u64 counts",
        ),
        (
            "short",
            "model 'short' version 1: the predictor gave output 'short_data' whose shape [1000000] holds 1000000 elements, but 1 were given",
        ),
        (
            "retyped",
            "model 'retyped' version 1: the predictor gave output 'x' as FP64, but its signature says FP32",
        ),
    ] {
        for (path, body) in [
            (
                format!("/v1/models/{model}:predict"),
                r#"{"instances": [1.0]}"#.to_owned(),
            ),
            (
                format!("/v1/models/{model}:predict"),
                r#"{"inputs": [1.0]}"#.to_owned(),
            ),
            (
                format!("/v2/models/{model}/infer"),
                r#"{"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [1]}]}"#
                    .to_owned(),
            ),
        ] {
            let (status, text) = post(&http, &format!("{}{path}", server.url), body);
            assert_eq!(status, 500, "{path}: {text}");
            assert_eq!(error_of(&text), expected, "{path}");
        }
    }
    let live = http
        .get(format!("{}/v2/health/live", server.url))
        .send()
        .unwrap();
    assert_eq!(live.status(), 200);
}

#[test]
fn status_and_readiness_report_each_versions_real_state() {
    let home = Home::new();
    let x: &[(&str, &str, &[i64])] = &[("x", "FP64", &[-1])];
    publish_probe(&home, "states", x, x, json!({}));
    publish_probe(&home, "states", x, x, json!({}));
    // Version 3's model is not one the probe can load.
    let signature = Signature {
        inputs: vec![TensorSpec {
            name: "x".into(),
            datatype: "FP64".into(),
            shape: vec![-1],
        }],
        outputs: Vec::new(),
    };
    assert_eq!(
        publish_model_bytes(&home, "states", b"not json", signature),
        3
    );
    Repository::open(&home.dir.path().join("home"))
        .rollback("states", Some(2))
        .unwrap();
    let server = Server::start(&home, &["--scale-to-zero", "1s", "--idle-timeout", "200ms"]);
    let http = client();
    let status = |path: &str| -> Value {
        http.get(format!("{}/v1/models/states{path}", server.url))
            .send()
            .unwrap()
            .json()
            .unwrap()
    };
    let states = |v: &Value| -> Vec<(String, String, String)> {
        v["model_version_status"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["version"].as_str().unwrap().to_owned(),
                    s["state"].as_str().unwrap().to_owned(),
                    s["status"]["error_code"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let own = |v: &str, s: &str, c: &str| (v.to_owned(), s.to_owned(), c.to_owned());
    // Only the default version was loaded at start.
    let all = status("");
    assert_eq!(
        states(&all),
        [
            own("3", "START", "OK"),
            own("2", "AVAILABLE", "OK"),
            own("1", "START", "OK")
        ]
    );
    assert_eq!(
        (all["name"].as_str(), all["ready"].as_bool()),
        (Some("states"), Some(true))
    );
    // Version 1 loads on its first request.
    let body = r#"{"instances": [1.5]}"#;
    let (code, _) = post(
        &http,
        &format!("{}/v1/models/states/versions/1:predict", server.url),
        body,
    );
    assert_eq!(code, 200);
    assert_eq!(
        states(&status("/versions/1")),
        [own("1", "AVAILABLE", "OK")]
    );
    // Version 3 cannot load: 503, and its status says why.
    let (code, text) = post(
        &http,
        &format!("{}/v1/models/states/versions/3:predict", server.url),
        body,
    );
    assert_eq!(code, 503, "{text}");
    let three = status("/versions/3");
    assert_eq!(states(&three), [own("3", "END", "UNKNOWN")]);
    let message = three["model_version_status"][0]["status"]["error_message"]
        .as_str()
        .unwrap();
    assert!(message.contains("cannot read the model"), "{message}");
    let ready = http
        .get(format!("{}/v2/models/states/versions/3/ready", server.url))
        .send()
        .unwrap();
    assert_eq!(ready.status(), 503);
    assert_eq!(ready.json::<Value>().unwrap()["ready"], false);
    let ready = http
        .get(format!("{}/v2/models/states/versions/1/ready", server.url))
        .send()
        .unwrap();
    assert_eq!(ready.status(), 200);
    // Unused versions scale to zero and say so.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let now = states(&status(""));
        if now[1].1 == "END" && now[2].1 == "END" {
            assert_eq!(
                now,
                [
                    own("3", "END", "UNKNOWN"),
                    own("2", "END", "OK"),
                    own("1", "END", "OK")
                ]
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never scaled to zero: {now:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn the_admin_api_takes_any_case_of_bearer_and_404s_unknown_models() {
    let home = Home::new();
    let x: &[(&str, &str, &[i64])] = &[("x", "FP64", &[-1])];
    publish_probe(&home, "admin", x, x, json!({}));
    let server = Server::start(&home, &[]);
    let http = client();
    let admin = |model: &str, action: &str, authorization: &str| -> (u16, String) {
        let response = http
            .post(format!("{}/admin/models/{model}/{action}", server.url))
            .header("Authorization", authorization)
            .send()
            .unwrap();
        (response.status().as_u16(), response.text().unwrap())
    };
    let token = server.token.clone();
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let (status, text) = admin("admin", "deploy", &format!("{scheme} {token}"));
        assert_eq!(status, 200, "{scheme}: {text}");
    }
    assert_eq!(admin("admin", "deploy", &format!("Basic {token}")).0, 401);
    // A 401 carries its challenge, a 405 the methods the endpoint takes (RFC 9110).
    let unauthorized = http
        .post(format!("{}/admin/models/admin/deploy", server.url))
        .send()
        .unwrap();
    assert_eq!(unauthorized.status(), 401);
    assert_eq!(
        unauthorized.headers()["www-authenticate"],
        "Bearer realm=\"sluice admin\""
    );
    for (method, path, allow) in [
        ("GET", "/v1/models/admin:predict", "POST"),
        ("POST", "/v1/models/admin/metadata", "GET, HEAD"),
        ("DELETE", "/v2/models/admin", "GET, HEAD"),
        ("GET", "/v2/models/admin/infer", "POST"),
        ("PUT", "/v1/models/admin", "GET, HEAD, POST"),
    ] {
        let response = http
            .request(method.parse().unwrap(), format!("{}{path}", server.url))
            .send()
            .unwrap();
        assert_eq!(response.status(), 405, "{method} {path}");
        assert_eq!(response.headers()["allow"], allow, "{method} {path}");
    }
    for action in ["deploy", "rollback", "unload"] {
        let (status, text) = admin("nope", action, &format!("Bearer {token}"));
        assert_eq!(status, 404, "{action}: {text}");
    }
    let (status, text) = admin("nope", "deploy", &format!("Bearer {token}"));
    assert_eq!(
        (status, error_of(&text).as_str()),
        (404, "no model named 'nope' (see `sluice models list`)")
    );
    // Nothing to roll back to is a conflict, not a missing model.
    assert_eq!(
        admin("admin", "rollback", &format!("Bearer {token}")).0,
        409
    );
}

#[test]
fn what_stock_clients_send_is_taken_and_disagreement_refused() {
    let home = Home::new();
    let x: &[(&str, &str, &[i64])] = &[("x", "FP64", &[-1])];
    publish_probe(&home, "echo", x, x, json!({}));
    publish_probe(&home, "echo", x, x, json!({}));
    let server = Server::start(&home, &[]);
    let http = client();
    let v2 = format!("{}/v2/models/echo/infer", server.url);
    let request = |extra: &str| {
        format!(
            r#"{{{extra}"inputs": [{{"name": "x", "shape": [1], "datatype": "FP64", "data": [1]}}]}}"#
        )
    };
    // KServe's InferRequest names the model (and may name the version) in the body.
    let (status, text) = post(&http, &v2, request(r#""model_name": "echo", "id": "k", "#));
    assert_eq!(status, 200, "{text}");
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        (answer["model_version"].as_str(), answer["id"].as_str()),
        (Some("2"), Some("k"))
    );
    let (status, text) = post(
        &http,
        &v2,
        request(r#""model_name": "echo", "model_version": "1", "#),
    );
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap()["model_version"],
        "1"
    );
    let (status, text) = post(&http, &v2, request(r#""model_name": "other", "#));
    assert_eq!(
        (status, error_of(&text).as_str()),
        (
            400,
            "the body names model 'other', but the URL names 'echo'"
        )
    );
    let (status, text) = post(
        &http,
        &format!("{}/v2/models/echo/versions/2/infer", server.url),
        request(r#""model_version": "1", "#),
    );
    assert_eq!(
        (status, error_of(&text).as_str()),
        (400, "the body names version 1, but the URL names version 2")
    );
    let (status, text) = post(
        &http,
        &format!("{}/v2/models/echo/versions/2/infer", server.url),
        request(r#""model_version": "abc", "#),
    );
    assert_eq!(
        (status, error_of(&text).as_str()),
        (
            400,
            "the body names version 'abc', but the URL names version 2"
        )
    );
    // `"outputs": []` asks for nothing, which is no request.
    let (status, text) = post(&http, &v2, request(r#""outputs": [], "#));
    assert_eq!(status, 400, "{text}");
    // Compressed bodies, as tritonclient sends them; other codings are a 415.
    let body = request("");
    let mut gz = python_gzip(body.as_bytes());
    let response = http
        .post(&v2)
        .header("Content-Encoding", "gzip")
        .body(gz.clone())
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    gz.truncate(gz.len() / 2);
    let response = http
        .post(&v2)
        .header("Content-Encoding", "gzip")
        .body(gz)
        .send()
        .unwrap();
    assert_eq!(response.status(), 400);
    let response = http
        .post(&v2)
        .header("Content-Encoding", "br")
        .body(body)
        .send()
        .unwrap();
    assert_eq!(response.status(), 415);
    let mut text = String::new();
    response.take(1000).read_to_string(&mut text).unwrap();
    assert!(
        error_of(&text).contains("Content-Encoding 'br' is not supported"),
        "{text}"
    );
}

/// A gzip stream of `bytes`, written by the Python standard library as tritonclient
/// does (`gzip.compress`), so the test does not use the server's own decoder's crate.
pub(crate) fn python_gzip(bytes: &[u8]) -> Vec<u8> {
    let python = std::env::var("SLUICE_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let mut child = std::process::Command::new(python)
        .args([
            "-c",
            "import gzip, sys; sys.stdout.buffer.write(gzip.compress(sys.stdin.buffer.read()))",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    out.stdout
}
