//! `typed-probe` typed step: exercises the host interface for the host's tests. The string
//! parameter `mode` picks the behaviour:
//!
//! - `echo`: returns every parameter it received, unchanged, as outcome params, and the
//!   metric `param_count`;
//! - `copy`: copies input artifact `data` to output artifact `copy`;
//! - `log`: logs one line at each level, records metric `answer` = 42, reports progress 1/2
//!   then 2/2;
//! - `fail`: returns `failed("deliberate failure")`;
//! - `invalid`: returns `invalid-input("deliberate invalid input")`;
//! - `trap`: panics (a trap, since components are built with `panic = "abort"`);
//! - `spin`: loops forever on the CPU;
//! - anything else: `invalid-input` naming the mode.
//!
//! Depends on nothing but `std` and the shared bindings (`sluice-step-guest`), so that what
//! the host sees is exactly what is written here.

// Exported only in the wasm build: native linkers reject the component-model symbol
// names, and natively this crate exists only for its unit tests (hence no dead-code
// warnings there).
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
#[cfg(target_arch = "wasm32")]
sluice_step_guest::export!(TypedProbe with_types_in sluice_step_guest);

use std::fs;
use std::hint::black_box;

use sluice_step_guest::host::{self, Level};
use sluice_step_guest::{Artifact, Guest, Invocation, Metric, Outcome, StepError, Value};

struct TypedProbe;

impl Guest for TypedProbe {
    fn run(inv: Invocation) -> Result<Outcome, StepError> {
        let mode = match inv.params.iter().find(|param| param.name == "mode") {
            Some(param) => match &param.value {
                Value::Str(mode) => mode.clone(),
                _ => {
                    return Err(StepError::InvalidInput(
                        "parameter 'mode' must be a string".to_owned(),
                    ));
                }
            },
            None => {
                return Err(StepError::InvalidInput(
                    "parameter 'mode' is required".to_owned(),
                ));
            }
        };
        match mode.as_str() {
            "echo" => Ok(Outcome {
                metrics: vec![Metric {
                    name: "param_count".to_owned(),
                    value: inv.params.len() as f64,
                }],
                params: inv.params,
            }),
            "copy" => {
                let from = path(&inv.inputs, "data", "input")?;
                let to = path(&inv.outputs, "copy", "output")?;
                fs::copy(from, to).map_err(|err| {
                    StepError::Failed(format!("cannot copy {from} to {to}: {err}"))
                })?;
                Ok(empty())
            }
            "log" => {
                host::log(Level::Debug, "typed-probe: debug line");
                host::log(Level::Info, "typed-probe: info line");
                host::log(Level::Warn, "typed-probe: warn line");
                host::log(Level::Error, "typed-probe: error line");
                host::metric("answer", 42.0);
                host::progress(1, 2);
                host::progress(2, 2);
                Ok(empty())
            }
            "fail" => Err(StepError::Failed("deliberate failure".to_owned())),
            "invalid" => Err(StepError::InvalidInput(
                "deliberate invalid input".to_owned(),
            )),
            "trap" => panic!("typed-probe: deliberate trap"),
            "spin" => {
                let mut counter: u64 = 0;
                loop {
                    counter = black_box(counter).wrapping_add(1);
                }
            }
            other => Err(StepError::InvalidInput(format!(
                "unknown mode '{other}', expected echo, copy, log, fail, invalid, trap or spin"
            ))),
        }
    }
}

fn empty() -> Outcome {
    Outcome {
        params: Vec::new(),
        metrics: Vec::new(),
    }
}

fn path<'a>(artifacts: &'a [Artifact], name: &str, direction: &str) -> Result<&'a str, StepError> {
    artifacts
        .iter()
        .find(|artifact| artifact.name == name)
        .map(|artifact| artifact.path.as_str())
        .ok_or_else(|| {
            StepError::InvalidInput(format!("{direction} artifact '{name}' was not given"))
        })
}
