//! `predictor` component: exports `sluice:pipeline/predict` (the `predictor` world of
//! `wit/pipeline.wit`) for bundles written by the `package` step. `load` parses the bundle
//! and keeps the predictor in this instance's state; `predict` answers batches of raw
//! feature rows with the positive-class probability and the predicted label of each.
//!
//! This file only converts between the WIT types and `sluice_ml` and holds the loaded
//! model; reading the bundle, checking requests and all the arithmetic are
//! `sluice_ml::bundle`. A bundle or request the predictor cannot use is `invalid-input`;
//! `predict` before a successful `load` is `failed`. No file, clock or network access.

// Exported only in the wasm build: native linkers reject the component-model symbol
// names, and natively this crate exists only for its unit tests (hence no dead-code
// warnings there).
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

use bindings::exports::sluice::pipeline::predict::{Guest, PredictError};
use bindings::sluice::pipeline::tensors::{Datatype, Signature, Tensor, TensorData, TensorSpec};
use sluice_ml::bundle::Predictor;
use sluice_ml::{describe, tensor};

struct Component;

thread_local! {
    /// The model `load` gave this instance; a component instance is single-threaded.
    static LOADED: RefCell<Option<Predictor>> = const { RefCell::new(None) };
}

impl Guest for Component {
    fn load(model: Vec<u8>) -> Result<Signature, PredictError> {
        let predictor = Predictor::load(&model).map_err(|err| {
            PredictError::InvalidInput(format!("cannot load the bundle: {}", describe(&err)))
        })?;
        let signature = signature(predictor.signature());
        LOADED.with_borrow_mut(|loaded| *loaded = Some(predictor));
        Ok(signature)
    }

    fn predict(inputs: Vec<Tensor>) -> Result<Vec<Tensor>, PredictError> {
        LOADED.with_borrow(|loaded| {
            let predictor = loaded
                .as_ref()
                .ok_or_else(|| PredictError::Failed("no model loaded".to_owned()))?;
            let outputs = predictor
                .predict(inputs.into_iter().map(tensor_in).collect())
                .map_err(|err| PredictError::InvalidInput(err.to_string()))?;
            Ok(outputs.into_iter().map(tensor_out).collect())
        })
    }
}

fn signature(signature: tensor::Signature) -> Signature {
    let specs = |specs: Vec<tensor::TensorSpec>| -> Vec<TensorSpec> {
        specs
            .into_iter()
            .map(|spec| TensorSpec {
                name: spec.name,
                datatype: datatype(spec.datatype),
                shape: spec.shape,
            })
            .collect()
    };
    Signature {
        inputs: specs(signature.inputs),
        outputs: specs(signature.outputs),
    }
}

fn datatype(datatype: tensor::Datatype) -> Datatype {
    match datatype {
        tensor::Datatype::Fp64 => Datatype::Fp64,
        tensor::Datatype::Fp32 => Datatype::Fp32,
        tensor::Datatype::Int64 => Datatype::Int64,
        tensor::Datatype::Int32 => Datatype::Int32,
        tensor::Datatype::Boolean => Datatype::Boolean,
        tensor::Datatype::Bytes => Datatype::Bytes,
    }
}

fn tensor_in(tensor: Tensor) -> tensor::Tensor {
    tensor::Tensor {
        name: tensor.name,
        shape: tensor.shape,
        data: match tensor.data {
            TensorData::Fp64(values) => tensor::TensorData::Fp64(values),
            TensorData::Fp32(values) => tensor::TensorData::Fp32(values),
            TensorData::Int64(values) => tensor::TensorData::Int64(values),
            TensorData::Int32(values) => tensor::TensorData::Int32(values),
            TensorData::Boolean(values) => tensor::TensorData::Boolean(values),
            TensorData::Bytes(values) => tensor::TensorData::Bytes(values),
        },
    }
}

fn tensor_out(tensor: tensor::Tensor) -> Tensor {
    Tensor {
        name: tensor.name,
        shape: tensor.shape,
        data: match tensor.data {
            tensor::TensorData::Fp64(values) => TensorData::Fp64(values),
            tensor::TensorData::Fp32(values) => TensorData::Fp32(values),
            tensor::TensorData::Int64(values) => TensorData::Int64(values),
            tensor::TensorData::Int32(values) => TensorData::Int32(values),
            tensor::TensorData::Boolean(values) => TensorData::Boolean(values),
            tensor::TensorData::Bytes(values) => TensorData::Bytes(values),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-feature bundle: `x` is centred on 1, and the model's log-odds are `2 * x'`.
    fn bundle() -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "format": "sluice-logistic-bundle/v1",
            "model": {
                "kind": "logistic-regression",
                "features": ["x"],
                "weights": [2.0],
                "bias": 0.0,
                "label": "diagnosis",
                "positive": "M",
                "threshold": 0.5,
                "l2": 0.01,
                "iterations": 1,
                "converged": true,
                "training_loss": 0.5,
                "training_rows": 2
            },
            "normalization": {
                "method": "zscore",
                "rows": 2,
                "excluded": ["diagnosis"],
                "columns": [{"name": "x", "mean": 1.0, "std": 1.0, "min": 0.0, "max": 2.0}]
            },
            "negative": "B"
        }))
        .unwrap()
    }

    fn features(data: TensorData) -> Vec<Tensor> {
        vec![Tensor {
            name: "features".to_owned(),
            shape: vec![2, 1],
            data,
        }]
    }

    // Both cases share the thread-local state, so they run in one test, in order.
    #[test]
    fn predicts_only_once_loaded_and_converts_every_type() {
        match Component::predict(features(TensorData::Fp64(vec![1.0, 0.0]))) {
            Err(PredictError::Failed(message)) => assert_eq!(message, "no model loaded"),
            other => panic!("{other:?}"),
        }
        match Component::load(b"{}".to_vec()) {
            Err(PredictError::InvalidInput(message)) => assert_eq!(
                message,
                "cannot load the bundle: the bundle has no 'format', expected 'sluice-logistic-bundle/v1'"
            ),
            other => panic!("{other:?}"),
        }

        let signature = Component::load(bundle()).unwrap();
        assert_eq!(signature.inputs.len(), 1);
        assert_eq!(signature.inputs[0].name, "features");
        assert!(matches!(signature.inputs[0].datatype, Datatype::Fp64));
        assert_eq!(signature.inputs[0].shape, [-1, 1]);
        let outputs: Vec<(&str, &[i64])> = signature
            .outputs
            .iter()
            .map(|spec| (spec.name.as_str(), spec.shape.as_slice()))
            .collect();
        assert_eq!(outputs, [("probability", &[-1][..]), ("label", &[-1][..])]);
        assert!(matches!(signature.outputs[1].datatype, Datatype::Bytes));

        for data in [
            TensorData::Fp64(vec![1.0, 0.0]),
            TensorData::Fp32(vec![1.0, 0.0]),
            TensorData::Int64(vec![1, 0]),
            TensorData::Int32(vec![1, 0]),
        ] {
            let out = Component::predict(features(data)).unwrap();
            assert_eq!(out[0].name, "probability");
            assert_eq!(out[0].shape, [2]);
            match &out[0].data {
                TensorData::Fp64(p) => assert_eq!(p, &[0.5, sluice_ml::logistic::sigmoid(-2.0)]),
                other => panic!("{other:?}"),
            }
            assert_eq!(out[1].name, "label");
            match &out[1].data {
                TensorData::Bytes(labels) => assert_eq!(labels, &[b"M".to_vec(), b"B".to_vec()]),
                other => panic!("{other:?}"),
            }
        }
        match Component::predict(features(TensorData::Boolean(vec![true, false]))) {
            Err(PredictError::InvalidInput(message)) => assert_eq!(
                message,
                "input 'features' holds BOOL values; expected FP64 (or FP32, INT64, INT32)"
            ),
            other => panic!("{other:?}"),
        }
    }
}
