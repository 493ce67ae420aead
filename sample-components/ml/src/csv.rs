//! CSV tables as the sample steps read them: UTF-8 text, a header row of unique column
//! names, then rows of comma-separated fields, with `\n` or `\r\n` line ends. Quoting is not
//! supported: a `"` anywhere is an error, as is a row whose field count differs from the
//! header's.
//!
//! Rows are numbered as a user sees them in an editor: the header is row 1, the first data
//! row is row 2. Reading borrows the caller's buffer, checks it is UTF-8 once, and hands out
//! field slices into it, so no field is ever copied into a `String`. This module does no IO
//! and knows nothing of schemas or column types beyond parsing and writing one number.

use std::fmt;

use thiserror::Error;

/// A malformed table: the encoding, the header, the row structure or a quote.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CsvError {
    #[error("the table is empty, expected a header row")]
    Empty,
    #[error("row {row}, column {column}: the text is not valid UTF-8")]
    NotUtf8 { row: usize, column: ColumnRef },
    #[error("row 1, column {column}: empty column name")]
    EmptyColumnName { column: usize },
    #[error("row 1, column {column}: duplicate column name '{name}'")]
    DuplicateColumn { column: usize, name: String },
    #[error("row {row}, column {column}: quoted fields are not supported")]
    Quote { row: usize, column: ColumnRef },
    #[error("row {row}, column {column}: missing field (the row has {found} of {expected} fields)")]
    TooFewFields {
        row: usize,
        column: ColumnRef,
        found: usize,
        expected: usize,
    },
    #[error(
        "row {row}, column {column}: unexpected field (the row has {found} fields, the header has {expected})"
    )]
    TooManyFields {
        row: usize,
        column: ColumnRef,
        found: usize,
        expected: usize,
    },
    #[error("row {row} is blank")]
    BlankRow { row: usize },
}

/// Names a column in an error: by header name when it has one, else by 1-based position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnRef {
    Named(String),
    Position(usize),
}

impl fmt::Display for ColumnRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ColumnRef::Named(name) => write!(f, "'{name}'"),
            ColumnRef::Position(position) => write!(f, "{position}"),
        }
    }
}

/// A field whose content is wrong for its column, e.g.
/// `row 17, column 'mean_radius': expected a number, found 'abc'`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("row {row}, column '{column}': {problem}")]
pub struct CellError {
    pub row: usize,
    pub column: String,
    pub problem: String,
}

/// A parsed header over a borrowed buffer; the rows are read on demand with [`Csv::rows`].
#[derive(Debug, Clone)]
pub struct Csv<'a> {
    header_line: &'a str,
    columns: Vec<&'a str>,
    body: &'a str,
}

impl<'a> Csv<'a> {
    /// Checks the encoding of the whole table and reads the header; rows are checked as
    /// they are read.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, CsvError> {
        let text = std::str::from_utf8(bytes).map_err(|err| not_utf8(bytes, err.valid_up_to()))?;
        let (header_line, body) = split_line(text);
        if header_line.is_empty() {
            return Err(CsvError::Empty);
        }
        let columns = header(header_line)?;
        Ok(Csv {
            header_line,
            columns,
            body,
        })
    }

    /// Column names in file order.
    pub fn columns(&self) -> &[&'a str] {
        &self.columns
    }

    /// Number of columns.
    pub fn width(&self) -> usize {
        self.columns.len()
    }

    /// The header row exactly as it appears in the file, without its line end.
    pub fn header_line(&self) -> &'a str {
        self.header_line
    }

    /// 0-based position of a column.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|column| *column == name)
    }

    /// A reader over the data rows.
    pub fn rows(&self) -> Rows<'_, 'a> {
        Rows {
            columns: &self.columns,
            rest: self.body,
            next_row: 2,
            fields: Vec::with_capacity(self.columns.len()),
        }
    }

    /// Counts the data rows, checking each.
    pub fn count_rows(&self) -> Result<usize, CsvError> {
        let mut rows = self.rows();
        let mut count = 0;
        while let Some(row) = rows.next_row() {
            row?;
            count += 1;
        }
        Ok(count)
    }
}

/// Splits and checks the header row.
fn header(line: &str) -> Result<Vec<&str>, CsvError> {
    let columns: Vec<&str> = line.split(',').collect();
    for (index, name) in columns.iter().enumerate() {
        if name.contains('"') {
            return Err(CsvError::Quote {
                row: 1,
                column: ColumnRef::Position(index + 1),
            });
        }
        if name.is_empty() {
            return Err(CsvError::EmptyColumnName { column: index + 1 });
        }
        if columns[..index].contains(name) {
            return Err(CsvError::DuplicateColumn {
                column: index + 1,
                name: (*name).to_owned(),
            });
        }
    }
    Ok(columns)
}

/// Where the first invalid byte, at `offset`, sits: its row, and its column, named when the
/// header before it is readable.
fn not_utf8(bytes: &[u8], offset: usize) -> CsvError {
    let before = &bytes[..offset];
    let row = 1 + before.iter().filter(|&&byte| byte == b'\n').count();
    let line_start = before
        .iter()
        .rposition(|&byte| byte == b'\n')
        .map_or(0, |newline| newline + 1);
    let position = before[line_start..]
        .iter()
        .filter(|&&byte| byte == b',')
        .count();
    let named = (row > 1)
        .then(|| {
            let end = bytes.iter().position(|&byte| byte == b'\n')?;
            let line = std::str::from_utf8(&bytes[..end]).ok()?;
            let line = line.strip_suffix('\r').unwrap_or(line);
            line.split(',').nth(position).map(str::to_owned)
        })
        .flatten();
    CsvError::NotUtf8 {
        row,
        column: match named {
            Some(name) => ColumnRef::Named(name),
            None => ColumnRef::Position(position + 1),
        },
    }
}

/// Bytes that end a field or need attention while splitting a row.
const SPECIAL: [bool; 256] = {
    let mut table = [false; 256];
    table[b',' as usize] = true;
    table[b'\n' as usize] = true;
    table[b'"' as usize] = true;
    table
};

/// Reads rows one at a time into a reused field buffer (a lending iterator).
#[derive(Debug)]
pub struct Rows<'c, 'a> {
    columns: &'c [&'a str],
    rest: &'a str,
    next_row: usize,
    fields: Vec<&'a str>,
}

impl<'c, 'a> Rows<'c, 'a> {
    /// The next data row, `None` at the end. A malformed row yields its error and reading
    /// can go on with the row after it. Blank lines at the very end of the table are ignored.
    pub fn next_row(&mut self) -> Option<Result<Row<'_, 'a>, CsvError>> {
        if self.rest.is_empty() {
            return None;
        }
        let text = self.rest;
        let bytes = text.as_bytes();
        let number = self.next_row;
        self.next_row += 1;
        self.fields.clear();

        // One pass over the row: split at commas, stop at the line end, note any quote.
        let mut start = 0;
        let mut end = bytes.len();
        let mut quote = None;
        for (index, &byte) in bytes.iter().enumerate() {
            if !SPECIAL[byte as usize] {
                continue;
            }
            match byte {
                b',' => {
                    self.fields.push(&text[start..index]);
                    start = index + 1;
                }
                b'\n' => {
                    end = index;
                    break;
                }
                _ => {
                    quote.get_or_insert(self.fields.len());
                }
            }
        }
        let last = &text[start..end];
        self.fields.push(last.strip_suffix('\r').unwrap_or(last));
        let line = &text[..end];
        let line = line.strip_suffix('\r').unwrap_or(line);
        self.rest = text.get(end + 1..).unwrap_or("");

        if line.is_empty() {
            if self.rest.bytes().all(|byte| matches!(byte, b'\n' | b'\r')) {
                self.rest = "";
                return None;
            }
            return Some(Err(CsvError::BlankRow { row: number }));
        }
        if let Some(position) = quote {
            return Some(Err(CsvError::Quote {
                row: number,
                column: match self.columns.get(position) {
                    Some(name) => ColumnRef::Named((*name).to_owned()),
                    None => ColumnRef::Position(position + 1),
                },
            }));
        }
        let found = self.fields.len();
        let expected = self.columns.len();
        if found < expected {
            return Some(Err(CsvError::TooFewFields {
                row: number,
                column: ColumnRef::Named(self.columns[found].to_owned()),
                found,
                expected,
            }));
        }
        if found > expected {
            return Some(Err(CsvError::TooManyFields {
                row: number,
                column: ColumnRef::Position(expected + 1),
                found,
                expected,
            }));
        }
        Some(Ok(Row {
            number,
            line,
            columns: self.columns,
            fields: &self.fields,
        }))
    }
}

/// One well-formed data row: exactly one field per header column.
#[derive(Debug, Clone, Copy)]
pub struct Row<'r, 'a> {
    /// The row number as an editor shows it (the header is row 1).
    pub number: usize,
    /// The row exactly as in the file, without its line end.
    pub line: &'a str,
    columns: &'r [&'a str],
    /// The fields, one per column.
    pub fields: &'r [&'a str],
}

impl Row<'_, '_> {
    /// An error about the field in column `column` (0-based).
    pub fn error(&self, column: usize, problem: impl Into<String>) -> CellError {
        CellError {
            row: self.number,
            column: self.columns[column].to_owned(),
            problem: problem.into(),
        }
    }

    /// The field in column `column` (0-based) as a finite number.
    pub fn number(&self, column: usize) -> Result<f64, CellError> {
        let field = self.fields[column];
        parse_number(field).ok_or_else(|| {
            self.error(
                column,
                format!("expected a number, found {}", quote_field(field)),
            )
        })
    }
}

/// Parses a finite decimal number (`12`, `-0.5`, `1e-3`); `None` for anything else,
/// including `nan`, `inf` and surrounding spaces.
pub fn parse_number(field: &str) -> Option<f64> {
    let value: f64 = field.parse().ok()?;
    value.is_finite().then_some(value)
}

/// Shows a field in an error message: quoted, and shortened past 40 characters.
pub fn quote_field(field: &str) -> String {
    const LIMIT: usize = 40;
    if field.chars().count() > LIMIT {
        let short: String = field.chars().take(LIMIT).collect();
        format!("'{short}...'")
    } else {
        format!("'{field}'")
    }
}

/// Appends the shortest text that reads back as exactly `value` (which must be finite).
pub fn push_number(out: &mut Vec<u8>, value: f64) {
    let mut buffer = zmij::Buffer::new();
    out.extend_from_slice(buffer.format_finite(value).as_bytes());
}

/// Splits off the first line, dropping its `\n` or `\r\n`.
fn split_line(text: &str) -> (&str, &str) {
    let (line, rest) = text.split_once('\n').unwrap_or((text, ""));
    (line.strip_suffix('\r').unwrap_or(line), rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(text: &str) -> Result<Vec<(usize, Vec<String>)>, CsvError> {
        let csv = Csv::parse(text.as_bytes())?;
        let mut rows = csv.rows();
        let mut out = Vec::new();
        while let Some(row) = rows.next_row() {
            let row = row?;
            let fields = row.fields.iter().map(|field| (*field).to_owned()).collect();
            out.push((row.number, fields));
        }
        Ok(out)
    }

    #[test]
    fn reads_header_and_rows_numbered_as_in_an_editor() {
        let csv = Csv::parse(b"a,b,label\n1,2,x\n3,,y\n").unwrap();
        assert_eq!(csv.columns(), ["a", "b", "label"]);
        assert_eq!(csv.position("label"), Some(2));
        assert_eq!(csv.position("c"), None);
        assert_eq!(csv.header_line(), "a,b,label");
        assert_eq!(
            collect("a,b,label\n1,2,x\n3,,y\n").unwrap(),
            vec![
                (2, vec!["1".into(), "2".into(), "x".into()]),
                (3, vec!["3".into(), "".into(), "y".into()]),
            ]
        );
    }

    #[test]
    fn accepts_crlf_and_a_missing_final_newline() {
        let rows = collect("a,b\r\n1,2\r\n3,4").unwrap();
        assert_eq!(rows[0].1, ["1", "2"]);
        assert_eq!(rows[1].1, ["3", "4"]);
        assert_eq!(rows.len(), 2);
    }

    #[test]
    fn ignores_blank_lines_at_the_end_only() {
        assert_eq!(collect("a\n1\n\n\r\n").unwrap().len(), 1);
        assert_eq!(
            collect("a\n1\n\n2\n").unwrap_err(),
            CsvError::BlankRow { row: 3 }
        );
    }

    #[test]
    fn rejects_quotes_naming_row_and_column() {
        let err = collect("a,b\n1,2\n3,\"4\"\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "row 3, column 'b': quoted fields are not supported"
        );
        let err = Csv::parse(b"a,\"b\"\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "row 1, column 2: quoted fields are not supported"
        );
    }

    #[test]
    fn rejects_ragged_rows_naming_row_and_column() {
        let err = collect("a,b,c\n1,2,3\n1,2\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "row 3, column 'c': missing field (the row has 2 of 3 fields)"
        );
        let err = collect("a,b\n1,2,3\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "row 2, column 3: unexpected field (the row has 3 fields, the header has 2)"
        );
    }

    #[test]
    fn reading_goes_on_after_a_bad_row() {
        let csv = Csv::parse(b"a,b\n1\n2,3\n").unwrap();
        let mut rows = csv.rows();
        assert!(rows.next_row().unwrap().is_err());
        let row = rows.next_row().unwrap().unwrap();
        assert_eq!(row.number, 3);
        assert_eq!(row.line, "2,3");
        assert!(rows.next_row().is_none());

        let csv = Csv::parse(b"a,b\n1,\"2\"\n3,4\n").unwrap();
        let mut rows = csv.rows();
        assert!(rows.next_row().unwrap().is_err());
        assert_eq!(rows.next_row().unwrap().unwrap().fields, ["3", "4"]);
    }

    #[test]
    fn names_the_row_and_column_of_bytes_that_are_not_utf8() {
        assert_eq!(
            Csv::parse(b"a,b\n1,2\n3,\xff\n").unwrap_err().to_string(),
            "row 3, column 'b': the text is not valid UTF-8"
        );
    }

    #[test]
    fn rejects_bad_headers() {
        assert_eq!(Csv::parse(b"").unwrap_err(), CsvError::Empty);
        assert_eq!(Csv::parse(b"\n1\n").unwrap_err(), CsvError::Empty);
        assert_eq!(
            Csv::parse(b"a,,b\n").unwrap_err().to_string(),
            "row 1, column 2: empty column name"
        );
        assert_eq!(
            Csv::parse(b"a,b,a\n").unwrap_err().to_string(),
            "row 1, column 3: duplicate column name 'a'"
        );
        assert_eq!(
            Csv::parse(b"a,\xff\n").unwrap_err().to_string(),
            "row 1, column 2: the text is not valid UTF-8"
        );
    }

    #[test]
    fn header_only_table_has_no_rows() {
        let csv = Csv::parse(b"a,b\n").unwrap();
        assert_eq!(csv.count_rows().unwrap(), 0);
        let csv = Csv::parse(b"a,b").unwrap();
        assert_eq!(csv.count_rows().unwrap(), 0);
    }

    #[test]
    fn numbers_are_finite_and_strict() {
        assert_eq!(parse_number("12"), Some(12.0));
        assert_eq!(parse_number("-0.5"), Some(-0.5));
        assert_eq!(parse_number("1e-3"), Some(0.001));
        assert_eq!(parse_number("0.07871"), Some(0.07871));
        for bad in ["", "abc", " 1", "1 ", "nan", "inf", "1,5", "1e999"] {
            assert_eq!(parse_number(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn cell_errors_read_as_one_line() {
        let csv = Csv::parse(b"mean_radius,label\nabc,x\n").unwrap();
        let mut rows = csv.rows();
        let row = rows.next_row().unwrap().unwrap();
        assert_eq!(
            row.number(0).unwrap_err().to_string(),
            "row 2, column 'mean_radius': expected a number, found 'abc'"
        );
    }

    #[test]
    fn long_fields_are_shortened_in_messages() {
        let long = "x".repeat(100);
        let shown = quote_field(&long);
        assert_eq!(shown, format!("'{}...'", "x".repeat(40)));
    }

    #[test]
    fn numbers_are_written_shortest_and_read_back_exactly() {
        for value in [0.1, -1.5, 1e-7, 123456.789, 1.0 / 3.0, 0.0] {
            let mut out = Vec::new();
            push_number(&mut out, value);
            assert_eq!(
                parse_number(std::str::from_utf8(&out).unwrap()),
                Some(value)
            );
        }
        let mut out = Vec::new();
        push_number(&mut out, 0.1);
        assert_eq!(out, b"0.1");
    }
}
