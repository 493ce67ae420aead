//! `predictor-probe` component: a predictor for the host's serving tests, whose signature
//! and answers the test chooses through the model artifact. The model is JSON:
//!
//! ```json
//! {"inputs":  [{"name": "x", "datatype": "FP64", "shape": [-1, 2]}],
//!  "outputs": [{"name": "x", "datatype": "FP64", "shape": [-1, 2]}],
//!  "spin_ms": 0}
//! ```
//!
//! `predict` answers each declared output by its name: an output named like an input
//! echoes that input unchanged; `nonfinite` is the FP64 tensor `[NaN, inf, -inf]`;
//! `overflowing_shape` claims shape `[u64::MAX, 2]` for one element; `short_data` claims
//! shape `[1000000]` for one element; `not_utf8` is one BYTES element `ff fe`. With
//! `spin_ms`, each call first busy-waits that long. No file or network access.

// Exported only in the wasm build: natively this crate exists only to be checked.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

/// The generated glue needs `unsafe` for the canonical ABI; no hand-written code here does.
#[allow(unsafe_code)]
mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "predictor",
    });
}

/// The exported glue, generated in this crate, is `unsafe` too.
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
mod export {
    use super::Component;
    super::bindings::export!(Component with_types_in super::bindings);
}

use std::cell::RefCell;
use std::time::{Duration, Instant};

use bindings::exports::sluice::pipeline::predict::{Guest, PredictError};
use bindings::sluice::pipeline::tensors::{Datatype, Signature, Tensor, TensorData, TensorSpec};
use serde::Deserialize;

struct Component;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Model {
    inputs: Vec<Spec>,
    outputs: Vec<Spec>,
    #[serde(default)]
    spin_ms: u64,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Spec {
    name: String,
    datatype: String,
    shape: Vec<i64>,
}

thread_local! {
    /// The model `load` gave this instance; a component instance is single-threaded.
    static LOADED: RefCell<Option<Model>> = const { RefCell::new(None) };
}

impl Guest for Component {
    fn load(model: Vec<u8>) -> Result<Signature, PredictError> {
        let model: Model = serde_json::from_slice(&model)
            .map_err(|e| PredictError::InvalidInput(format!("cannot read the model: {e}")))?;
        let specs = |specs: &[Spec]| -> Result<Vec<TensorSpec>, PredictError> {
            specs
                .iter()
                .map(|s| {
                    Ok(TensorSpec {
                        name: s.name.clone(),
                        datatype: datatype(&s.datatype)?,
                        shape: s.shape.clone(),
                    })
                })
                .collect()
        };
        let signature = Signature {
            inputs: specs(&model.inputs)?,
            outputs: specs(&model.outputs)?,
        };
        LOADED.with_borrow_mut(|loaded| *loaded = Some(model));
        Ok(signature)
    }

    fn predict(inputs: Vec<Tensor>) -> Result<Vec<Tensor>, PredictError> {
        LOADED.with_borrow(|loaded| {
            let model = loaded
                .as_ref()
                .ok_or_else(|| PredictError::Failed("no model loaded".to_owned()))?;
            if model.spin_ms > 0 {
                let until = Instant::now() + Duration::from_millis(model.spin_ms);
                while Instant::now() < until {
                    std::hint::spin_loop();
                }
            }
            model
                .outputs
                .iter()
                .map(|spec| answer(spec, &inputs))
                .collect()
        })
    }
}

fn answer(spec: &Spec, inputs: &[Tensor]) -> Result<Tensor, PredictError> {
    let tensor = |shape: Vec<u64>, data: TensorData| Tensor {
        name: spec.name.clone(),
        shape,
        data,
    };
    if let Some(input) = inputs.iter().find(|i| i.name == spec.name) {
        return Ok(tensor(input.shape.clone(), input.data.clone()));
    }
    Ok(match spec.name.as_str() {
        "nonfinite" => tensor(
            vec![3],
            TensorData::Fp64(vec![f64::NAN, f64::INFINITY, f64::NEG_INFINITY]),
        ),
        "overflowing_shape" => tensor(vec![u64::MAX, 2], TensorData::Fp64(vec![1.0])),
        "short_data" => tensor(vec![1_000_000], TensorData::Fp64(vec![1.0])),
        "not_utf8" => tensor(vec![1], TensorData::Bytes(vec![vec![0xff, 0xfe]])),
        other => {
            return Err(PredictError::Failed(format!(
                "no input named '{other}' to echo"
            )));
        }
    })
}

fn datatype(name: &str) -> Result<Datatype, PredictError> {
    Ok(match name {
        "FP64" => Datatype::Fp64,
        "FP32" => Datatype::Fp32,
        "INT64" => Datatype::Int64,
        "INT32" => Datatype::Int32,
        "BOOL" => Datatype::Boolean,
        "BYTES" => Datatype::Bytes,
        other => {
            return Err(PredictError::InvalidInput(format!(
                "unknown datatype '{other}'"
            )));
        }
    })
}
