//! The plain-Rust view of the `tensors` interface of `wit/pipeline.wit`: tensors, the specs
//! of a model's inputs and outputs, and its signature. A predictor component converts its
//! `wit-bindgen` types into these, so everything that checks or fills a tensor is tested
//! natively. Names of element types are the Open Inference Protocol's (`FP64`, `BYTES`),
//! as a client of a served model sees them. No IO and no numerics here.

use std::fmt;

/// An element type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Datatype {
    Fp64,
    Fp32,
    Int64,
    Int32,
    Boolean,
    Bytes,
}

impl fmt::Display for Datatype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Datatype::Fp64 => "FP64",
            Datatype::Fp32 => "FP32",
            Datatype::Int64 => "INT64",
            Datatype::Int32 => "INT32",
            Datatype::Boolean => "BOOL",
            Datatype::Bytes => "BYTES",
        })
    }
}

/// A tensor's elements, flattened in row-major order.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    Fp64(Vec<f64>),
    Fp32(Vec<f32>),
    Int64(Vec<i64>),
    Int32(Vec<i32>),
    Boolean(Vec<bool>),
    /// Raw byte strings (text as its UTF-8 bytes).
    Bytes(Vec<Vec<u8>>),
}

impl TensorData {
    pub fn datatype(&self) -> Datatype {
        match self {
            TensorData::Fp64(_) => Datatype::Fp64,
            TensorData::Fp32(_) => Datatype::Fp32,
            TensorData::Int64(_) => Datatype::Int64,
            TensorData::Int32(_) => Datatype::Int32,
            TensorData::Boolean(_) => Datatype::Boolean,
            TensorData::Bytes(_) => Datatype::Bytes,
        }
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        match self {
            TensorData::Fp64(values) => values.len(),
            TensorData::Fp32(values) => values.len(),
            TensorData::Int64(values) => values.len(),
            TensorData::Int32(values) => values.len(),
            TensorData::Boolean(values) => values.len(),
            TensorData::Bytes(values) => values.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The elements as `f64`, for the numeric types (integers beyond 2^53 round to the
    /// nearest `f64`); `None` for booleans and bytes.
    pub fn into_f64(self) -> Option<Vec<f64>> {
        match self {
            TensorData::Fp64(values) => Some(values),
            TensorData::Fp32(values) => Some(values.into_iter().map(f64::from).collect()),
            TensorData::Int64(values) => Some(values.into_iter().map(|v| v as f64).collect()),
            TensorData::Int32(values) => Some(values.into_iter().map(f64::from).collect()),
            TensorData::Boolean(_) | TensorData::Bytes(_) => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub name: String,
    /// Dimensions; their product is the number of elements.
    pub shape: Vec<u64>,
    pub data: TensorData,
}

/// One input or output a model takes or gives; `-1` in `shape` is a dimension of any size.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorSpec {
    pub name: String,
    pub datatype: Datatype,
    pub shape: Vec<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Signature {
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
}

/// A shape as users write it: `[2, 30]`, `[-1, 30]`, `[]`.
pub fn shape_text<T: fmt::Display>(shape: &[T]) -> String {
    let dims: Vec<String> = shape.iter().map(ToString::to_string).collect();
    format!("[{}]", dims.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_data_converts_to_f64_and_the_rest_does_not() {
        assert_eq!(
            TensorData::Fp32(vec![0.5, -2.0]).into_f64(),
            Some(vec![0.5, -2.0])
        );
        assert_eq!(
            TensorData::Int64(vec![-3, 7]).into_f64(),
            Some(vec![-3.0, 7.0])
        );
        assert_eq!(TensorData::Int32(vec![4]).into_f64(), Some(vec![4.0]));
        assert_eq!(TensorData::Boolean(vec![true]).into_f64(), None);
        assert_eq!(TensorData::Bytes(vec![b"B".to_vec()]).into_f64(), None);
        assert_eq!(
            TensorData::Bytes(vec![b"B".to_vec()])
                .datatype()
                .to_string(),
            "BYTES"
        );
        assert_eq!(TensorData::Fp64(vec![]).len(), 0);
    }

    #[test]
    fn shapes_read_as_users_write_them() {
        assert_eq!(shape_text(&[2u64, 29]), "[2, 29]");
        assert_eq!(shape_text(&[-1i64, 30]), "[-1, 30]");
        assert_eq!(shape_text::<u64>(&[]), "[]");
    }
}
