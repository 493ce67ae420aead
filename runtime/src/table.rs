//! Tables as fused transform chains hold them: named, typed columns in memory. A table
//! enters a chain from a CSV file ([`Table::from_csv`]), passes from one transform to the
//! next by value, and leaves as a CSV file ([`Table::to_csv`]). The CSV reading keeps
//! every file byte for byte: a column is `Float64` only when each of its fields is a
//! finite number written in its shortest round-trip form (the form the sample steps
//! write), so writing the table back gives the same text; any other column is `Text`.
//! A table kept only in memory is recorded under [`Table::digest`].

use std::sync::Arc;

use sha2::{Digest, Sha256};

#[derive(Clone, Debug, PartialEq)]
pub enum ColumnData {
    Float64(Vec<f64>),
    Int64(Vec<i64>),
    Boolean(Vec<bool>),
    Text(Vec<String>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    pub name: String,
    pub data: ColumnData,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    pub rows: u64,
    pub columns: Vec<Column>,
}

/// A shared table, as the scheduler hands it from one task to the next.
pub type SharedTable = Arc<Table>;

impl ColumnData {
    pub fn len(&self) -> usize {
        match self {
            ColumnData::Float64(v) => v.len(),
            ColumnData::Int64(v) => v.len(),
            ColumnData::Boolean(v) => v.len(),
            ColumnData::Text(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How a column is being read: as integers or as floats while every field is one written
/// canonically (so that writing it back gives the same text), else as text.
enum Reading {
    Start,
    Integers(Vec<i64>),
    Floats(Vec<f64>),
    Text(Vec<String>),
}

impl Reading {
    fn push(&mut self, field: &str, format: &mut zmij::Buffer) {
        match self {
            Reading::Start => {
                *self = if let Some(i) = canonical_integer(field) {
                    Reading::Integers(vec![i])
                } else if let Some(x) = canonical_float(field, format) {
                    Reading::Floats(vec![x])
                } else {
                    Reading::Text(vec![field.to_owned()])
                }
            }
            Reading::Integers(values) => match canonical_integer(field) {
                Some(value) => values.push(value),
                None => {
                    let mut texts: Vec<String> = values.iter().map(i64::to_string).collect();
                    texts.push(field.to_owned());
                    *self = Reading::Text(texts);
                }
            },
            Reading::Floats(values) => match canonical_float(field, format) {
                Some(value) => values.push(value),
                None => {
                    let mut texts: Vec<String> = values
                        .iter()
                        .map(|v| format.format_finite(*v).to_owned())
                        .collect();
                    texts.push(field.to_owned());
                    *self = Reading::Text(texts);
                }
            },
            Reading::Text(texts) => texts.push(field.to_owned()),
        }
    }

    fn finish(self) -> ColumnData {
        match self {
            Reading::Start => ColumnData::Text(Vec::new()),
            Reading::Integers(v) => ColumnData::Int64(v),
            Reading::Floats(v) => ColumnData::Float64(v),
            Reading::Text(v) => ColumnData::Text(v),
        }
    }
}

/// A field that is an integer written the way Rust writes it (`-12`, never `+12` or `012`).
fn canonical_integer(field: &str) -> Option<i64> {
    let value: i64 = field.parse().ok()?;
    let plain = !field.starts_with('+')
        && (field.len() == 1 || !field.trim_start_matches('-').starts_with('0'));
    (plain && field != "-0").then_some(value)
}

/// A field that is a finite float written as its shortest round-trip form (`1.5`, `2.0`,
/// `1e-7`).
fn canonical_float(field: &str, format: &mut zmij::Buffer) -> Option<f64> {
    let value: f64 = field.parse().ok()?;
    (value.is_finite() && format.format_finite(value) == field).then_some(value)
}

impl Table {
    /// Reads a CSV table with a header row (RFC 4180 quoting, `\n` or `\r\n` line ends).
    /// Errors name the row as an editor numbers it (the header is row 1).
    pub fn from_csv(bytes: &[u8]) -> Result<Table, String> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(false)
            .from_reader(bytes);
        let header = reader
            .headers()
            .map_err(|e| csv_error(&e))?
            .iter()
            .map(str::to_owned)
            .collect::<Vec<String>>();
        if header.is_empty() || (header.len() == 1 && header[0].is_empty()) {
            return Err("the table is empty, expected a header row".into());
        }
        for (i, name) in header.iter().enumerate() {
            if name.is_empty() {
                return Err(format!("row 1, column {}: empty column name", i + 1));
            }
            if header[..i].contains(name) {
                return Err(format!(
                    "row 1, column {}: duplicate column name '{name}'",
                    i + 1
                ));
            }
        }
        let mut columns: Vec<Reading> = header.iter().map(|_| Reading::Start).collect();
        let mut format = zmij::Buffer::new();
        let mut record = csv::StringRecord::new();
        let mut rows = 0;
        while reader.read_record(&mut record).map_err(|e| csv_error(&e))? {
            for (column, field) in columns.iter_mut().zip(record.iter()) {
                column.push(field, &mut format);
            }
            rows += 1;
        }
        Ok(Table {
            rows,
            columns: header
                .into_iter()
                .zip(columns)
                .map(|(name, reading)| Column {
                    name,
                    data: reading.finish(),
                })
                .collect(),
        })
    }

    /// Writes the table as CSV: a header row, `\n` line ends, numbers in their shortest
    /// round-trip form, and fields quoted only where they must be.
    pub fn to_csv(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.rows as usize * self.columns.len() * 8 + 64);
        let names: Vec<&str> = self.columns.iter().map(|c| c.name.as_str()).collect();
        push_row(&mut out, names.iter().copied());
        let mut format = zmij::Buffer::new();
        let mut integer = itoa_buffer();
        for row in 0..self.rows as usize {
            for (i, column) in self.columns.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                match &column.data {
                    ColumnData::Float64(v) => {
                        out.extend_from_slice(format.format_finite(v[row]).as_bytes())
                    }
                    ColumnData::Int64(v) => {
                        integer.clear();
                        use std::fmt::Write;
                        let _ = write!(integer, "{}", v[row]);
                        out.extend_from_slice(integer.as_bytes());
                    }
                    ColumnData::Boolean(v) => {
                        out.extend_from_slice(if v[row] { b"true" } else { b"false" })
                    }
                    ColumnData::Text(v) => push_field(&mut out, &v[row]),
                }
            }
            out.push(b'\n');
        }
        out
    }

    /// Checks that every column has one value per row and a unique, non-empty name.
    pub fn check(&self) -> Result<(), String> {
        for (i, column) in self.columns.iter().enumerate() {
            if column.name.is_empty() {
                return Err(format!("column {} has an empty name", i + 1));
            }
            if self.columns[..i].iter().any(|c| c.name == column.name) {
                return Err(format!("column name '{}' appears twice", column.name));
            }
            if column.data.len() as u64 != self.rows {
                return Err(format!(
                    "column '{}' has {} values, the table has {} rows",
                    column.name,
                    column.data.len(),
                    self.rows
                ));
            }
        }
        Ok(())
    }

    /// The `sha256:` digest of the table's content (names, types and values, in a fixed
    /// binary layout), and that layout's size in bytes. Equal tables have equal digests;
    /// it is not the digest of the table's CSV text.
    pub fn digest(&self) -> (String, u64) {
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut feed = |bytes: &[u8]| {
            hasher.update(bytes);
            size += bytes.len() as u64;
        };
        feed(b"sluice-table-1\0");
        feed(&self.rows.to_le_bytes());
        feed(&(self.columns.len() as u64).to_le_bytes());
        let mut chunk: Vec<u8> = Vec::with_capacity(1 << 16);
        for column in &self.columns {
            feed(&(column.name.len() as u64).to_le_bytes());
            feed(column.name.as_bytes());
            let tag: u8 = match &column.data {
                ColumnData::Float64(_) => 1,
                ColumnData::Int64(_) => 2,
                ColumnData::Boolean(_) => 3,
                ColumnData::Text(_) => 4,
            };
            feed(&[tag]);
            let mut flush = |chunk: &mut Vec<u8>, force: bool| {
                if force || chunk.len() >= (1 << 16) - 16 {
                    feed(chunk);
                    chunk.clear();
                }
            };
            match &column.data {
                ColumnData::Float64(v) => {
                    for x in v {
                        chunk.extend_from_slice(&x.to_bits().to_le_bytes());
                        flush(&mut chunk, false);
                    }
                }
                ColumnData::Int64(v) => {
                    for x in v {
                        chunk.extend_from_slice(&x.to_le_bytes());
                        flush(&mut chunk, false);
                    }
                }
                ColumnData::Boolean(v) => {
                    for x in v {
                        chunk.push(u8::from(*x));
                        flush(&mut chunk, false);
                    }
                }
                ColumnData::Text(v) => {
                    for x in v {
                        chunk.extend_from_slice(&(x.len() as u64).to_le_bytes());
                        chunk.extend_from_slice(x.as_bytes());
                        flush(&mut chunk, false);
                    }
                }
            }
            flush(&mut chunk, true);
        }
        (format!("sha256:{}", hex::encode(hasher.finalize())), size)
    }
}

fn itoa_buffer() -> String {
    String::with_capacity(24)
}

fn push_row<'a>(out: &mut Vec<u8>, fields: impl Iterator<Item = &'a str>) {
    for (i, field) in fields.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_field(out, field);
    }
    out.push(b'\n');
}

/// A field as RFC 4180 writes it: quoted (with quotes doubled) only when it holds a
/// comma, a quote or a line end.
fn push_field(out: &mut Vec<u8>, field: &str) {
    if field
        .bytes()
        .any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r'))
    {
        out.push(b'"');
        for b in field.bytes() {
            if b == b'"' {
                out.push(b'"');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(field.as_bytes());
    }
}

fn csv_error(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::UnequalLengths {
            pos,
            expected_len,
            len,
        } => format!(
            "row {}: {len} fields, the header has {expected_len}",
            pos.as_ref().map_or(0, |p| p.line())
        ),
        csv::ErrorKind::Utf8 { pos, .. } => format!(
            "row {}: the text is not valid UTF-8",
            pos.as_ref().map_or(0, |p| p.line())
        ),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_reads_back_byte_for_byte() {
        let text = "a,label,b,c,n\n1.5,M,2.0,0.10,7\n-3.0,\"x,y\",1e-7,7,-12\n";
        let table = Table::from_csv(text.as_bytes()).unwrap();
        assert_eq!(table.rows, 2);
        assert_eq!(table.columns[0].data, ColumnData::Float64(vec![1.5, -3.0]));
        assert!(matches!(table.columns[1].data, ColumnData::Text(_)));
        assert_eq!(table.columns[2].data, ColumnData::Float64(vec![2.0, 1e-7]));
        // "0.10" is not the shortest form of 0.1, so the column stays text.
        assert_eq!(
            table.columns[3].data,
            ColumnData::Text(vec!["0.10".into(), "7".into()])
        );
        assert_eq!(table.columns[4].data, ColumnData::Int64(vec![7, -12]));
        let mixed = Table::from_csv(b"x\n1\n2.5\n007\n").unwrap();
        assert_eq!(
            mixed.columns[0].data,
            ColumnData::Text(vec!["1".into(), "2.5".into(), "007".into()])
        );
        assert_eq!(String::from_utf8(table.to_csv()).unwrap(), text);
    }

    #[test]
    fn bad_tables_are_one_line() {
        assert_eq!(
            Table::from_csv(b"a,a\n1,2\n").unwrap_err(),
            "row 1, column 2: duplicate column name 'a'"
        );
        assert_eq!(
            Table::from_csv(b"a,b\n1,2\n3\n").unwrap_err(),
            "row 3: 1 fields, the header has 2"
        );
        assert!(Table::from_csv(b"").is_err());
    }

    #[test]
    fn digests_follow_content() {
        let a = Table::from_csv(b"x,y\n1,a\n2,b\n").unwrap();
        let b = Table::from_csv(b"x,y\n1,a\n2,b\n").unwrap();
        let c = Table::from_csv(b"x,y\n1,a\n2,c\n").unwrap();
        assert_eq!(a.digest(), b.digest());
        assert_ne!(a.digest().0, c.digest().0);
        let mut d = a.clone();
        d.rows = 3;
        assert!(d.check().is_err());
        assert!(a.check().is_ok());
    }
}
