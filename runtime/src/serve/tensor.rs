//! Tensors as the serving protocols carry them: typed, flattened data with a shape,
//! read from and written to JSON (nested lists in row-major order, or flat data with an
//! explicit shape) and checked against a model's signature. No protocol lives here, and
//! nothing of wasmtime.

use serde_json::{Number, Value};

use crate::models::TensorSpec;

/// Element types, named as the Open Inference Protocol names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Datatype {
    Bool,
    Int32,
    Int64,
    Fp32,
    Fp64,
    Bytes,
}

impl Datatype {
    pub fn name(self) -> &'static str {
        match self {
            Datatype::Bool => "BOOL",
            Datatype::Int32 => "INT32",
            Datatype::Int64 => "INT64",
            Datatype::Fp32 => "FP32",
            Datatype::Fp64 => "FP64",
            Datatype::Bytes => "BYTES",
        }
    }

    /// The OIP name, or why it is not one Sluice's predictors take.
    pub fn parse(name: &str) -> Result<Datatype, String> {
        Ok(match name {
            "BOOL" => Datatype::Bool,
            "INT32" => Datatype::Int32,
            "INT64" => Datatype::Int64,
            "FP32" => Datatype::Fp32,
            "FP64" => Datatype::Fp64,
            "BYTES" => Datatype::Bytes,
            "UINT8" | "UINT16" | "UINT32" | "UINT64" | "INT8" | "INT16" | "FP16" | "BF16" => {
                return Err(format!(
                    "datatype {name} is not supported; use BOOL, INT32, INT64, FP32, FP64 or BYTES"
                ));
            }
            other => return Err(format!("'{other}' is not an inference protocol datatype")),
        })
    }

    /// TF Serving's name for the type (`DT_DOUBLE`, ...).
    pub fn tf_name(self) -> &'static str {
        match self {
            Datatype::Bool => "DT_BOOL",
            Datatype::Int32 => "DT_INT32",
            Datatype::Int64 => "DT_INT64",
            Datatype::Fp32 => "DT_FLOAT",
            Datatype::Fp64 => "DT_DOUBLE",
            Datatype::Bytes => "DT_STRING",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    Bool(Vec<bool>),
    Int32(Vec<i32>),
    Int64(Vec<i64>),
    Fp32(Vec<f32>),
    Fp64(Vec<f64>),
    Bytes(Vec<String>),
}

impl Data {
    pub fn len(&self) -> usize {
        match self {
            Data::Bool(v) => v.len(),
            Data::Int32(v) => v.len(),
            Data::Int64(v) => v.len(),
            Data::Fp32(v) => v.len(),
            Data::Fp64(v) => v.len(),
            Data::Bytes(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn datatype(&self) -> Datatype {
        match self {
            Data::Bool(_) => Datatype::Bool,
            Data::Int32(_) => Datatype::Int32,
            Data::Int64(_) => Datatype::Int64,
            Data::Fp32(_) => Datatype::Fp32,
            Data::Fp64(_) => Datatype::Fp64,
            Data::Bytes(_) => Datatype::Bytes,
        }
    }

    fn json(&self, i: usize) -> Value {
        match self {
            Data::Bool(v) => Value::Bool(v[i]),
            Data::Int32(v) => Value::from(v[i]),
            Data::Int64(v) => Value::from(v[i]),
            Data::Fp32(v) => Number::from_f64(f64::from(v[i])).map_or(Value::Null, Value::Number),
            Data::Fp64(v) => Number::from_f64(v[i]).map_or(Value::Null, Value::Number),
            Data::Bytes(v) => Value::String(v[i].clone()),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub name: String,
    pub shape: Vec<u64>,
    pub data: Data,
}

impl Tensor {
    /// Reads flat JSON leaves as `datatype`; `shape` must hold exactly as many elements.
    pub fn from_flat(
        name: &str,
        shape: Vec<u64>,
        datatype: Datatype,
        leaves: &[&Value],
    ) -> Result<Tensor, String> {
        let expected: u64 = shape.iter().product();
        if expected != leaves.len() as u64 {
            return Err(format!(
                "input '{name}' has shape {shape:?}, which holds {expected} elements, but {} were given",
                leaves.len()
            ));
        }
        let bad = |i: usize| {
            format!(
                "input '{name}': element {i} is {}, not {}",
                leaves[i],
                datatype.name()
            )
        };
        let data = match datatype {
            Datatype::Bool => Data::Bool(
                leaves
                    .iter()
                    .enumerate()
                    .map(|(i, v)| v.as_bool().ok_or_else(|| bad(i)))
                    .collect::<Result<_, _>>()?,
            ),
            Datatype::Int32 => Data::Int32(
                leaves
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        v.as_i64()
                            .and_then(|n| i32::try_from(n).ok())
                            .ok_or_else(|| bad(i))
                    })
                    .collect::<Result<_, _>>()?,
            ),
            Datatype::Int64 => Data::Int64(
                leaves
                    .iter()
                    .enumerate()
                    .map(|(i, v)| v.as_i64().ok_or_else(|| bad(i)))
                    .collect::<Result<_, _>>()?,
            ),
            Datatype::Fp32 => Data::Fp32(
                leaves
                    .iter()
                    .enumerate()
                    .map(|(i, v)| v.as_f64().map(|f| f as f32).ok_or_else(|| bad(i)))
                    .collect::<Result<_, _>>()?,
            ),
            Datatype::Fp64 => Data::Fp64(
                leaves
                    .iter()
                    .enumerate()
                    .map(|(i, v)| v.as_f64().ok_or_else(|| bad(i)))
                    .collect::<Result<_, _>>()?,
            ),
            Datatype::Bytes => Data::Bytes(
                leaves
                    .iter()
                    .enumerate()
                    .map(|(i, v)| v.as_str().map(str::to_owned).ok_or_else(|| bad(i)))
                    .collect::<Result<_, _>>()?,
            ),
        };
        Ok(Tensor {
            name: name.to_owned(),
            shape,
            data,
        })
    }

    /// Reads nested JSON lists (row-major); the nesting gives the shape, which must be
    /// rectangular.
    pub fn from_nested(name: &str, value: &Value, datatype: Datatype) -> Result<Tensor, String> {
        let shape = nested_shape(name, value)?;
        let mut leaves = Vec::new();
        flatten(value, &mut leaves);
        Tensor::from_flat(name, shape, datatype, &leaves)
    }

    /// Stacks rows (each itself a nested value) along a new first dimension.
    pub fn from_rows(name: &str, rows: &[&Value], datatype: Datatype) -> Result<Tensor, String> {
        let stacked = Value::Array(rows.iter().map(|r| (*r).clone()).collect());
        Tensor::from_nested(name, &stacked, datatype)
    }

    /// The data as nested lists following the shape.
    pub fn nested(&self) -> Value {
        nest(&self.data, &self.shape, 0).0
    }

    /// The data flat, in row-major order.
    pub fn flat(&self) -> Value {
        Value::Array((0..self.data.len()).map(|i| self.data.json(i)).collect())
    }

    /// The slices along the first dimension, each as nested lists (a scalar for shape `[n]`).
    pub fn rows(&self) -> Vec<Value> {
        match self.shape.split_first() {
            None => vec![self.nested()],
            Some((&n, inner)) => {
                let per_row: u64 = inner.iter().product();
                let mut out = Vec::with_capacity(n as usize);
                let mut offset = 0;
                for _ in 0..n {
                    let (value, next) = nest(&self.data, inner, offset);
                    out.push(value);
                    offset = next;
                    debug_assert_eq!(offset as u64 % per_row.max(1), 0);
                }
                out
            }
        }
    }

    /// Checks the tensor against what the model declares: datatype and every fixed dimension.
    pub fn check(&self, spec: &TensorSpec) -> Result<(), String> {
        if self.data.datatype().name() != spec.datatype {
            return Err(format!(
                "input '{}' must be {}, not {}",
                self.name,
                spec.datatype,
                self.data.datatype().name()
            ));
        }
        let fits = self.shape.len() == spec.shape.len()
            && self
                .shape
                .iter()
                .zip(&spec.shape)
                .all(|(&got, &want)| want < 0 || got as i64 == want);
        if !fits {
            return Err(format!(
                "input '{}' has shape {:?}, but the model takes {:?} (-1 is any size)",
                self.name, self.shape, spec.shape
            ));
        }
        Ok(())
    }
}

fn nested_shape(name: &str, value: &Value) -> Result<Vec<u64>, String> {
    match value {
        Value::Array(items) => {
            let Some(first) = items.first() else {
                return Ok(vec![0]);
            };
            let inner = nested_shape(name, first)?;
            for item in &items[1..] {
                if nested_shape(name, item)? != inner {
                    return Err(format!(
                        "input '{name}' is ragged: its rows differ in shape"
                    ));
                }
            }
            let mut shape = vec![items.len() as u64];
            shape.extend(inner);
            Ok(shape)
        }
        _ => Ok(Vec::new()),
    }
}

fn flatten<'a>(value: &'a Value, out: &mut Vec<&'a Value>) {
    match value {
        Value::Array(items) => items.iter().for_each(|i| flatten(i, out)),
        leaf => out.push(leaf),
    }
}

/// Builds the nested value of `shape` starting at element `offset`; returns it and the
/// offset after it.
fn nest(data: &Data, shape: &[u64], offset: usize) -> (Value, usize) {
    match shape.split_first() {
        None => (data.json(offset), offset + 1),
        Some((&n, inner)) => {
            let mut items = Vec::with_capacity(n as usize);
            let mut at = offset;
            for _ in 0..n {
                let (v, next) = nest(data, inner, at);
                items.push(v);
                at = next;
            }
            (Value::Array(items), at)
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn nested_lists_give_the_shape() {
        let t = Tensor::from_nested("x", &json!([[1, 2, 3], [4, 5, 6]]), Datatype::Fp64).unwrap();
        assert_eq!(t.shape, [2, 3]);
        assert_eq!(t.data, Data::Fp64(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));
        assert_eq!(t.nested(), json!([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]));
        assert_eq!(t.rows(), [json!([1.0, 2.0, 3.0]), json!([4.0, 5.0, 6.0])]);
        let err = Tensor::from_nested("x", &json!([[1, 2], [3]]), Datatype::Fp64).unwrap_err();
        assert_eq!(err, "input 'x' is ragged: its rows differ in shape");
    }

    #[test]
    fn flat_data_must_fill_its_shape() {
        let leaves = [json!(1), json!(2), json!(3)];
        let refs: Vec<&Value> = leaves.iter().collect();
        let err = Tensor::from_flat("x", vec![2, 2], Datatype::Int64, &refs).unwrap_err();
        assert_eq!(
            err,
            "input 'x' has shape [2, 2], which holds 4 elements, but 3 were given"
        );
        let err = Tensor::from_flat("x", vec![3], Datatype::Bool, &refs).unwrap_err();
        assert_eq!(err, "input 'x': element 0 is 1, not BOOL");
    }

    #[test]
    fn tensors_are_checked_against_the_signature() {
        let spec = TensorSpec {
            name: "x".into(),
            datatype: "FP64".into(),
            shape: vec![-1, 3],
        };
        let ok = Tensor::from_nested("x", &json!([[1, 2, 3]]), Datatype::Fp64).unwrap();
        ok.check(&spec).unwrap();
        let wide = Tensor::from_nested("x", &json!([[1, 2, 3, 4]]), Datatype::Fp64).unwrap();
        assert_eq!(
            wide.check(&spec).unwrap_err(),
            "input 'x' has shape [1, 4], but the model takes [-1, 3] (-1 is any size)"
        );
        let ints = Tensor::from_nested("x", &json!([[1, 2, 3]]), Datatype::Int64).unwrap();
        assert_eq!(
            ints.check(&spec).unwrap_err(),
            "input 'x' must be FP64, not INT64"
        );
    }

    #[test]
    fn names_and_parsing() {
        assert_eq!(Datatype::parse("FP32").unwrap(), Datatype::Fp32);
        assert!(
            Datatype::parse("FP16")
                .unwrap_err()
                .contains("not supported")
        );
        assert!(
            Datatype::parse("DOUBLE")
                .unwrap_err()
                .contains("not an inference protocol datatype")
        );
        assert_eq!(Datatype::Fp64.tf_name(), "DT_DOUBLE");
    }
}
