//! The JSON of the serving protocols, read into typed tensors and written from them with
//! no generic JSON tree in between: a request's numbers go straight into the typed buffer
//! the predictor receives (`Vec<f64>`, ...), nested lists are checked against the shape
//! while they are read, and answers are written straight into the response's bytes.
//!
//! Reading (jiter, a pull parser) accepts TF Serving's `NaN`, `Infinity` and `-Infinity`
//! tokens, and, where the caller allows it, TF Serving's `{"b64": "..."}` values for
//! BYTES elements (standard base64, padding optional). Writing gives non-finite floats as
//! those tokens or refuses them, and BYTES as text or base64, as the caller's [`Style`]
//! says. No HTTP and no protocol lives here; `tfs` and `oip` decide what goes where.

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use jiter::{Jiter, JiterError, NumberAny, NumberInt, Peek};

use super::tensor::{Data, Datatype, MAX_RANK, element_count};

/// Standard base64, with or without padding, as TF Serving decodes `b64` values.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A pull parser over a request body that takes TF Serving's non-finite tokens.
pub(crate) fn parser(bytes: &[u8]) -> Jiter<'_> {
    Jiter::new(bytes).with_allow_inf_nan()
}

/// Why a request's JSON could not be read: broken JSON, or a value that is not what its
/// place wants (said relative to the tensor being read: "element 3 is ...").
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum ReadError {
    Syntax(String),
    Value(String),
}

impl ReadError {
    /// The one-line message, the value's named as part of `what` ("input 'x'").
    pub(crate) fn about(self, what: &str) -> String {
        match self {
            ReadError::Syntax(message) => message,
            ReadError::Value(message) => format!("{what}: {message}"),
        }
    }
}

macro_rules! bad {
    ($($arg:tt)*) => { ReadError::Value(format!($($arg)*)) };
}

/// A syntax error, and where in the body it is (a byte offset: bodies are machine-made,
/// often one long line).
pub(crate) fn syntax(e: &JiterError) -> ReadError {
    ReadError::Syntax(format!(
        "the request body is not valid JSON: {} at byte {}",
        e.error_type, e.index
    ))
}

/// `?` for jiter calls: a syntax error becomes its one-line message.
pub(crate) trait OrSyntax<T> {
    fn or_syntax(self) -> Result<T, ReadError>;
}

impl<T> OrSyntax<T> for Result<T, JiterError> {
    fn or_syntax(self) -> Result<T, ReadError> {
        self.map_err(|e| syntax(&e))
    }
}

/// The text of the value at the parser's position, consumed, shortened for a message.
fn value_text(j: &mut Jiter, peek: Peek) -> Result<String, ReadError> {
    let start = j.current_index();
    j.known_skip(peek).or_syntax()?;
    let text = String::from_utf8_lossy(j.slice_to_current(start));
    Ok(match text.char_indices().nth(40) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.into_owned(),
    })
}

/// Whether the object at the parser's position is a `{"b64": "..."}` value. Looks ahead
/// on a copy of the parser, so nothing is consumed.
pub(crate) fn is_b64_object(j: &Jiter) -> bool {
    let mut ahead = j.clone();
    matches!(ahead.next_object(), Ok(Some("b64")))
        && ahead.next_skip().is_ok()
        && matches!(ahead.next_key(), Ok(None))
}

/// Reads one element of `data`'s type at the parser's position (whose first byte is
/// `peek`) and appends it. `b64` allows `{"b64": ...}` for BYTES. The error says which
/// element it is and what it should have been.
pub(crate) fn read_leaf(
    j: &mut Jiter,
    peek: Peek,
    data: &mut Data,
    b64: bool,
) -> Result<(), ReadError> {
    let index = data.len();
    let datatype = data.datatype();
    let wrong = |j: &mut Jiter| -> Result<(), ReadError> {
        let text = value_text(j, peek)?;
        Err(bad!("element {index} is {text}, not {}", datatype.name()))
    };
    match data {
        Data::Fp64(v) if peek.is_num() => v.push(j.known_float(peek).or_syntax()?),
        Data::Fp32(v) if peek.is_num() => {
            let start = j.current_index();
            let wide = j.known_float(peek).or_syntax()?;
            let narrow = wide as f32;
            if wide.is_finite() && narrow.is_infinite() {
                let text = String::from_utf8_lossy(j.slice_to_current(start));
                return Err(bad!("element {index} is {text}, beyond the range of FP32"));
            }
            v.push(narrow);
        }
        Data::Int64(v) if peek.is_num() => match integer(j, peek)? {
            Some(n) => v.push(n),
            None => return Err(not_integer(index, datatype)),
        },
        Data::Int32(v) if peek.is_num() => match integer(j, peek)?.map(i32::try_from) {
            Some(Ok(n)) => v.push(n),
            _ => return Err(not_integer(index, datatype)),
        },
        Data::Bool(v) if matches!(peek, Peek::True | Peek::False) => {
            v.push(j.known_bool(peek).or_syntax()?)
        }
        Data::Bytes(v) if peek == Peek::String => {
            v.push(j.known_str().or_syntax()?.as_bytes().to_vec())
        }
        Data::Bytes(v) if b64 && peek == Peek::Object && is_b64_object(j) => {
            j.known_object().or_syntax()?;
            let text = match j.peek().or_syntax()? {
                Peek::String => j.known_str().or_syntax()?,
                other => {
                    let text = value_text(j, other)?;
                    return Err(bad!("element {index}: b64 holds {text}, not a string"));
                }
            };
            let bytes = BASE64
                .decode(text)
                .map_err(|e| bad!("element {index}: b64 holds no valid base64 ({e})"))?;
            v.push(bytes);
            j.next_key().or_syntax()?;
        }
        _ => return wrong(j),
    }
    Ok(())
}

/// The number at the parser's position as an i64, when it is a whole number that fits.
/// A number out of any integer's range is a wrong value, not broken JSON.
fn integer(j: &mut Jiter, peek: Peek) -> Result<Option<i64>, ReadError> {
    match j.known_number(peek) {
        Ok(NumberAny::Int(NumberInt::Int(n))) => Ok(Some(n)),
        Ok(_) => Ok(None),
        Err(e)
            if matches!(
                e.error_type,
                jiter::JiterErrorType::JsonError(jiter::JsonErrorType::NumberOutOfRange)
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(syntax(&e)),
    }
}

fn not_integer(index: usize, datatype: Datatype) -> ReadError {
    bad!(
        "element {index} is not a whole number that fits {}",
        datatype.name()
    )
}

/// What a nested level of a value turned out to be, while discovering its shape.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Level {
    Leaf,
    /// A list; its length once the first list at this depth has ended.
    List(Option<u64>),
}

/// Discovers the shape of nested JSON lists while reading their elements (TF Serving's
/// tensors, whose shape is not given): every list at one depth must have the same length
/// and every element the same depth, else the value is ragged. One `Discover` can read
/// several values (the rows of the row format), which must then all have one shape.
#[derive(Debug, Default)]
pub(crate) struct Discover {
    levels: Vec<Level>,
}

impl Discover {
    /// Reads the value at the parser's position, appending its elements to `data`.
    pub(crate) fn read(
        &mut self,
        j: &mut Jiter,
        peek: Peek,
        data: &mut Data,
        b64: bool,
    ) -> Result<(), ReadError> {
        self.visit(j, peek, 0, data, b64)
    }

    fn visit(
        &mut self,
        j: &mut Jiter,
        peek: Peek,
        depth: usize,
        data: &mut Data,
        b64: bool,
    ) -> Result<(), ReadError> {
        let is_list = peek == Peek::Array;
        match self.levels.get(depth) {
            None => {
                if depth >= MAX_RANK {
                    return Err(bad!("it is nested more than {MAX_RANK} levels deep"));
                }
                self.levels.push(if is_list {
                    Level::List(None)
                } else {
                    Level::Leaf
                });
            }
            Some(Level::Leaf) if is_list => return Err(ragged(depth)),
            Some(Level::List(_)) if !is_list => return Err(ragged(depth)),
            Some(_) => {}
        }
        if !is_list {
            return read_leaf(j, peek, data, b64);
        }
        let mut length = 0u64;
        let mut next = j.known_array().or_syntax()?;
        while let Some(peek) = next {
            self.visit(j, peek, depth + 1, data, b64)?;
            length += 1;
            next = j.array_step().or_syntax()?;
        }
        match &mut self.levels[depth] {
            Level::List(known @ None) => *known = Some(length),
            Level::List(Some(known)) if *known != length => return Err(ragged(depth)),
            _ => {}
        }
        Ok(())
    }

    /// The shape of each value read: the length of each level of lists.
    pub(crate) fn shape(&self) -> Vec<u64> {
        self.levels
            .iter()
            .map_while(|level| match level {
                Level::List(length) => Some(length.unwrap_or(0)),
                Level::Leaf => None,
            })
            .collect()
    }
}

fn ragged(depth: usize) -> ReadError {
    if depth == 0 {
        // Only a second value read by the same `Discover` can differ at its top.
        bad!("it differs in shape from the instances before it")
    } else {
        bad!("it is ragged: its lists at depth {depth} differ in length or nesting")
    }
}

/// Reads OIP's `data` for a tensor of `shape`: a flat list of every element in row-major
/// order, or lists nested exactly as the shape says. Anything else (a row of the wrong
/// length, lists nested deeper or shallower than the shape, lists mixed with values) is
/// an error naming where, even when the element count happens to match.
///
/// `body_len` bounds what is reserved up front: a client may declare a shape of billions
/// of elements and send three, and a JSON element takes at least two bytes.
pub(crate) fn read_shaped(
    j: &mut Jiter,
    shape: &[u64],
    datatype: Datatype,
    b64: bool,
    body_len: usize,
) -> Result<Data, ReadError> {
    let count = element_count(shape).ok_or_else(|| bad!("its shape overflows"))?;
    let peek = j.peek().or_syntax()?;
    if peek != Peek::Array {
        let text = value_text(j, peek)?;
        return Err(bad!("'data' must be a list, not {text}"));
    }
    let room = count.min(body_len as u64 / 2 + 1) as usize;
    let mut data = Data::with_capacity(datatype, room);
    let first = j.known_array().or_syntax()?;
    match first {
        None => {}
        Some(Peek::Array) => {
            let mut path = Vec::with_capacity(shape.len());
            nested(j, Peek::Array, shape, &mut path, &mut data, b64, true)?;
        }
        Some(peek) => {
            let mut next = Some(peek);
            while let Some(peek) = next {
                if peek == Peek::Array {
                    return Err(bad!(
                        "'data' mixes lists and values; give it flat or nested as the shape"
                    ));
                }
                read_leaf(j, peek, &mut data, b64)?;
                next = j.array_step().or_syntax()?;
            }
        }
    }
    if data.len() as u64 != count {
        return Err(bad!(
            "its shape {shape:?} holds {count} elements, but {} were given",
            data.len()
        ));
    }
    Ok(data)
}

/// Reads the list whose first element (`first`) the parser is at, at `path` (its
/// position in the enclosing lists), checking it against `shape[path.len()]`. `started`:
/// the outermost list's `[` is already consumed.
fn nested(
    j: &mut Jiter,
    first: Peek,
    shape: &[u64],
    path: &mut Vec<usize>,
    data: &mut Data,
    b64: bool,
    started: bool,
) -> Result<(), ReadError> {
    let depth = path.len();
    let at = |path: &[usize]| {
        if path.is_empty() {
            "'data'".to_owned()
        } else {
            let index: String = path.iter().map(|i| format!("[{i}]")).collect();
            format!("data{index}")
        }
    };
    let Some(&want) = shape.get(depth) else {
        return Err(bad!(
            "{} is a list, but shape {shape:?} has only {} dimensions",
            at(path),
            shape.len()
        ));
    };
    let mut next = if started {
        Some(first)
    } else {
        j.known_array().or_syntax()?
    };
    let leaves = depth + 1 == shape.len();
    let mut length = 0u64;
    while let Some(peek) = next {
        if length == want {
            return Err(bad!(
                "{} holds more than {want} elements, but shape {shape:?} says {want}",
                at(path)
            ));
        }
        match (leaves, peek == Peek::Array) {
            (true, false) => read_leaf(j, peek, data, b64)?,
            (false, true) => {
                path.push(length as usize);
                nested(j, peek, shape, path, data, b64, false)?;
                path.pop();
            }
            (true, true) => {
                return Err(bad!(
                    "{}[{length}] is a list, but shape {shape:?} has only {} dimensions",
                    at(path),
                    shape.len()
                ));
            }
            (false, false) => {
                return Err(bad!(
                    "{}[{length}] is a value, but shape {shape:?} says a list of {}",
                    at(path),
                    shape[depth + 1]
                ));
            }
        }
        length += 1;
        next = j.array_step().or_syntax()?;
    }
    if length != want {
        return Err(bad!(
            "{} holds {length} elements, but shape {shape:?} says {want}",
            at(path)
        ));
    }
    Ok(())
}

/// How a response writes what JSON cannot hold as such.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Style {
    /// `NaN`, `Infinity` and `-Infinity` as TF Serving writes them, or refused.
    pub nonfinite_tokens: bool,
    /// BYTES elements as `{"b64": ...}` always (TF Serving's `_bytes` outputs), or as text
    /// when they are UTF-8 (and otherwise `{"b64": ...}` when `b64_fallback`, else refused).
    pub bytes_b64: bool,
    pub b64_fallback: bool,
}

/// An element a [`Style`] cannot write.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Unwritable {
    NonFinite { index: usize, value: f64 },
    NotText { index: usize },
}

impl std::fmt::Display for Unwritable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unwritable::NonFinite { index, value } => {
                write!(f, "element {index} is {value}, which JSON cannot hold")
            }
            Unwritable::NotText { index } => {
                write!(
                    f,
                    "element {index} is not UTF-8 text, which JSON cannot hold"
                )
            }
        }
    }
}

/// A response body being written.
pub(crate) struct Out {
    pub buf: Vec<u8>,
    float: zmij::Buffer,
    int: itoa::Buffer,
}

impl Out {
    pub(crate) fn with_capacity(capacity: usize) -> Out {
        Out {
            buf: Vec::with_capacity(capacity),
            float: zmij::Buffer::new(),
            int: itoa::Buffer::new(),
        }
    }

    pub(crate) fn raw(&mut self, text: &str) {
        self.buf.extend_from_slice(text.as_bytes());
    }

    /// A JSON string.
    pub(crate) fn string(&mut self, text: &str) {
        serde_json::to_writer(&mut self.buf, text).expect("writing to a vector cannot fail");
    }

    /// `"key":`
    pub(crate) fn key(&mut self, key: &str) {
        self.string(key);
        self.buf.push(b':');
    }

    pub(crate) fn uint(&mut self, n: u64) {
        let text = self.int.format(n);
        self.buf.extend_from_slice(text.as_bytes());
    }

    /// A shape, `[2,30]`.
    pub(crate) fn shape(&mut self, shape: &[u64]) {
        self.buf.push(b'[');
        for (i, &d) in shape.iter().enumerate() {
            if i > 0 {
                self.buf.push(b',');
            }
            self.uint(d);
        }
        self.buf.push(b']');
    }

    fn float(
        &mut self,
        value: f64,
        single: Option<f32>,
        index: usize,
        style: Style,
    ) -> Result<(), Unwritable> {
        if !value.is_finite() {
            if !style.nonfinite_tokens {
                return Err(Unwritable::NonFinite { index, value });
            }
            self.raw(if value.is_nan() {
                "NaN"
            } else if value > 0.0 {
                "Infinity"
            } else {
                "-Infinity"
            });
            return Ok(());
        }
        let text = match single {
            Some(f) => self.float.format_finite(f),
            None => self.float.format_finite(value),
        };
        self.buf.extend_from_slice(text.as_bytes());
        Ok(())
    }

    /// Element `i` of `data`.
    pub(crate) fn element(
        &mut self,
        data: &Data,
        i: usize,
        style: Style,
    ) -> Result<(), Unwritable> {
        match data {
            Data::Bool(v) => self.raw(if v[i] { "true" } else { "false" }),
            Data::Int32(v) => {
                let text = self.int.format(v[i]);
                self.buf.extend_from_slice(text.as_bytes());
            }
            Data::Int64(v) => {
                let text = self.int.format(v[i]);
                self.buf.extend_from_slice(text.as_bytes());
            }
            Data::Fp32(v) => self.float(f64::from(v[i]), Some(v[i]), i, style)?,
            Data::Fp64(v) => self.float(v[i], None, i, style)?,
            Data::Bytes(v) => {
                let bytes = &v[i];
                let text = if style.bytes_b64 {
                    None
                } else {
                    std::str::from_utf8(bytes).ok()
                };
                match text {
                    Some(text) => self.string(text),
                    None if style.bytes_b64 || style.b64_fallback => {
                        self.raw("{\"b64\":\"");
                        self.raw(&BASE64.encode(bytes));
                        self.raw("\"}");
                    }
                    None => return Err(Unwritable::NotText { index: i }),
                }
            }
        }
        Ok(())
    }

    /// Elements `range` of `data` as one flat list.
    pub(crate) fn flat(
        &mut self,
        data: &Data,
        range: std::ops::Range<usize>,
        style: Style,
    ) -> Result<(), Unwritable> {
        self.buf.push(b'[');
        let start = range.start;
        for i in range {
            if i > start {
                self.buf.push(b',');
            }
            self.element(data, i, style)?;
        }
        self.buf.push(b']');
        Ok(())
    }

    /// The elements from `offset` on as lists nested by `shape` (a bare element for an
    /// empty shape); returns the offset after them. The caller has checked that the data
    /// holds what the shape says.
    pub(crate) fn nested(
        &mut self,
        data: &Data,
        shape: &[u64],
        offset: usize,
        style: Style,
    ) -> Result<usize, Unwritable> {
        match shape {
            [] => {
                self.element(data, offset, style)?;
                Ok(offset + 1)
            }
            [n] => {
                let end = offset + *n as usize;
                self.flat(data, offset..end, style)?;
                Ok(end)
            }
            [n, inner @ ..] => {
                self.buf.push(b'[');
                let mut at = offset;
                for i in 0..*n {
                    if i > 0 {
                        self.buf.push(b',');
                    }
                    at = self.nested(data, inner, at, style)?;
                }
                self.buf.push(b']');
                Ok(at)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(e: ReadError) -> String {
        match e {
            ReadError::Syntax(m) | ReadError::Value(m) => m,
        }
    }

    fn shaped(json: &str, shape: &[u64], datatype: Datatype) -> Result<Data, String> {
        let mut j = parser(json.as_bytes());
        read_shaped(&mut j, shape, datatype, false, json.len()).map_err(text)
    }

    fn discover(json: &str, datatype: Datatype) -> Result<(Vec<u64>, Data), String> {
        let mut j = parser(json.as_bytes());
        let mut d = Discover::default();
        let mut data = Data::with_capacity(datatype, 0);
        let peek = j.peek().unwrap();
        d.read(&mut j, peek, &mut data, true).map_err(text)?;
        Ok((d.shape(), data))
    }

    #[test]
    fn flat_or_nested_exactly_as_the_shape() {
        let want = Data::Fp64(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!(
            shaped("[1,2,3,4,5,6]", &[2, 3], Datatype::Fp64).unwrap(),
            want
        );
        assert_eq!(
            shaped("[[1,2,3],[4,5,6]]", &[2, 3], Datatype::Fp64).unwrap(),
            want
        );
        // Six elements, but rows of 4 and 2: the count matches, the nesting does not.
        assert_eq!(
            shaped("[[1,2,3,4],[5,6]]", &[2, 3], Datatype::Fp64).unwrap_err(),
            "data[0] holds more than 3 elements, but shape [2, 3] says 3"
        );
        assert_eq!(
            shaped("[[1,2],[3,4,5,6]]", &[2, 3], Datatype::Fp64).unwrap_err(),
            "data[0] holds 2 elements, but shape [2, 3] says 3"
        );
        assert_eq!(
            shaped("[[1,2,3],[4,5,6]]", &[6], Datatype::Fp64).unwrap_err(),
            "'data'[0] is a list, but shape [6] has only 1 dimensions"
        );
        assert_eq!(
            shaped("[[1,2,3],4]", &[2, 3], Datatype::Fp64).unwrap_err(),
            "'data'[1] is a value, but shape [2, 3] says a list of 3"
        );
        assert_eq!(
            shaped("[1,[2,3]]", &[2, 3], Datatype::Fp64).unwrap_err(),
            "'data' mixes lists and values; give it flat or nested as the shape"
        );
        assert_eq!(
            shaped("[1,2,3]", &[2, 2], Datatype::Int64).unwrap_err(),
            "its shape [2, 2] holds 4 elements, but 3 were given"
        );
        assert_eq!(
            shaped("[]", &[0, 30], Datatype::Fp64).unwrap(),
            Data::Fp64(vec![])
        );
        assert_eq!(
            shaped("[[],[]]", &[2, 0], Datatype::Fp64).unwrap(),
            Data::Fp64(vec![])
        );
        assert_eq!(
            shaped("[7]", &[], Datatype::Int32).unwrap(),
            Data::Int32(vec![7])
        );
        assert_eq!(
            shaped("3", &[1], Datatype::Int32).unwrap_err(),
            "'data' must be a list, not 3"
        );
    }

    #[test]
    fn a_declared_shape_reserves_nothing_by_itself() {
        // A shape of 2^40 elements with two given must fail on the count, not allocate.
        let err = shaped("[1,2]", &[1 << 20, 1 << 20], Datatype::Fp64).unwrap_err();
        assert!(err.contains("holds 1099511627776 elements, but 2"), "{err}");
    }

    #[test]
    fn leaves_are_typed_as_they_are_read() {
        assert_eq!(
            shaped("[NaN, Infinity, -Infinity, 1e308]", &[4], Datatype::Fp64)
                .map(|d| format!("{d:?}"))
                .unwrap(),
            "Fp64([NaN, inf, -inf, 1e308])"
        );
        assert_eq!(
            shaped("[1e300]", &[1], Datatype::Fp32).unwrap_err(),
            "element 0 is 1e300, beyond the range of FP32"
        );
        assert_eq!(
            shaped("[1, \"a\"]", &[2], Datatype::Fp64).unwrap_err(),
            "element 1 is \"a\", not FP64"
        );
        assert_eq!(
            shaped("[1.5]", &[1], Datatype::Int64).unwrap_err(),
            "element 0 is not a whole number that fits INT64"
        );
        assert_eq!(
            shaped("[3000000000]", &[1], Datatype::Int32).unwrap_err(),
            "element 0 is not a whole number that fits INT32"
        );
        assert_eq!(
            shaped("[99999999999999999999999]", &[1], Datatype::Int64).unwrap_err(),
            "element 0 is not a whole number that fits INT64"
        );
        assert_eq!(
            shaped("[-9223372036854775808]", &[1], Datatype::Int64).unwrap(),
            Data::Int64(vec![i64::MIN])
        );
        assert_eq!(
            shaped("[true, 1]", &[2], Datatype::Bool).unwrap_err(),
            "element 1 is 1, not BOOL"
        );
        assert_eq!(
            shaped(r#"["M", "caf\u00e9", "a\"b"]"#, &[3], Datatype::Bytes).unwrap(),
            Data::Bytes(vec![
                b"M".to_vec(),
                "café".as_bytes().to_vec(),
                b"a\"b".to_vec()
            ])
        );
        assert!(
            shaped("[1, 2", &[2], Datatype::Fp64)
                .unwrap_err()
                .starts_with("the request body is not valid JSON")
        );
    }

    #[test]
    fn b64_values_are_bytes_where_allowed() {
        let mut j = parser(br#"[{"b64": "/+4="}, {"b64": "aGk"}, "plain"]"#);
        let data = read_shaped(&mut j, &[3], Datatype::Bytes, true, 100).unwrap();
        assert_eq!(
            data,
            Data::Bytes(vec![vec![0xff, 0xee], b"hi".to_vec(), b"plain".to_vec()])
        );
        let mut j = parser(br#"[{"b64": "aGk"}]"#);
        assert!(read_shaped(&mut j, &[1], Datatype::Bytes, false, 100).is_err());
        let mut j = parser(br#"[{"b64": "!!"}]"#);
        assert!(
            text(read_shaped(&mut j, &[1], Datatype::Bytes, true, 100).unwrap_err())
                .contains("no valid base64")
        );
        let mut j = parser(br#"[{"b64": "aGk", "x": 1}]"#);
        assert_eq!(
            text(read_shaped(&mut j, &[1], Datatype::Bytes, true, 100).unwrap_err()),
            r#"element 0 is {"b64": "aGk", "x": 1}, not BYTES"#
        );
    }

    #[test]
    fn shapes_are_discovered_and_must_be_rectangular() {
        let (shape, data) = discover("[[1,2,3],[4,5,6]]", Datatype::Int64).unwrap();
        assert_eq!(shape, [2, 3]);
        assert_eq!(data, Data::Int64(vec![1, 2, 3, 4, 5, 6]));
        assert_eq!(discover("5", Datatype::Int64).unwrap().0, Vec::<u64>::new());
        assert_eq!(discover("[]", Datatype::Int64).unwrap().0, [0]);
        assert_eq!(discover("[[],[]]", Datatype::Int64).unwrap().0, [2, 0]);
        for ragged in [
            "[[1,2],[3]]",
            "[[1,2],3]",
            "[1,[2]]",
            "[[[1]],[2]]",
            "[[],[1]]",
        ] {
            let err = discover(ragged, Datatype::Int64).unwrap_err();
            assert!(err.starts_with("it is ragged"), "{ragged}: {err}");
        }
        let deep = format!("{}1{}", "[".repeat(40), "]".repeat(40));
        assert_eq!(
            discover(&deep, Datatype::Int64).unwrap_err(),
            "it is nested more than 32 levels deep"
        );
        // Rows read one after another must agree.
        let mut j = parser(b"[[1,2],[3,4,5]]");
        let mut d = Discover::default();
        let mut data = Data::with_capacity(Datatype::Fp64, 0);
        let mut next = j.next_array().unwrap();
        let mut errors = Vec::new();
        while let Some(peek) = next {
            if let Err(e) = d.read(&mut j, peek, &mut data, false) {
                errors.push(text(e));
                break;
            }
            next = j.array_step().unwrap();
        }
        assert_eq!(errors, ["it differs in shape from the instances before it"]);
    }

    #[test]
    fn answers_are_written_as_the_style_says() {
        let tfs = Style {
            nonfinite_tokens: true,
            bytes_b64: false,
            b64_fallback: true,
        };
        let oip = Style {
            nonfinite_tokens: false,
            bytes_b64: false,
            b64_fallback: false,
        };
        let floats = Data::Fp64(vec![0.25, f64::NAN, f64::INFINITY, f64::NEG_INFINITY]);
        let mut out = Out::with_capacity(0);
        out.flat(&floats, 0..4, tfs).unwrap();
        assert_eq!(out.buf, b"[0.25,NaN,Infinity,-Infinity]");
        let mut out = Out::with_capacity(0);
        assert_eq!(
            out.flat(&floats, 0..4, oip).unwrap_err().to_string(),
            "element 1 is NaN, which JSON cannot hold"
        );
        let singles = Data::Fp32(vec![0.1, 1.0]);
        let mut out = Out::with_capacity(0);
        out.flat(&singles, 0..2, oip).unwrap();
        let text = String::from_utf8(out.buf).unwrap();
        let back: Vec<f32> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, [0.1, 1.0]);
        assert!(text.starts_with("[0.1,"), "{text}");
        let bytes = Data::Bytes(vec![b"M".to_vec(), vec![0xff, 0xfe]]);
        let mut out = Out::with_capacity(0);
        out.flat(&bytes, 0..2, tfs).unwrap();
        assert_eq!(out.buf, br#"["M",{"b64":"//4="}]"#);
        let mut out = Out::with_capacity(0);
        out.flat(
            &bytes,
            0..2,
            Style {
                bytes_b64: true,
                ..tfs
            },
        )
        .unwrap();
        assert_eq!(out.buf, br#"[{"b64":"TQ=="},{"b64":"//4="}]"#);
        assert_eq!(
            Out::with_capacity(0).flat(&bytes, 0..2, oip).unwrap_err(),
            Unwritable::NotText { index: 1 }
        );
        let ints = Data::Int64(vec![1, 2, 3, 4, 5, 6]);
        let mut out = Out::with_capacity(0);
        assert_eq!(out.nested(&ints, &[2, 3], 0, oip).unwrap(), 6);
        assert_eq!(out.buf, b"[[1,2,3],[4,5,6]]");
        let mut out = Out::with_capacity(0);
        out.nested(&ints, &[], 4, oip).unwrap();
        assert_eq!(out.buf, b"5");
    }
}
