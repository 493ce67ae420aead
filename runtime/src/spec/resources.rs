//! Resource requests and the quantities they are written in: memory as Kubernetes
//! quantities (`512Mi`, `2G`), CPU as cores or millicores (`2`, `500m`), durations as
//! human-readable spans (`90s`, `5m`, `250ms`). Parsing only; executors enforce.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What a task or component asks of the machine. Every field is optional; a task's
/// request overrides its component's field by field.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping of memory, cpu, cpu_time, accelerator, ephemeral_storage or open_files"
)]
pub struct ResourceSpec {
    /// Memory cap. For wasm, the sum of all of the instance's linear memories.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<ByteSize>,
    /// CPU limit for containers, in cores (`2`, `0.5`, `500m`). Wasm steps are single-threaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Cpu>,
    /// CPU time a wasm step may use per attempt before it is stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_time: Option<HumanDuration>,
    /// Accelerators (GPU/TPU); only container steps can have them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accelerator: Option<Accelerator>,
    /// Bytes an attempt may write to its outputs and scratch space, as Kubernetes'
    /// `ephemeral-storage`. Wasm steps are held to it as they write; container and
    /// process steps have their outputs measured while they run and when they end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ephemeral_storage: Option<ByteSize>,
    /// Files, folders, streams and other handles a wasm step may hold open at once: at
    /// least 1 (a step with none could not write its output).
    #[serde(
        default,
        deserialize_with = "open_files",
        skip_serializing_if = "Option::is_none"
    )]
    pub open_files: Option<u32>,
}

impl ResourceSpec {
    /// `self`, with every field `self` leaves unset taken from `base`.
    pub fn or(&self, base: &ResourceSpec) -> ResourceSpec {
        ResourceSpec {
            memory: self.memory.or(base.memory),
            cpu: self.cpu.or(base.cpu),
            cpu_time: self.cpu_time.or(base.cpu_time),
            accelerator: self
                .accelerator
                .clone()
                .or_else(|| base.accelerator.clone()),
            ephemeral_storage: self.ephemeral_storage.or(base.ephemeral_storage),
            open_files: self.open_files.or(base.open_files),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping of an accelerator's type (nvidia.com/gpu, ...) and count"
)]
pub struct Accelerator {
    /// For example `nvidia.com/gpu` or `tpu`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default = "one")]
    pub count: u32,
}

fn one() -> u32 {
    1
}

/// A number of bytes, written as a Kubernetes quantity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

/// A quantity that is not one: what was expected, and the text found.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("expected a memory quantity such as 512Mi or 2G, found '{0}'")]
    Memory(String),
    #[error("expected CPU cores such as 2, 0.5 or 500m, found '{0}'")]
    Cpu(String),
    #[error("expected a duration such as 30s, 5m or 250ms, found '{0}'")]
    Duration(String),
    #[error("expected a number of open files from 1 to 4294967295, found '{0}'")]
    OpenFiles(String),
}

/// Parses a count of open files (handles): a whole number from 1 to `u32::MAX`.
pub fn parse_open_files(text: &str) -> Result<u32, QuantityError> {
    match text.trim().parse::<u32>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(QuantityError::OpenFiles(text.to_owned())),
    }
}

fn open_files<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    scalar(
        d,
        "a number of open files from 1 to 4294967295",
        parse_open_files,
    )
    .map(Some)
}

impl ByteSize {
    pub const MIB: u64 = 1 << 20;

    /// Parses a Kubernetes memory quantity: bytes with an optional decimal (`k`, `M`, `G`,
    /// `T`) or binary (`Ki`, `Mi`, `Gi`, `Ti`) suffix, at least one byte.
    pub fn parse(text: &str) -> Result<ByteSize, QuantityError> {
        let t = text.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (number, suffix) = t.split_at(split);
        let factor: u64 = match suffix {
            "" => 1,
            "k" | "K" => 1_000,
            "M" => 1_000_000,
            "G" => 1_000_000_000,
            "T" => 1_000_000_000_000,
            "Ki" => 1 << 10,
            "Mi" => 1 << 20,
            "Gi" => 1 << 30,
            "Ti" => 1 << 40,
            _ => return Err(quantity_error(text)),
        };
        let value: f64 = number.parse().map_err(|_| quantity_error(text))?;
        let bytes = value * factor as f64;
        if !(bytes.is_finite() && bytes >= 1.0 && bytes < u64::MAX as f64) {
            return Err(quantity_error(text));
        }
        Ok(ByteSize(bytes.round() as u64))
    }
}

fn quantity_error(text: &str) -> QuantityError {
    QuantityError::Memory(text.to_owned())
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        for (unit, size) in [("Gi", 1u64 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)] {
            if b >= size && b.is_multiple_of(size) {
                return write!(f, "{}{unit}", b / size);
            }
        }
        if b >= 1 << 20 {
            write!(f, "{:.1}Mi", b as f64 / (1u64 << 20) as f64)
        } else {
            write!(f, "{b}")
        }
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        scalar(d, "a memory quantity such as 512Mi or 2G", ByteSize::parse)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// CPU in thousandths of a core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cpu {
    pub millicores: u64,
}

impl Cpu {
    /// Parses a Kubernetes CPU quantity: cores (`2`, `0.5`) or millicores (`500m`), more
    /// than zero.
    pub fn parse(text: &str) -> Result<Cpu, QuantityError> {
        let t = text.trim();
        let err = || QuantityError::Cpu(text.to_owned());
        let millicores = if let Some(m) = t.strip_suffix('m') {
            m.parse::<u64>().map_err(|_| err())?
        } else {
            let cores: f64 = t.parse().map_err(|_| err())?;
            let millicores = (cores * 1000.0).round();
            // Past what a u64 holds would be clamped to its end, not the CPU asked for.
            if !(millicores.is_finite() && millicores > 0.0 && millicores < u64::MAX as f64) {
                return Err(err());
            }
            millicores as u64
        };
        if millicores == 0 {
            return Err(err());
        }
        Ok(Cpu { millicores })
    }
}

impl fmt::Display for Cpu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.millicores.is_multiple_of(1000) {
            write!(f, "{}", self.millicores / 1000)
        } else {
            write!(f, "{}m", self.millicores)
        }
    }
}

impl<'de> Deserialize<'de> for Cpu {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        scalar(d, "CPU cores such as 2, 0.5 or 500m", Cpu::parse)
    }
}

impl Serialize for Cpu {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A duration written like `90s`, `5m`, `1h 30m` or `250ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// Parses a duration as `humantime` reads one (`90s`, `1h 30m`, `250ms`).
    pub fn parse(text: &str) -> Result<HumanDuration, QuantityError> {
        let d = humantime::parse_duration(text.trim())
            .map_err(|_| QuantityError::Duration(text.to_owned()))?;
        Ok(HumanDuration(d))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        scalar(
            d,
            "a duration such as 30s, 5m or 250ms",
            HumanDuration::parse,
        )
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Reads a YAML string or number with `parse`; anything else is an error saying what was
/// `expected` (`a duration such as 30s, 5m or 250ms`) and what was found. The text is
/// parsed while the deserializer is on the value, so that an error carries the value's
/// field path and position, not its parent mapping's.
fn scalar<'de, D, T>(
    d: D,
    expected: &'static str,
    parse: fn(&str) -> Result<T, QuantityError>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    struct Scalar<T> {
        expected: &'static str,
        parse: fn(&str) -> Result<T, QuantityError>,
    }
    impl<T> Scalar<T> {
        fn text<E: serde::de::Error>(&self, text: &str) -> Result<T, E> {
            (self.parse)(text).map_err(E::custom)
        }
    }
    impl<T> serde::de::Visitor<'_> for Scalar<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.expected)
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<T, E> {
            self.text(v)
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<T, E> {
            self.text(&v.to_string())
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<T, E> {
            self.text(&v.to_string())
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<T, E> {
            self.text(&v.to_string())
        }
    }
    d.deserialize_any(Scalar { expected, parse })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_file_counts() {
        assert_eq!(parse_open_files("64"), Ok(64));
        assert_eq!(parse_open_files("4294967295"), Ok(u32::MAX));
        for bad in ["0", "-1", "4294967296", "1.5", "many", ""] {
            assert!(parse_open_files(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn memory_quantities() {
        assert_eq!(ByteSize::parse("512Mi").unwrap().0, 512 << 20);
        assert_eq!(ByteSize::parse("1.5Gi").unwrap().0, 3 << 29);
        assert_eq!(ByteSize::parse("2G").unwrap().0, 2_000_000_000);
        assert_eq!(ByteSize::parse("4096").unwrap().0, 4096);
        assert!(ByteSize::parse("lots").is_err());
        assert!(ByteSize::parse("12Qi").is_err());
        assert!(ByteSize::parse("0").is_err());
        assert_eq!(ByteSize(64 << 20).to_string(), "64Mi");
    }

    #[test]
    fn cpu_quantities() {
        assert_eq!(Cpu::parse("2").unwrap().millicores, 2000);
        assert_eq!(Cpu::parse("0.5").unwrap().millicores, 500);
        assert_eq!(Cpu::parse("250m").unwrap().millicores, 250);
        assert!(Cpu::parse("0").is_err());
        assert!(Cpu::parse("fast").is_err());
        assert_eq!(Cpu::parse("1500m").unwrap().to_string(), "1500m");
        // Past what a u64 of millicores holds: refused, never clamped.
        assert!(Cpu::parse("1e308").is_err());
        assert!(Cpu::parse("1e17").is_err());
        assert!(Cpu::parse("NaN").is_err());
        assert_eq!(
            Cpu::parse("1e15").unwrap().millicores,
            1_000_000_000_000_000_000
        );
    }

    #[test]
    fn durations() {
        assert_eq!(
            HumanDuration::parse("250ms").unwrap().0,
            Duration::from_millis(250)
        );
        assert_eq!(
            HumanDuration::parse("1h 30m").unwrap().0,
            Duration::from_secs(5400)
        );
        assert!(HumanDuration::parse("soon").is_err());
    }

    #[test]
    fn task_overrides_component_field_by_field() {
        let component: ResourceSpec = serde_yaml_ng::from_str("{memory: 1Gi, cpu: 2}").unwrap();
        let task: ResourceSpec = serde_yaml_ng::from_str("{memory: 64Mi}").unwrap();
        let merged = task.or(&component);
        assert_eq!(merged.memory, Some(ByteSize(64 << 20)));
        assert_eq!(merged.cpu, Some(Cpu { millicores: 2000 }));
    }

    #[test]
    fn a_quantity_that_is_not_text_or_a_number_says_what_was_expected() {
        for (yaml, expected) in [
            (
                "{memory: [1]}",
                "expected a memory quantity such as 512Mi or 2G",
            ),
            ("{cpu: {a: 1}}", "expected CPU cores such as 2, 0.5 or 500m"),
        ] {
            let e = serde_yaml_ng::from_str::<ResourceSpec>(yaml)
                .unwrap_err()
                .to_string();
            assert!(e.contains(expected), "{yaml}: {e}");
            assert!(!e.contains("untagged"), "{yaml}: {e}");
        }
        let e = serde_yaml_ng::from_str::<ResourceSpec>("[1]")
            .unwrap_err()
            .to_string();
        assert!(e.contains("expected a mapping of memory, cpu"), "{e}");
        assert!(!e.contains("struct"), "{e}");
        let e = serde_yaml_ng::from_str::<HumanDuration>("[1]")
            .unwrap_err()
            .to_string();
        assert!(e.contains("expected a duration such as 30s"), "{e}");
        // A negative number reaches the quantity's own check, which names it.
        let e = serde_yaml_ng::from_str::<ByteSize>("-1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("found '-1'"), "{e}");
    }
}
