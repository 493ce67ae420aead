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
    Text(TextColumn),
}

/// Text values stored end to end, as the `tables` interface (and Arrow) lays them out:
/// value `i` is `data[offsets[i]..offsets[i + 1]]`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TextColumn {
    data: String,
    offsets: Vec<u32>,
}

/// A CSV text that is not a table, or a table whose parts do not fit together. Rows are
/// numbered as an editor numbers lines (the header is row 1); columns from 1.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("text offsets do not fit the text")]
    BadOffsets,
    #[error("the table is empty, expected a header row")]
    Empty,
    #[error("row 1, column {column}: empty column name")]
    EmptyHeader { column: usize },
    #[error("row 1, column {column}: duplicate column name '{name}'")]
    DuplicateHeader { column: usize, name: String },
    #[error("row {row}: {found} fields, the header has {width}")]
    Width {
        row: u64,
        found: usize,
        width: usize,
    },
    #[error("row {row}: the text is not valid UTF-8")]
    NotUtf8 { row: u64 },
    #[error("a column holds more than 4 GiB of text")]
    TooMuchText,
    #[error("cannot read the CSV")]
    Csv(#[source] csv::Error),
    #[error("column {column} has an empty name")]
    Unnamed { column: usize },
    #[error("column name '{name}' appears twice")]
    Twice { name: String },
    #[error("column '{name}' has {values} values, the table has {rows} rows")]
    Length {
        name: String,
        values: usize,
        rows: u64,
    },
}

impl TextColumn {
    /// Checks that the offsets start at 0, ascend, end at the data's length and fall on
    /// character boundaries.
    pub fn new(data: String, offsets: Vec<u32>) -> Result<TextColumn, TableError> {
        let fits = offsets.first() == Some(&0)
            && offsets.last().map(|&o| o as usize) == Some(data.len())
            && offsets.windows(2).all(|w| w[0] <= w[1])
            && offsets.iter().all(|&o| data.is_char_boundary(o as usize));
        if !fits {
            return Err(TableError::BadOffsets);
        }
        Ok(TextColumn { data, offsets })
    }

    pub fn from_values<S: AsRef<str>>(values: &[S]) -> TextColumn {
        let mut column = TextColumn::default_empty();
        for v in values {
            column.push(v.as_ref());
        }
        column
    }

    fn with_capacity(bytes: usize, values: usize) -> TextColumn {
        let mut offsets = Vec::with_capacity(values + 1);
        offsets.push(0);
        TextColumn {
            data: String::with_capacity(bytes),
            offsets,
        }
    }

    fn default_empty() -> TextColumn {
        TextColumn {
            data: String::new(),
            offsets: vec![0],
        }
    }

    fn push(&mut self, value: &str) {
        self.data.push_str(value);
        self.offsets.push(self.data.len() as u32);
    }

    /// Adds another column's values after this one's.
    fn append(&mut self, other: TextColumn) {
        let base = self.data.len() as u32;
        self.data.push_str(&other.data);
        self.offsets
            .extend(other.offsets[1..].iter().map(|&o| o.wrapping_add(base)));
    }

    pub fn len(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, i: usize) -> &str {
        &self.data[self.offsets[i] as usize..self.offsets[i + 1] as usize]
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        self.offsets
            .windows(2)
            .map(|w| &self.data[w[0] as usize..w[1] as usize])
    }

    pub fn into_parts(self) -> (String, Vec<u32>) {
        (self.data, self.offsets)
    }
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

    /// A column read from CSV text: integers or floats when every field is one written
    /// canonically (so that writing it back gives the same text), else the text itself.
    fn typed(text: TextColumn) -> ColumnData {
        if text.is_empty() {
            return ColumnData::Text(text);
        }
        if let Some(v) = text
            .iter()
            .map(canonical_integer)
            .collect::<Option<Vec<i64>>>()
        {
            return ColumnData::Int64(v);
        }
        let mut format = zmij::Buffer::new();
        if let Some(v) = text
            .iter()
            .map(|f| canonical_float(f, &mut format))
            .collect::<Option<Vec<f64>>>()
        {
            return ColumnData::Float64(v);
        }
        ColumnData::Text(text)
    }
}

/// A field that is an integer written the way Rust writes it (`-12`, never `+12` or `012`).
fn canonical_integer(field: &str) -> Option<i64> {
    let first = *field.as_bytes().first()?;
    if !(first == b'-' || first.is_ascii_digit()) {
        return None;
    }
    let value: i64 = field.parse().ok()?;
    let digits = field.strip_prefix('-').unwrap_or(field);
    let plain = digits.len() == 1 || !digits.starts_with('0');
    (plain && field != "-0").then_some(value)
}

/// A field that is a finite float written as its shortest round-trip form (`1.5`, `2.0`,
/// `1e-7`).
fn canonical_float(field: &str, format: &mut zmij::Buffer) -> Option<f64> {
    let first = *field.as_bytes().first()?;
    if !(first == b'-' || first.is_ascii_digit()) {
        return None;
    }
    let value: f64 = field.parse().ok()?;
    if !value.is_finite() {
        return None;
    }
    (fixed_and_shortest(field) || format.format_finite(value) == field).then_some(value)
}

/// Whether a decimal in fixed notation is, without formatting its value, already the
/// shortest round-trip form: `-?(0|[1-9][0-9]*)\.[0-9]+` with no trailing zero in the
/// fraction (but `.0`), at most 15 significant digits (so no shorter decimal reads back as
/// the same float), and a magnitude from 1e-5 up to 1e16, where that form is written in
/// fixed notation rather than with an exponent. Anything else is checked by formatting.
fn fixed_and_shortest(field: &str) -> bool {
    let digits = field.strip_prefix('-').unwrap_or(field);
    let Some((whole, fraction)) = digits.split_once('.') else {
        return false;
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(whole) || !all_digits(fraction) {
        return false;
    }
    if whole.len() > 1 && whole.starts_with('0') || whole.len() > 16 {
        return false;
    }
    if fraction != "0" && fraction.ends_with('0') {
        return false;
    }
    if whole == "0" {
        if fraction == "0" {
            return true;
        }
        // 0.00001 is the smallest written without an exponent.
        let zeros = fraction.len() - fraction.trim_start_matches('0').len();
        if zeros > 4 {
            return false;
        }
    }
    let joined = whole.trim_start_matches('0').len() + fraction.len();
    let significant = if fraction == "0" {
        whole.trim_end_matches('0').len()
    } else {
        joined
            - (fraction.len() - fraction.trim_start_matches('0').len()).min(if whole == "0" {
                fraction.len()
            } else {
                0
            })
    };
    significant <= 15
}

/// How many threads convert and format columns and rows.
fn workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Runs `f` on every item, spread over up to `workers()` threads, keeping the order.
fn in_parallel<T: Send, R: Send>(items: Vec<T>, f: impl Fn(T) -> R + Sync) -> Vec<R> {
    let threads = workers().min(items.len()).max(1);
    if threads == 1 {
        return items.into_iter().map(f).collect();
    }
    let mut buckets: Vec<Vec<(usize, T)>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, item) in items.into_iter().enumerate() {
        buckets[i % threads].push((i, item));
    }
    let f = &f;
    let mut done: Vec<(usize, R)> = std::thread::scope(|scope| {
        let handles: Vec<_> = buckets
            .into_iter()
            .map(|bucket| {
                scope.spawn(move || {
                    bucket
                        .into_iter()
                        .map(|(i, item)| (i, f(item)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

impl Table {
    /// Reads a CSV table with a header row (RFC 4180 quoting, `\n` or `\r\n` line ends).
    /// Errors name the row as an editor numbers it (the header is row 1).
    pub fn from_csv(bytes: &[u8]) -> Result<Table, TableError> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(false)
            .from_reader(bytes);
        let header = reader
            .headers()
            .map_err(csv_error)?
            .iter()
            .map(str::to_owned)
            .collect::<Vec<String>>();
        if header.is_empty() || (header.len() == 1 && header[0].is_empty()) {
            return Err(TableError::Empty);
        }
        for (i, name) in header.iter().enumerate() {
            if name.is_empty() {
                return Err(TableError::EmptyHeader { column: i + 1 });
            }
            if header[..i].contains(name) {
                return Err(TableError::DuplicateHeader {
                    column: i + 1,
                    name: name.clone(),
                });
            }
        }
        // First every field as text, end to end per column (in blocks of lines read on
        // every core, when no field is quoted and so every line end ends a row); then each
        // column typed, the columns spread over the cores.
        let body = &bytes[reader.position().byte() as usize..];
        let width = header.len();
        let mut texts: Vec<TextColumn> = (0..width).map(|_| TextColumn::default_empty()).collect();
        let mut rows = 0;
        let blocks = line_blocks(body);

        for block in in_parallel(blocks, |(line, text)| read_block(text, width, line)) {
            let (block_rows, block_texts) = block?;
            if rows == 0 {
                texts = block_texts;
            } else {
                for (column, part) in texts.iter_mut().zip(block_texts) {
                    column.append(part);
                }
            }
            rows += block_rows;
            if texts.iter().any(|t| t.data.len() > u32::MAX as usize) {
                return Err(TableError::TooMuchText);
            }
        }
        let data = in_parallel(texts, ColumnData::typed);
        Ok(Table {
            rows,
            columns: header
                .into_iter()
                .zip(data)
                .map(|(name, data)| Column { name, data })
                .collect(),
        })
    }

    /// Writes the table as CSV: a header row, `\n` line ends, numbers in their shortest
    /// round-trip form, and fields quoted only where they must be. Rows are formatted in
    /// blocks spread over the cores.
    pub fn to_csv(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let names: Vec<&str> = self.columns.iter().map(|c| c.name.as_str()).collect();
        push_row(&mut out, names.iter().copied());
        let rows = self.rows as usize;
        let block = rows.div_ceil(workers().max(1)).max(1);
        let blocks: Vec<(usize, usize)> = (0..rows)
            .step_by(block)
            .map(|start| (start, (start + block).min(rows)))
            .collect();
        for part in in_parallel(blocks, |(start, end)| self.format_rows(start, end)) {
            out.extend_from_slice(&part);
        }
        out
    }

    fn format_rows(&self, start: usize, end: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity((end - start) * self.columns.len() * 8);
        let mut format = zmij::Buffer::new();
        for row in start..end {
            for (i, column) in self.columns.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                match &column.data {
                    ColumnData::Float64(v) => {
                        out.extend_from_slice(format.format_finite(v[row]).as_bytes())
                    }
                    ColumnData::Int64(v) => out.extend_from_slice(v[row].to_string().as_bytes()),
                    ColumnData::Boolean(v) => {
                        out.extend_from_slice(if v[row] { b"true" } else { b"false" })
                    }
                    ColumnData::Text(v) => push_field(&mut out, v.get(row)),
                }
            }
            out.push(b'\n');
        }
        out
    }

    /// Checks that every column has one value per row and a unique, non-empty name.
    pub fn check(&self) -> Result<(), TableError> {
        for (i, column) in self.columns.iter().enumerate() {
            if column.name.is_empty() {
                return Err(TableError::Unnamed { column: i + 1 });
            }
            if self.columns[..i].iter().any(|c| c.name == column.name) {
                return Err(TableError::Twice {
                    name: column.name.clone(),
                });
            }
            if column.data.len() as u64 != self.rows {
                return Err(TableError::Length {
                    name: column.name.clone(),
                    values: column.data.len(),
                    rows: self.rows,
                });
            }
        }
        Ok(())
    }

    /// The `sha256-table:` digest of the table's content, and the size in bytes of the
    /// values it covers: a hash over the row count and, per column, its name, type and the
    /// sha256 of its values in a fixed binary layout (columns hashed on every core). Equal
    /// tables have equal digests; it is not the digest of the table's CSV text, and its
    /// algorithm is its own, so no file (whose digest is `sha256:` of its bytes, and which
    /// may hold exactly that layout) can be taken for a table the store never held.
    pub fn digest(&self) -> (String, u64) {
        let columns: Vec<&Column> = self.columns.iter().collect();
        let hashed = in_parallel(columns, |column| {
            let mut hasher = Sha256::new();
            let mut size = 0u64;
            let mut feed = |bytes: &[u8]| {
                hasher.update(bytes);
                size += bytes.len() as u64;
            };
            let tag: u8 = match &column.data {
                ColumnData::Float64(v) => {
                    for chunk in v.chunks(4096) {
                        let bytes: Vec<u8> = chunk
                            .iter()
                            .flat_map(|x| x.to_bits().to_le_bytes())
                            .collect();
                        feed(&bytes);
                    }
                    1
                }
                ColumnData::Int64(v) => {
                    for chunk in v.chunks(4096) {
                        let bytes: Vec<u8> = chunk.iter().flat_map(|x| x.to_le_bytes()).collect();
                        feed(&bytes);
                    }
                    2
                }
                ColumnData::Boolean(v) => {
                    let bytes: Vec<u8> = v.iter().map(|&b| u8::from(b)).collect();
                    feed(&bytes);
                    3
                }
                ColumnData::Text(v) => {
                    for chunk in v.offsets.chunks(4096) {
                        let bytes: Vec<u8> = chunk.iter().flat_map(|x| x.to_le_bytes()).collect();
                        feed(&bytes);
                    }
                    feed(v.data.as_bytes());
                    4
                }
            };
            (tag, hasher.finalize(), size)
        });
        let mut hasher = Sha256::new();
        hasher.update(b"sluice-table-1\0");
        hasher.update(self.rows.to_le_bytes());
        hasher.update((self.columns.len() as u64).to_le_bytes());
        let mut size = 0;
        for (column, (tag, hash, bytes)) in self.columns.iter().zip(hashed) {
            hasher.update((column.name.len() as u64).to_le_bytes());
            hasher.update(column.name.as_bytes());
            hasher.update([tag]);
            hasher.update(hash);
            size += bytes;
        }
        (
            format!("sha256-table:{}", hex::encode(hasher.finalize())),
            size,
        )
    }
}

/// The body of a CSV file cut into blocks of whole lines, one per core, each with the
/// number (as an editor shows it) of its first line; one block when a quote could hide a
/// line end inside a field.
fn line_blocks(body: &[u8]) -> Vec<(u64, &[u8])> {
    const SMALL: usize = 1 << 20;
    let parts = workers();
    if parts == 1 || body.len() < SMALL || body.contains(&b'"') {
        return vec![(2, body)];
    }
    let mut blocks = Vec::with_capacity(parts);
    let (mut start, mut line) = (0, 2u64);
    for i in 1..=parts {
        let end = if i == parts {
            body.len()
        } else {
            let guess = (body.len() * i / parts).max(start);
            match body[guess..].iter().position(|&b| b == b'\n') {
                Some(at) => guess + at + 1,
                None => body.len(),
            }
        };
        if end > start {
            blocks.push((line, &body[start..end]));
            line += body[start..end].iter().filter(|&&b| b == b'\n').count() as u64;
            start = end;
        }
    }
    blocks
}

/// Reads a block of rows into one text column per header column. A block without quotes
/// is split at commas and line ends directly; one with quotes goes through the `csv` crate.
fn read_block(
    block: &[u8],
    width: usize,
    first_line: u64,
) -> Result<(u64, Vec<TextColumn>), TableError> {
    if !block.contains(&b'"') {
        return split_block(block, width, first_line);
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(block);
    let mut texts: Vec<TextColumn> = (0..width).map(|_| TextColumn::default_empty()).collect();
    let mut record = csv::StringRecord::new();
    let mut rows = 0;
    loop {
        match reader.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                return Err(match e.kind() {
                    csv::ErrorKind::Utf8 { pos, .. } => TableError::NotUtf8 {
                        row: first_line + pos.as_ref().map_or(0, |p| p.line()) - 1,
                    },
                    _ => TableError::Csv(e),
                });
            }
        }
        if record.len() != width {
            let line = first_line + record.position().map_or(0, |p| p.line()) - 1;
            return Err(TableError::Width {
                row: line,
                found: record.len(),
                width,
            });
        }
        for (column, field) in texts.iter_mut().zip(record.iter()) {
            column.push(field);
        }
        rows += 1;
    }
    Ok((rows, texts))
}

/// Reads an unquoted block: every line end ends a row, every comma a field.
fn split_block(
    block: &[u8],
    width: usize,
    first_line: u64,
) -> Result<(u64, Vec<TextColumn>), TableError> {
    let text = std::str::from_utf8(block).map_err(|e| {
        let line = first_line
            + block[..e.valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count() as u64;
        TableError::NotUtf8 { row: line }
    })?;
    // Room for the block, guessed from its first line, so the columns grow at most once.
    let line_length = text.find('\n').map_or(text.len(), |n| n + 1).max(1);
    let guess_rows = text.len() / line_length + 16;
    let mut texts: Vec<TextColumn> = (0..width)
        .map(|_| TextColumn::with_capacity(text.len() / width + 64, guess_rows))
        .collect();
    let mut rows = 0;
    for (i, line) in text.split_terminator('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            // Blank lines are no rows, as the `csv` crate reads them.
            continue;
        }
        let mut found = 0;
        for field in line.split(',') {
            if let Some(column) = texts.get_mut(found) {
                column.push(field);
            }
            found += 1;
        }
        if found != width {
            return Err(TableError::Width {
                row: first_line + i as u64,
                found,
                width,
            });
        }
        rows += 1;
    }
    Ok((rows, texts))
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

fn csv_error(e: csv::Error) -> TableError {
    match e.kind() {
        csv::ErrorKind::UnequalLengths {
            pos,
            expected_len,
            len,
        } => TableError::Width {
            row: pos.as_ref().map_or(0, |p| p.line()),
            found: *len as usize,
            width: *expected_len as usize,
        },
        csv::ErrorKind::Utf8 { pos, .. } => TableError::NotUtf8 {
            row: pos.as_ref().map_or(0, |p| p.line()),
        },
        _ => TableError::Csv(e),
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
        assert_eq!(
            table.columns[1].data,
            ColumnData::Text(TextColumn::from_values(&["M", "x,y"]))
        );
        assert_eq!(table.columns[2].data, ColumnData::Float64(vec![2.0, 1e-7]));
        // "0.10" is not the shortest form of 0.1, so the column stays text.
        assert_eq!(
            table.columns[3].data,
            ColumnData::Text(TextColumn::from_values(&["0.10", "7"]))
        );
        assert_eq!(table.columns[4].data, ColumnData::Int64(vec![7, -12]));
        let mixed = Table::from_csv(b"x\n1\n2.5\n007\n").unwrap();
        assert_eq!(
            mixed.columns[0].data,
            ColumnData::Text(TextColumn::from_values(&["1", "2.5", "007"]))
        );
        assert_eq!(String::from_utf8(table.to_csv()).unwrap(), text);
    }

    #[test]
    fn text_offsets_are_checked() {
        assert!(TextColumn::new("héllo".into(), vec![0, 2, 6]).is_err());
        assert!(TextColumn::new("ab".into(), vec![0, 2, 1]).is_err());
        let t = TextColumn::new("héllo".into(), vec![0, 3, 6]).unwrap();
        assert_eq!(t.iter().collect::<Vec<_>>(), ["hé", "llo"]);
    }

    #[test]
    fn bad_tables_are_one_line() {
        assert_eq!(
            Table::from_csv(b"a,a\n1,2\n").unwrap_err().to_string(),
            "row 1, column 2: duplicate column name 'a'"
        );
        assert_eq!(
            Table::from_csv(b"a,b\n1,2\n3\n").unwrap_err().to_string(),
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
        assert!(
            a.digest().0.starts_with("sha256-table:"),
            "{}",
            a.digest().0
        );
        let mut d = a.clone();
        d.rows = 3;
        assert!(d.check().is_err());
        assert!(a.check().is_ok());
    }
}
#[cfg(test)]
mod shortest {
    use super::fixed_and_shortest;

    /// Every field the shortcut accepts formats back to itself.
    #[test]
    fn the_shortcut_agrees_with_formatting() {
        let mut format = zmij::Buffer::new();
        let mut state: u64 = 7;
        let mut next = || {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        let mut accepted = 0;
        for _ in 0..200_000 {
            let whole_digits = (next() % 18) as usize;
            let fraction_digits = 1 + (next() % 18) as usize;
            let digit = |n: u64| char::from(b'0' + (n % 10) as u8);
            let mut text = String::new();
            if next() % 4 == 0 {
                text.push('-');
            }
            if whole_digits == 0 {
                text.push('0');
            }
            for _ in 0..whole_digits {
                text.push(digit(next()));
            }
            text.push('.');
            let zeros = (next() % 8) as usize;
            for i in 0..fraction_digits {
                text.push(if i < zeros { '0' } else { digit(next()) });
            }
            if fixed_and_shortest(&text) {
                accepted += 1;
                let value: f64 = text.parse().unwrap();
                assert_eq!(format.format_finite(value), text);
            }
        }
        assert!(accepted > 10_000, "{accepted}");
        for edge in [
            "0.0",
            "-0.0",
            "0.00001",
            "1.0",
            "100000000000000.0",
            "123.5",
        ] {
            assert!(fixed_and_shortest(edge), "{edge}");
        }
        for edge in [
            "0.000001",
            "1.50",
            "01.5",
            "1e5",
            "1",
            ".5",
            "1.",
            "0.30000000000000004",
        ] {
            assert!(!fixed_and_shortest(edge), "{edge}");
        }
    }
}
