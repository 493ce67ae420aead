//! Table schemas (a JSON document listing each column's name, type and allowed values) and
//! the validation of a CSV table against one, producing a summary report. The format is
//! described in `sample-components/README.md`. Reads only the buffers it is given.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::csv::{CellError, Csv, CsvError, parse_number, quote_field};
use crate::table::{ColumnData, Table};

/// A table schema: one entry per column the table must have, in any order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schema {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub columns: Vec<ColumnSchema>,
}

/// What one column may contain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnSchema {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ColumnType,
    /// Whether an empty field is an error; defaults to `true`.
    #[serde(default = "required_by_default")]
    pub required: bool,
    /// Inclusive lower bound (number and integer columns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Inclusive upper bound (number and integer columns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// The only values a category column may take; any non-empty text when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

fn required_by_default() -> bool {
    true
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    /// A finite decimal number.
    Number,
    /// A whole number that fits in 64 bits, written without a decimal point.
    Integer,
    /// Text naming a class.
    Category,
}

/// A schema document that cannot be used.
#[derive(Debug, Error)]
pub enum SchemaError {
    #[error("the schema is not valid JSON for a table schema")]
    Json(#[source] serde_json::Error),
    #[error("the schema lists no columns")]
    NoColumns,
    #[error("the schema lists column '{0}' twice")]
    Duplicate(String),
    #[error("the schema's column '{name}': {problem}")]
    Column { name: String, problem: String },
}

impl Schema {
    /// Parses a schema document and checks it is self-consistent.
    pub fn from_json(bytes: &[u8]) -> Result<Self, SchemaError> {
        let schema: Schema = serde_json::from_slice(bytes).map_err(SchemaError::Json)?;
        schema.check()?;
        Ok(schema)
    }

    fn check(&self) -> Result<(), SchemaError> {
        if self.columns.is_empty() {
            return Err(SchemaError::NoColumns);
        }
        for (index, column) in self.columns.iter().enumerate() {
            if self.columns[..index]
                .iter()
                .any(|earlier| earlier.name == column.name)
            {
                return Err(SchemaError::Duplicate(column.name.clone()));
            }
            column.check()?;
        }
        Ok(())
    }
}

impl ColumnSchema {
    fn check(&self) -> Result<(), SchemaError> {
        let problem = |problem: &str| SchemaError::Column {
            name: self.name.clone(),
            problem: problem.to_owned(),
        };
        if self.name.is_empty() {
            return Err(problem("the name is empty"));
        }
        match self.kind {
            ColumnType::Number | ColumnType::Integer => {
                if self.allowed.is_some() {
                    return Err(problem("'allowed' applies to category columns only"));
                }
                if let (Some(min), Some(max)) = (self.min, self.max)
                    && min > max
                {
                    return Err(problem(&format!("min {min} is greater than max {max}")));
                }
            }
            ColumnType::Category => {
                if self.min.is_some() || self.max.is_some() {
                    return Err(problem(
                        "'min' and 'max' apply to number and integer columns only",
                    ));
                }
                if let Some(allowed) = &self.allowed {
                    if allowed.is_empty() {
                        return Err(problem("'allowed' lists no values"));
                    }
                    for (index, value) in allowed.iter().enumerate() {
                        if value.is_empty() {
                            return Err(problem("'allowed' lists an empty value"));
                        }
                        if allowed[..index].contains(value) {
                            return Err(problem(&format!("'allowed' lists '{value}' twice")));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// Summary of a valid table, written as the `validate` step's report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub rows: usize,
    pub columns: usize,
    /// One entry per column, in file order.
    pub column_stats: Vec<ColumnReport>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnReport {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ColumnType,
    /// Empty fields (only possible in columns that are not required).
    pub missing: usize,
    /// Smallest value (number and integer columns with at least one value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean: Option<f64>,
    /// Rows per class (category columns), including allowed classes that never occur.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts: Option<BTreeMap<String, usize>>,
}

impl Report {
    /// Pretty JSON with shortest round-trip floats.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report always serialises") + "\n"
    }
}

/// One reason a table does not match its schema; each reads as a single line.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Problem {
    #[error("row 1: {0}")]
    Header(String),
    #[error(transparent)]
    Csv(#[from] CsvError),
    #[error(transparent)]
    Cell(#[from] CellError),
}

/// A table that does not match its schema: the first problems found, in row order.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{} problem(s) found, the first: {}", .total, .problems[0])]
pub struct Invalid {
    /// At most the requested number of problems.
    pub problems: Vec<Problem>,
    /// How many problems there are in all.
    pub total: usize,
}

/// Checks every row of `csv` against `schema`, collecting up to `max_problems` problems.
/// A header that lacks schema columns or has columns the schema does not list stops the
/// check at once, since no row can then be read.
pub fn validate(csv: &Csv, schema: &Schema, max_problems: usize) -> Result<Report, Invalid> {
    let max_problems = max_problems.max(1);
    let columns = match match_header(csv, schema) {
        Ok(columns) => columns,
        Err(problem) => {
            return Err(Invalid {
                problems: vec![problem],
                total: 1,
            });
        }
    };
    let mut stats: Vec<Accumulator> = columns.iter().map(|c| Accumulator::new(c)).collect();
    let mut problems = Vec::new();
    let mut total = 0;
    let mut rows_read = 0;
    let mut note = |problem: Problem| {
        total += 1;
        if problems.len() < max_problems {
            problems.push(problem);
        }
    };
    let mut rows = csv.rows();
    while let Some(row) = rows.next_row() {
        let row = match row {
            Ok(row) => row,
            Err(err) => {
                note(err.into());
                continue;
            }
        };
        rows_read += 1;
        for (index, column) in columns.iter().enumerate() {
            if let Err(err) = stats[index].add(column, row.fields[index]) {
                note(row.error(index, err).into());
            }
        }
    }
    finish(rows_read, &columns, stats, problems, total)
}

/// Reads the table in `bytes` and validates it like [`validate`]; a table that cannot be
/// read at all is invalid with that one problem.
pub fn validate_table(
    bytes: &[u8],
    schema: &Schema,
    max_problems: usize,
) -> Result<Report, Invalid> {
    match Csv::parse(bytes) {
        Ok(csv) => validate(&csv, schema, max_problems),
        Err(err) => Err(Invalid {
            problems: vec![err.into()],
            total: 1,
        }),
    }
}

/// The schema entry of each header column, in file order.
/// Checks a table held by column against a schema, as [`validate`] checks the table's
/// CSV text: the same report, and the same problems in the same order (row by row).
pub fn validate_columns(
    table: &Table,
    schema: &Schema,
    max_problems: usize,
) -> Result<Report, Invalid> {
    let max_problems = max_problems.max(1);
    let names = table.names();
    let columns = match_names(&names, schema).map_err(|problem| Invalid {
        problems: vec![problem],
        total: 1,
    })?;
    let mut stats: Vec<Accumulator> = columns.iter().map(|c| Accumulator::new(c)).collect();
    let mut problems = Vec::new();
    let mut total = 0;
    for row in 0..table.rows {
        for (index, column) in columns.iter().enumerate() {
            let data = &table.columns[index].data;
            let checked = match (data, column.kind) {
                (ColumnData::Float64(values), ColumnType::Number) => {
                    stats[index].add_float(column, values[row])
                }
                _ => stats[index].add(column, &data.text(row)),
            };
            if let Err(problem) = checked {
                total += 1;
                if problems.len() < max_problems {
                    problems.push(Problem::Cell(CellError {
                        row: row + 2,
                        column: names[index].to_owned(),
                        problem,
                    }));
                }
            }
        }
    }
    finish(table.rows, &columns, stats, problems, total)
}

/// The report, or the problems found.
fn finish(
    rows: usize,
    columns: &[&ColumnSchema],
    stats: Vec<Accumulator>,
    problems: Vec<Problem>,
    total: usize,
) -> Result<Report, Invalid> {
    if total > 0 {
        return Err(Invalid { problems, total });
    }
    Ok(Report {
        rows,
        columns: columns.len(),
        column_stats: stats
            .into_iter()
            .zip(columns)
            .map(|(stats, column)| stats.finish(column))
            .collect(),
    })
}

fn match_header<'s>(csv: &Csv, schema: &'s Schema) -> Result<Vec<&'s ColumnSchema>, Problem> {
    match_names(csv.columns(), schema)
}

fn match_names<'s>(names: &[&str], schema: &'s Schema) -> Result<Vec<&'s ColumnSchema>, Problem> {
    let missing: Vec<&str> = schema
        .columns
        .iter()
        .filter(|column| !names.contains(&column.name.as_str()))
        .map(|column| column.name.as_str())
        .collect();
    let unexpected: Vec<&str> = names
        .iter()
        .copied()
        .filter(|name| !schema.columns.iter().any(|column| column.name == *name))
        .collect();
    if missing.is_empty() && unexpected.is_empty() {
        return Ok(names
            .iter()
            .map(|name| {
                schema
                    .columns
                    .iter()
                    .find(|column| column.name == *name)
                    .expect("every header column was just found in the schema")
            })
            .collect());
    }
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(list("missing column", &missing));
    }
    if !unexpected.is_empty() {
        parts.push(list("unexpected column", &unexpected));
    }
    Err(Problem::Header(parts.join("; ")))
}

fn list(what: &str, names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|name| format!("'{name}'")).collect();
    let plural = if names.len() == 1 { "" } else { "s" };
    format!("{what}{plural} {}", quoted.join(", "))
}

/// Running statistics of one column while rows are checked.
struct Accumulator {
    missing: usize,
    count: usize,
    sum: f64,
    min: f64,
    max: f64,
    counts: BTreeMap<String, usize>,
}

impl Accumulator {
    fn new(column: &ColumnSchema) -> Self {
        let counts = column
            .allowed
            .iter()
            .flatten()
            .map(|value| (value.clone(), 0))
            .collect();
        Accumulator {
            missing: 0,
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            counts,
        }
    }

    /// Checks one field and counts it; the error is the problem text for a [`CellError`].
    fn add(&mut self, column: &ColumnSchema, field: &str) -> Result<(), String> {
        if field.is_empty() {
            if column.required {
                return Err("required value is missing".to_owned());
            }
            self.missing += 1;
            return Ok(());
        }
        match column.kind {
            ColumnType::Number => {
                let value = parse_number(field)
                    .ok_or_else(|| format!("expected a number, found {}", quote_field(field)))?;
                self.add_number(column, field, value)
            }
            ColumnType::Integer => {
                let value = field
                    .parse::<i64>()
                    .map_err(|_| format!("expected an integer, found {}", quote_field(field)))?;
                // Integers beyond 2^53 are summarised approximately, as every float is.
                self.add_number(column, field, value as f64)
            }
            ColumnType::Category => {
                if let Some(allowed) = &column.allowed
                    && !allowed.iter().any(|value| value == field)
                {
                    let quoted: Vec<String> = allowed.iter().map(|v| format!("'{v}'")).collect();
                    return Err(format!(
                        "expected one of {}, found {}",
                        quoted.join(", "),
                        quote_field(field)
                    ));
                }
                match self.counts.get_mut(field) {
                    Some(count) => *count += 1,
                    None => {
                        self.counts.insert(field.to_owned(), 1);
                    }
                }
                Ok(())
            }
        }
    }

    /// A number held as one, checked and summarised exactly as its CSV text would be; the
    /// text is made only for an error message.
    fn add_float(&mut self, column: &ColumnSchema, value: f64) -> Result<(), String> {
        let in_range =
            column.min.is_none_or(|min| value >= min) && column.max.is_none_or(|max| value <= max);
        if !in_range {
            return self.add_number(column, zmij::Buffer::new().format_finite(value), value);
        }
        self.count += 1;
        self.sum += value;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        Ok(())
    }

    fn add_number(&mut self, column: &ColumnSchema, field: &str, value: f64) -> Result<(), String> {
        if let Some(min) = column.min
            && value < min
        {
            return Err(format!("value {field} is below the minimum {min}"));
        }
        if let Some(max) = column.max
            && value > max
        {
            return Err(format!("value {field} is above the maximum {max}"));
        }
        self.count += 1;
        self.sum += value;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        Ok(())
    }

    fn finish(self, column: &ColumnSchema) -> ColumnReport {
        let numeric = column.kind != ColumnType::Category && self.count > 0;
        ColumnReport {
            name: column.name.clone(),
            kind: column.kind,
            missing: self.missing,
            min: numeric.then_some(self.min),
            max: numeric.then_some(self.max),
            mean: numeric.then(|| self.sum / self.count as f64),
            counts: (column.kind == ColumnType::Category).then_some(self.counts),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &str = r#"{
        "columns": [
            {"name": "mean_radius", "type": "number", "min": 0},
            {"name": "count", "type": "integer", "required": false, "max": 10},
            {"name": "diagnosis", "type": "category", "allowed": ["M", "B"]}
        ]
    }"#;

    fn schema() -> Schema {
        Schema::from_json(SCHEMA.as_bytes()).unwrap()
    }

    fn check(table: &str) -> Result<Report, Invalid> {
        validate(&Csv::parse(table.as_bytes()).unwrap(), &schema(), 10)
    }

    fn first_problem(table: &str) -> String {
        check(table).unwrap_err().problems[0].to_string()
    }

    #[test]
    fn valid_table_gets_a_report_in_file_order() {
        let report = check("diagnosis,mean_radius,count\nM,1.5,3\nB,2.5,\nM,3.5,5\n").unwrap();
        assert_eq!(report.rows, 3);
        assert_eq!(report.columns, 3);
        let names: Vec<&str> = report
            .column_stats
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(names, ["diagnosis", "mean_radius", "count"]);
        let diagnosis = &report.column_stats[0];
        assert_eq!(
            diagnosis.counts.as_ref().unwrap(),
            &BTreeMap::from([("B".to_owned(), 1), ("M".to_owned(), 2)])
        );
        assert_eq!(diagnosis.min, None);
        let radius = &report.column_stats[1];
        assert_eq!(
            (radius.min, radius.max, radius.mean),
            (Some(1.5), Some(3.5), Some(2.5))
        );
        let count = &report.column_stats[2];
        assert_eq!(count.missing, 1);
        assert_eq!(count.mean, Some(4.0));
    }

    #[test]
    fn allowed_classes_that_never_occur_are_counted_as_zero() {
        let report = check("mean_radius,count,diagnosis\n1,1,B\n").unwrap();
        let counts = report.column_stats[2].counts.clone().unwrap();
        assert_eq!(counts["M"], 0);
        assert_eq!(counts["B"], 1);
    }

    #[test]
    fn names_row_and_column_of_a_bad_number() {
        assert_eq!(
            first_problem("mean_radius,count,diagnosis\n1,1,M\nabc,1,M\n"),
            "row 3, column 'mean_radius': expected a number, found 'abc'"
        );
        assert_eq!(
            first_problem("mean_radius,count,diagnosis\n1,1.5,M\n"),
            "row 2, column 'count': expected an integer, found '1.5'"
        );
    }

    #[test]
    fn enforces_required_ranges_and_categories() {
        assert_eq!(
            first_problem("mean_radius,count,diagnosis\n,1,M\n"),
            "row 2, column 'mean_radius': required value is missing"
        );
        assert_eq!(
            first_problem("mean_radius,count,diagnosis\n-0.5,1,M\n"),
            "row 2, column 'mean_radius': value -0.5 is below the minimum 0"
        );
        assert_eq!(
            first_problem("mean_radius,count,diagnosis\n1,11,M\n"),
            "row 2, column 'count': value 11 is above the maximum 10"
        );
        assert_eq!(
            first_problem("mean_radius,count,diagnosis\n1,1,X\n"),
            "row 2, column 'diagnosis': expected one of 'M', 'B', found 'X'"
        );
    }

    #[test]
    fn names_missing_and_unexpected_header_columns() {
        assert_eq!(
            first_problem("mean_radius,diagnosis,extra\n1,M,2\n"),
            "row 1: missing column 'count'; unexpected column 'extra'"
        );
        assert_eq!(
            first_problem("diagnosis\nM\n"),
            "row 1: missing columns 'mean_radius', 'count'"
        );
    }

    #[test]
    fn collects_problems_in_row_order_up_to_the_limit() {
        let mut table = String::from("mean_radius,count,diagnosis\n");
        for _ in 0..15 {
            table.push_str("x,1,M\n");
        }
        table.push_str("1,2\n");
        let invalid = check(&table).unwrap_err();
        assert_eq!(invalid.total, 16);
        assert_eq!(invalid.problems.len(), 10);
        assert_eq!(
            invalid.problems[9].to_string(),
            "row 11, column 'mean_radius': expected a number, found 'x'"
        );
        let invalid = validate(
            &Csv::parse(b"mean_radius,count,diagnosis\n1,2\n").unwrap(),
            &schema(),
            10,
        )
        .unwrap_err();
        assert_eq!(
            invalid.problems[0].to_string(),
            "row 2, column 'diagnosis': missing field (the row has 2 of 3 fields)"
        );
    }

    #[test]
    fn an_unreadable_table_is_invalid_with_one_problem() {
        let invalid = validate_table(b"mean_radius,\"count\"\n", &schema(), 10).unwrap_err();
        assert_eq!(invalid.total, 1);
        assert_eq!(
            invalid.problems[0].to_string(),
            "row 1, column 2: quoted fields are not supported"
        );
        assert!(validate_table(b"mean_radius,count,diagnosis\n1,2,M\n", &schema(), 10).is_ok());
    }

    #[test]
    fn rejects_inconsistent_schemas() {
        let cases = [
            (r#"{"columns": []}"#, "the schema lists no columns"),
            (
                r#"{"columns": [{"name": "a", "type": "number"}, {"name": "a", "type": "number"}]}"#,
                "the schema lists column 'a' twice",
            ),
            (
                r#"{"columns": [{"name": "a", "type": "number", "min": 2, "max": 1}]}"#,
                "the schema's column 'a': min 2 is greater than max 1",
            ),
            (
                r#"{"columns": [{"name": "a", "type": "category", "min": 0}]}"#,
                "the schema's column 'a': 'min' and 'max' apply to number and integer columns only",
            ),
            (
                r#"{"columns": [{"name": "a", "type": "number", "allowed": ["x"]}]}"#,
                "the schema's column 'a': 'allowed' applies to category columns only",
            ),
            (
                r#"{"columns": [{"name": "a", "type": "category", "allowed": ["x", "x"]}]}"#,
                "the schema's column 'a': 'allowed' lists 'x' twice",
            ),
        ];
        for (json, message) in cases {
            assert_eq!(
                Schema::from_json(json.as_bytes()).unwrap_err().to_string(),
                message
            );
        }
    }

    #[test]
    fn rejects_unknown_fields_and_types() {
        for json in [
            r#"{"columns": [{"name": "a", "type": "number", "minimum": 0}]}"#,
            r#"{"columns": [{"name": "a", "type": "float"}]}"#,
            r#"{"columns": [{"name": "a"}]}"#,
        ] {
            assert!(matches!(
                Schema::from_json(json.as_bytes()),
                Err(SchemaError::Json(_))
            ));
        }
    }

    #[test]
    fn required_defaults_to_true() {
        let schema =
            Schema::from_json(br#"{"columns": [{"name": "a", "type": "number"}]}"#).unwrap();
        assert!(schema.columns[0].required);
    }
}
