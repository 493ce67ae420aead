//! Tensors as the serving protocols carry them: typed elements, flattened in row-major
//! order, with a shape. Here live the checked shape arithmetic, the lossless conversions
//! between numeric types, and the checks of a tensor against a model's signature. No
//! protocol and no JSON lives here (that is `json`), and nothing of wasmtime.

use crate::models::TensorSpec;

/// The most dimensions a tensor may have. TensorFlow allows 254; deeper nesting in a
/// request is refused rather than followed.
pub const MAX_RANK: usize = 32;

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
    /// The OIP name: `BOOL`, `INT32`, `INT64`, `FP32`, `FP64`, `BYTES`.
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
    pub fn parse(name: &str) -> Result<Datatype, TensorError> {
        Ok(match name {
            "BOOL" => Datatype::Bool,
            "INT32" => Datatype::Int32,
            "INT64" => Datatype::Int64,
            "FP32" => Datatype::Fp32,
            "FP64" => Datatype::Fp64,
            "BYTES" => Datatype::Bytes,
            "UINT8" | "UINT16" | "UINT32" | "UINT64" | "INT8" | "INT16" | "FP16" | "BF16" => {
                return Err(TensorError::UnsupportedDatatype(name.to_owned()));
            }
            other => return Err(TensorError::UnknownDatatype(other.to_owned())),
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

/// A tensor's elements, flattened in row-major order. BYTES elements are raw byte strings
/// (text as its UTF-8 bytes).
#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    Bool(Vec<bool>),
    Int32(Vec<i32>),
    Int64(Vec<i64>),
    Fp32(Vec<f32>),
    Fp64(Vec<f64>),
    Bytes(Vec<Vec<u8>>),
}

impl Data {
    /// No elements yet, room for `capacity`.
    pub fn with_capacity(datatype: Datatype, capacity: usize) -> Data {
        match datatype {
            Datatype::Bool => Data::Bool(Vec::with_capacity(capacity)),
            Datatype::Int32 => Data::Int32(Vec::with_capacity(capacity)),
            Datatype::Int64 => Data::Int64(Vec::with_capacity(capacity)),
            Datatype::Fp32 => Data::Fp32(Vec::with_capacity(capacity)),
            Datatype::Fp64 => Data::Fp64(Vec::with_capacity(capacity)),
            Datatype::Bytes => Data::Bytes(Vec::with_capacity(capacity)),
        }
    }

    /// The number of elements.
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

    /// The memory the elements take, in bytes: their size for fixed-size types, and for
    /// BYTES each element's bytes plus its vector (24 bytes).
    pub fn memory(&self) -> usize {
        match self {
            Data::Bool(v) => v.len(),
            Data::Int32(v) => v.len() * 4,
            Data::Fp32(v) => v.len() * 4,
            Data::Int64(v) => v.len() * 8,
            Data::Fp64(v) => v.len() * 8,
            Data::Bytes(v) => v.iter().map(|b| b.len() + 24).sum(),
        }
    }

    /// The element type.
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

    /// The elements as `to`, when every one of them converts exactly: any integer into a
    /// float type that holds it, FP32 into FP64, FP64 into FP32 when nothing rounds,
    /// integers into narrower integers when they fit, and floats into integers when they
    /// are whole. BOOL and BYTES convert to nothing else. The error names the first element
    /// that does not convert, and how. Memory: the source and the result, nothing more.
    pub fn convert(self, to: Datatype) -> Result<Data, TensorError> {
        let from = self.datatype();
        if from == to {
            return Ok(self);
        }
        let refused = || TensorError::Refused { from, to };
        let lossy = |index: usize, w: Wide| TensorError::Lossy {
            from,
            to,
            index,
            element: w.to_string(),
        };
        fn each<S: Copy, T>(
            source: Vec<S>,
            wide: fn(S) -> Wide,
            narrow: fn(Wide) -> Option<T>,
            lossy: &dyn Fn(usize, Wide) -> TensorError,
        ) -> Result<Vec<T>, TensorError> {
            let mut out = Vec::with_capacity(source.len());
            for (i, &x) in source.iter().enumerate() {
                let w = wide(x);
                out.push(narrow(w).ok_or_else(|| lossy(i, w))?);
            }
            Ok(out)
        }
        macro_rules! into {
            ($source:expr, $wide:expr) => {
                match to {
                    Datatype::Int32 => Data::Int32(each(
                        $source,
                        $wide,
                        |w| w.integer().and_then(|x| i32::try_from(x).ok()),
                        &lossy,
                    )?),
                    Datatype::Int64 => Data::Int64(each(
                        $source,
                        $wide,
                        |w| w.integer().and_then(|x| i64::try_from(x).ok()),
                        &lossy,
                    )?),
                    Datatype::Fp64 => Data::Fp64(each($source, $wide, Wide::to_f64, &lossy)?),
                    Datatype::Fp32 => Data::Fp32(each(
                        $source,
                        $wide,
                        |w| w.to_f64().and_then(exact_f32),
                        &lossy,
                    )?),
                    Datatype::Bool | Datatype::Bytes => return Err(refused()),
                }
            };
        }
        Ok(match self {
            Data::Int32(v) => into!(v, |x: i32| Wide::Int(x.into())),
            Data::Int64(v) => into!(v, |x: i64| Wide::Int(x.into())),
            Data::Fp32(v) => into!(v, |x: f32| Wide::Float(x.into())),
            Data::Fp64(v) => into!(v, Wide::Float),
            Data::Bool(_) | Data::Bytes(_) => return Err(refused()),
        })
    }
}

/// A tensor that is not one, or does not fit what a model takes. Each message names the
/// input and says what was expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TensorError {
    #[error("datatype {0} is not supported; use BOOL, INT32, INT64, FP32, FP64 or BYTES")]
    UnsupportedDatatype(String),
    #[error("'{0}' is not an inference protocol datatype")]
    UnknownDatatype(String),
    #[error("{} data cannot be converted to {}", from.name(), to.name())]
    Refused { from: Datatype, to: Datatype },
    #[error("{} data cannot be converted to {} without loss: element {index} is {element}", from.name(), to.name())]
    Lossy {
        from: Datatype,
        to: Datatype,
        index: usize,
        element: String,
    },
    #[error("input '{name}' has {rank} dimensions; at most {MAX_RANK} are supported")]
    Rank { name: String, rank: usize },
    #[error("input '{name}': dimension {index} of shape {shape:?} is negative ({})", shape[*index])]
    NegativeDimension {
        name: String,
        index: usize,
        shape: Vec<i64>,
    },
    #[error("input '{name}': shape {shape:?} holds more elements than can be addressed")]
    Unaddressable { name: String, shape: Vec<i64> },
    #[error("shape {shape:?} holds {holds} elements, but {given} were given")]
    Count {
        shape: Vec<u64>,
        holds: u64,
        given: usize,
    },
    #[error("shape {shape:?} holds more elements than a u64 counts")]
    CountOverflow { shape: Vec<u64> },
    #[error("the model's signature is damaged: {0}")]
    DamagedSignature(Box<TensorError>),
    #[error("input '{name}' has shape {shape:?}, but the model takes {takes:?} (-1 is any size)")]
    Shape {
        name: String,
        shape: Vec<u64>,
        takes: Vec<i64>,
    },
    #[error("input '{name}' must be {}, not {}", want.name(), given.name())]
    Datatype {
        name: String,
        want: Datatype,
        given: Datatype,
    },
    #[error("input '{name}' must be {}: {why}", want.name())]
    Unconvertible {
        name: String,
        want: Datatype,
        why: Box<TensorError>,
    },
}

/// A numeric element held exactly.
#[derive(Clone, Copy, Debug)]
enum Wide {
    Int(i128),
    Float(f64),
}

impl Wide {
    /// The element as an integer, when it is one.
    fn integer(self) -> Option<i128> {
        match self {
            Wide::Int(x) => Some(x),
            // Every whole f64 below 2^127 in size is an i128 exactly.
            Wide::Float(f) if f.fract() == 0.0 && f.abs() < 1.7e38 => Some(f as i128),
            Wide::Float(_) => None,
        }
    }

    /// The element as an f64, when that holds it exactly.
    fn to_f64(self) -> Option<f64> {
        match self {
            Wide::Float(f) => Some(f),
            Wide::Int(x) => {
                let f = x as f64;
                (f.abs() < 1.7e38 && f as i128 == x).then_some(f)
            }
        }
    }
}

impl std::fmt::Display for Wide {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Wide::Int(x) => write!(f, "{x}"),
            // Debug gives the shortest text that reads back, `1e300` rather than 301 digits.
            Wide::Float(x) => write!(f, "{x:?}"),
        }
    }
}

/// `f` as an f32 when that holds it exactly (NaN stays NaN).
fn exact_f32(f: f64) -> Option<f32> {
    let narrow = f as f32;
    (f64::from(narrow) == f || f.is_nan()).then_some(narrow)
}

/// The number of elements a shape holds, or `None` when that overflows a `u64`.
pub fn element_count(shape: &[u64]) -> Option<u64> {
    shape.iter().try_fold(1u64, |n, &d| n.checked_mul(d))
}

/// A shape as a client declared it (OIP's `shape`): every dimension non-negative, and
/// their product a count of elements this machine can address. The error says which.
pub fn declared_shape(name: &str, dims: &[i64]) -> Result<Vec<u64>, TensorError> {
    if dims.len() > MAX_RANK {
        return Err(TensorError::Rank {
            name: name.to_owned(),
            rank: dims.len(),
        });
    }
    let mut shape = Vec::with_capacity(dims.len());
    for (index, &d) in dims.iter().enumerate() {
        let d = u64::try_from(d).map_err(|_| TensorError::NegativeDimension {
            name: name.to_owned(),
            index,
            shape: dims.to_vec(),
        })?;
        shape.push(d);
    }
    match element_count(&shape) {
        Some(n) if usize::try_from(n).is_ok() => Ok(shape),
        _ => Err(TensorError::Unaddressable {
            name: name.to_owned(),
            shape: dims.to_vec(),
        }),
    }
}

/// A named tensor. Whoever builds one from outside data checks that `shape` holds
/// exactly `data`'s elements ([`Tensor::new`], [`Tensor::check_count`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// The input's or output's name in the model's signature.
    pub name: String,
    /// Dimensions, outermost first; their product is the number of elements.
    pub shape: Vec<u64>,
    pub data: Data,
}

impl Tensor {
    /// A tensor whose shape holds exactly its elements; otherwise why not.
    pub fn new(name: &str, shape: Vec<u64>, data: Data) -> Result<Tensor, TensorError> {
        let tensor = Tensor {
            name: name.to_owned(),
            shape,
            data,
        };
        tensor.check_count()?;
        Ok(tensor)
    }

    /// The shape holds exactly as many elements as the data, without overflow; the
    /// error says how not ("shape [2, 3] holds 6 elements, but 5 were given").
    pub fn check_count(&self) -> Result<(), TensorError> {
        match element_count(&self.shape) {
            Some(holds) if holds == self.data.len() as u64 => Ok(()),
            Some(holds) => Err(TensorError::Count {
                shape: self.shape.clone(),
                holds,
                given: self.data.len(),
            }),
            None => Err(TensorError::CountOverflow {
                shape: self.shape.clone(),
            }),
        }
    }

    /// Fits the tensor to what the model declares: the datatype (converting numbers when
    /// that loses nothing, as [`Data::convert`] says) and every fixed dimension.
    pub fn conform(self, spec: &TensorSpec) -> Result<Tensor, TensorError> {
        let Tensor { name, shape, data } = self;
        let want = Datatype::parse(&spec.datatype)
            .map_err(|e| TensorError::DamagedSignature(Box::new(e)))?;
        // The shape first: a tensor the model cannot take is not worth converting.
        let fits = shape.len() == spec.shape.len()
            && shape
                .iter()
                .zip(&spec.shape)
                .all(|(&got, &want)| want < 0 || i64::try_from(got).is_ok_and(|g| g == want));
        if !fits {
            return Err(TensorError::Shape {
                name,
                shape,
                takes: spec.shape.clone(),
            });
        }
        let data = if data.datatype() == want {
            data
        } else {
            let from = data.datatype();
            data.convert(want).map_err(|e| {
                if matches!(from, Datatype::Bool | Datatype::Bytes)
                    || matches!(want, Datatype::Bool | Datatype::Bytes)
                {
                    TensorError::Datatype {
                        name: name.clone(),
                        want,
                        given: from,
                    }
                } else {
                    TensorError::Unconvertible {
                        name: name.clone(),
                        want,
                        why: Box::new(e),
                    }
                }
            })?
        };
        Ok(Tensor { name, shape, data })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(datatype: &str, shape: &[i64]) -> TensorSpec {
        TensorSpec {
            name: "x".into(),
            datatype: datatype.into(),
            shape: shape.to_vec(),
        }
    }

    #[test]
    fn shapes_never_wrap() {
        assert_eq!(element_count(&[2, 30]), Some(60));
        assert_eq!(element_count(&[]), Some(1));
        assert_eq!(element_count(&[u64::MAX, 2]), None);
        assert_eq!(element_count(&[1 << 32, 1 << 32]), None);
        assert_eq!(
            declared_shape("x", &[2, -3]).unwrap_err().to_string(),
            "input 'x': dimension 1 of shape [2, -3] is negative (-3)"
        );
        assert_eq!(
            declared_shape("x", &[1 << 40, 1 << 40])
                .unwrap_err()
                .to_string(),
            "input 'x': shape [1099511627776, 1099511627776] holds more elements than can be addressed"
        );
        let t = Tensor {
            name: "y".into(),
            shape: vec![u64::MAX, 2],
            data: Data::Fp64(vec![1.0]),
        };
        assert_eq!(
            t.check_count().unwrap_err().to_string(),
            "shape [18446744073709551615, 2] holds more elements than a u64 counts"
        );
        // 2^64 / 2 * 2 wraps to 0 in unchecked arithmetic: an empty tensor would pass.
        let t = Tensor {
            name: "y".into(),
            shape: vec![1 << 63, 2],
            data: Data::Fp64(vec![]),
        };
        assert!(t.check_count().is_err());
    }

    #[test]
    fn numbers_convert_only_without_loss() {
        let ints = Data::Int64(vec![1, -2, 1 << 53]);
        assert_eq!(
            ints.convert(Datatype::Fp64).unwrap(),
            Data::Fp64(vec![1.0, -2.0, 9007199254740992.0])
        );
        assert_eq!(
            Data::Int64(vec![0, (1 << 53) + 1])
                .convert(Datatype::Fp64)
                .unwrap_err()
                .to_string(),
            "INT64 data cannot be converted to FP64 without loss: element 1 is 9007199254740993"
        );
        assert_eq!(
            Data::Int32(vec![7]).convert(Datatype::Fp64).unwrap(),
            Data::Fp64(vec![7.0])
        );
        assert_eq!(
            Data::Fp32(vec![0.1]).convert(Datatype::Fp64).unwrap(),
            Data::Fp64(vec![f64::from(0.1f32)])
        );
        assert!(
            Data::Fp64(vec![0.1])
                .convert(Datatype::Fp32)
                .unwrap_err()
                .to_string()
                .contains("element 0 is 0.1")
        );
        assert_eq!(
            Data::Fp64(vec![0.5]).convert(Datatype::Fp32).unwrap(),
            Data::Fp32(vec![0.5])
        );
        assert_eq!(
            Data::Fp64(vec![2.0]).convert(Datatype::Int64).unwrap(),
            Data::Int64(vec![2])
        );
        assert!(
            Data::Fp64(vec![2.5])
                .convert(Datatype::Int64)
                .unwrap_err()
                .to_string()
                .contains("element 0 is 2.5")
        );
        assert!(Data::Int64(vec![1 << 40]).convert(Datatype::Int32).is_err());
        assert_eq!(
            Data::Int64(vec![i64::MAX])
                .convert(Datatype::Fp64)
                .unwrap_err()
                .to_string(),
            "INT64 data cannot be converted to FP64 without loss: element 0 is 9223372036854775807"
        );
        assert!(
            Data::Bool(vec![true])
                .convert(Datatype::Fp64)
                .unwrap_err()
                .to_string()
                .contains("cannot be converted")
        );
    }

    #[test]
    fn tensors_conform_to_the_signature() {
        let t = Tensor::new("x", vec![1, 3], Data::Int32(vec![1, 2, 3])).unwrap();
        let t = t.conform(&spec("FP64", &[-1, 3])).unwrap();
        assert_eq!(t.data, Data::Fp64(vec![1.0, 2.0, 3.0]));
        let wide = Tensor::new("x", vec![1, 4], Data::Fp64(vec![0.0; 4])).unwrap();
        assert_eq!(
            wide.conform(&spec("FP64", &[-1, 3]))
                .unwrap_err()
                .to_string(),
            "input 'x' has shape [1, 4], but the model takes [-1, 3] (-1 is any size)"
        );
        let text = Tensor::new("x", vec![1], Data::Bytes(vec![b"a".to_vec()])).unwrap();
        assert_eq!(
            text.conform(&spec("FP64", &[-1])).unwrap_err().to_string(),
            "input 'x' must be FP64, not BYTES"
        );
        let huge = Tensor {
            name: "x".into(),
            shape: vec![u64::MAX],
            data: Data::Fp64(vec![]),
        };
        // u64::MAX is not -1, whatever a wrapping cast would say.
        assert!(huge.conform(&spec("FP64", &[-1i64])).is_ok());
        let huge = Tensor {
            name: "x".into(),
            shape: vec![u64::MAX],
            data: Data::Fp64(vec![]),
        };
        assert!(huge.conform(&spec("FP64", &[3])).is_err());
    }

    #[test]
    fn names_and_parsing() {
        assert_eq!(Datatype::parse("FP32").unwrap(), Datatype::Fp32);
        assert!(
            Datatype::parse("FP16")
                .unwrap_err()
                .to_string()
                .contains("not supported")
        );
        assert!(
            Datatype::parse("DOUBLE")
                .unwrap_err()
                .to_string()
                .contains("not an inference protocol datatype")
        );
        assert_eq!(Datatype::Fp64.tf_name(), "DT_DOUBLE");
    }
}
