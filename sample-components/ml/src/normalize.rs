//! Column normalisation: fitting per-column statistics on one table and applying them to the
//! same or another table (z-score: `(x - mean) / std`; min-max: `(x - min) / (max - min)`).
//!
//! Built for large inputs: both passes parse fields straight from the caller's buffer, and
//! the output is assembled in one reused 1 MiB buffer that goes to the caller's writer in
//! large writes. Excluded columns (such as the label) are copied byte for byte. The statistics use
//! a population standard deviation, and a constant column gets a scale of 1, as
//! scikit-learn's scalers do.

use std::io::Write;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::csv::{CellError, Csv, CsvError, push_number};
use crate::table::{Column, ColumnData, Table};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Subtract the mean, divide by the standard deviation.
    Zscore,
    /// Map the fitted minimum to 0 and the maximum to 1.
    Minmax,
}

impl FromStr for Method {
    type Err = NormalizeError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "zscore" => Ok(Method::Zscore),
            "minmax" => Ok(Method::Minmax),
            other => Err(NormalizeError::UnknownMethod(other.to_owned())),
        }
    }
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::Zscore => "zscore",
            Method::Minmax => "minmax",
        }
    }
}

/// Statistics fitted on a table: what `--fitted-stats` writes and `--stats` reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FittedStats {
    pub method: Method,
    /// Rows the statistics were fitted on.
    pub rows: usize,
    /// Columns that were passed through unchanged.
    pub excluded: Vec<String>,
    /// One entry per normalised column, in file order.
    pub columns: Vec<ColumnStats>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnStats {
    pub name: String,
    pub mean: f64,
    /// Population standard deviation.
    pub std: f64,
    pub min: f64,
    pub max: f64,
}

impl ColumnStats {
    /// How this column is normalised by `method`.
    pub fn scaling(&self, method: Method) -> Scaling {
        match method {
            Method::Zscore => Scaling {
                shift: self.mean,
                scale: if self.std > 0.0 { self.std } else { 1.0 },
            },
            Method::Minmax => {
                let range = self.max - self.min;
                Scaling {
                    shift: self.min,
                    scale: if range > 0.0 { range } else { 1.0 },
                }
            }
        }
    }
}

/// How one column is normalised: `(x - shift) / scale`. [`apply`] normalises every value
/// with [`Scaling::apply`], so anything else that calls it (a predictor normalising a
/// request) gets the very same numbers as the normalised table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scaling {
    pub shift: f64,
    pub scale: f64,
}

impl Scaling {
    pub fn apply(self, value: f64) -> f64 {
        (value - self.shift) / self.scale
    }
}

#[derive(Debug, Error)]
pub enum NormalizeError {
    #[error(transparent)]
    Csv(#[from] CsvError),
    #[error(transparent)]
    Cell(#[from] CellError),
    #[error("unknown method '{0}', expected 'zscore' or 'minmax'")]
    UnknownMethod(String),
    #[error("excluded column '{0}' is not in the header")]
    UnknownExcluded(String),
    #[error("every column is excluded, there is nothing to normalise")]
    NothingToNormalize,
    #[error("the table has no rows to fit statistics on")]
    NoRows,
    #[error("column '{0}' has no fitted statistics")]
    MissingStats(String),
    #[error("the statistics describe column '{0}', which the table lacks or excludes")]
    ExtraStats(String),
    #[error("method {requested} was asked for, but the statistics were fitted for {fitted}")]
    MethodMismatch {
        requested: &'static str,
        fitted: &'static str,
    },
    #[error("the statistics are not valid JSON for fitted statistics")]
    StatsJson(#[source] serde_json::Error),
    #[error("cannot write the normalised table")]
    Write(#[source] std::io::Error),
}

impl FittedStats {
    pub fn from_json(bytes: &[u8]) -> Result<Self, NormalizeError> {
        serde_json::from_slice(bytes).map_err(NormalizeError::StatsJson)
    }

    /// Pretty JSON with shortest round-trip floats.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("fitted statistics always serialise") + "\n"
    }

    /// How column `name` is normalised, when these statistics cover it.
    pub fn scaling(&self, name: &str) -> Option<Scaling> {
        self.columns
            .iter()
            .find(|column| column.name == name)
            .map(|column| column.scaling(self.method))
    }

    /// Checks that these statistics were fitted with `method`, when one is asked for.
    pub fn expect_method(&self, method: Option<Method>) -> Result<(), NormalizeError> {
        match method {
            Some(requested) if requested != self.method => Err(NormalizeError::MethodMismatch {
                requested: requested.name(),
                fitted: self.method.name(),
            }),
            _ => Ok(()),
        }
    }
}

/// Which columns of `csv` are normalised, as 0-based positions.
fn normalised_columns(csv: &Csv, exclude: &[&str]) -> Result<Vec<bool>, NormalizeError> {
    normalised_names(csv.columns(), exclude)
}

fn normalised_names(names: &[&str], exclude: &[&str]) -> Result<Vec<bool>, NormalizeError> {
    for name in exclude {
        if !names.contains(name) {
            return Err(NormalizeError::UnknownExcluded((*name).to_owned()));
        }
    }
    let normalised: Vec<bool> = names.iter().map(|name| !exclude.contains(name)).collect();
    if !normalised.contains(&true) {
        return Err(NormalizeError::NothingToNormalize);
    }
    Ok(normalised)
}

/// Fits statistics for every column not in `exclude`; those columns must hold numbers.
pub fn fit(csv: &Csv, exclude: &[&str], method: Method) -> Result<FittedStats, NormalizeError> {
    let normalised = normalised_columns(csv, exclude)?;
    let positions: Vec<usize> = (0..csv.width()).filter(|&i| normalised[i]).collect();
    let mut running = vec![Running::default(); positions.len()];
    let mut rows = csv.rows();
    let mut count = 0;
    while let Some(row) = rows.next_row() {
        let row = row?;
        for (stats, &column) in running.iter_mut().zip(&positions) {
            stats.add(row.number(column)?);
        }
        count += 1;
    }
    if count == 0 {
        return Err(NormalizeError::NoRows);
    }
    Ok(FittedStats {
        method,
        rows: count,
        excluded: exclude.iter().map(|name| (*name).to_owned()).collect(),
        columns: positions
            .iter()
            .zip(running)
            .map(|(&column, stats)| stats.finish(csv.columns()[column]))
            .collect(),
    })
}

/// Output is handed to the writer in chunks of at least this many bytes.
pub const OUTPUT_CHUNK: usize = 1 << 20;

/// Writes `csv` with every column not in `exclude` normalised by `stats`; returns the number
/// of data rows written. The statistics must cover exactly the normalised columns. The
/// output is assembled in a buffer of [`OUTPUT_CHUNK`] bytes and written a chunk at a time,
/// so `out` needs no buffering of its own.
pub fn apply(
    csv: &Csv,
    stats: &FittedStats,
    exclude: &[&str],
    out: &mut impl Write,
) -> Result<usize, NormalizeError> {
    let plan = scaling_plan(csv.columns(), stats, exclude)?;

    // Room for the chunk and the row that crosses its end.
    let mut buffer = Vec::with_capacity(OUTPUT_CHUNK + OUTPUT_CHUNK / 4);
    buffer.extend_from_slice(csv.header_line().as_bytes());
    buffer.push(b'\n');
    let mut rows = csv.rows();
    let mut count = 0;
    while let Some(row) = rows.next_row() {
        let row = row?;
        for (column, (field, step)) in row.fields.iter().zip(&plan).enumerate() {
            if column > 0 {
                buffer.push(b',');
            }
            match step {
                None => buffer.extend_from_slice(field.as_bytes()),
                Some(scaling) => {
                    let value = row.number(column)?;
                    push_number(&mut buffer, scaling.apply(value));
                }
            }
        }
        buffer.push(b'\n');
        count += 1;
        if buffer.len() >= OUTPUT_CHUNK {
            out.write_all(&buffer).map_err(NormalizeError::Write)?;
            buffer.clear();
        }
    }
    out.write_all(&buffer).map_err(NormalizeError::Write)?;
    Ok(count)
}

/// Fits statistics on a table held by column: the same statistics [`fit`] gives for the
/// table's CSV text.
pub fn fit_table(
    table: &Table,
    exclude: &[&str],
    method: Method,
) -> Result<FittedStats, NormalizeError> {
    let normalised = normalised_names(&table.names(), exclude)?;
    if table.rows == 0 {
        return Err(NormalizeError::NoRows);
    }
    let mut columns = Vec::new();
    for (column, _) in table.columns.iter().zip(&normalised).filter(|(_, n)| **n) {
        let mut running = Running::default();
        for &value in column.numbers()?.iter() {
            running.add(value);
        }
        columns.push(running.finish(&column.name));
    }
    Ok(FittedStats {
        method,
        rows: table.rows,
        excluded: exclude.iter().map(|name| (*name).to_owned()).collect(),
        columns,
    })
}

/// Normalises a table held by column: the table [`apply`] writes for its CSV text. The
/// excluded columns are moved over unchanged.
pub fn apply_table(
    table: Table,
    stats: &FittedStats,
    exclude: &[&str],
) -> Result<Table, NormalizeError> {
    let plan = scaling_plan(&table.names(), stats, exclude)?;
    let mut columns = Vec::with_capacity(table.columns.len());
    for (column, step) in table.columns.into_iter().zip(plan) {
        let Some(scaling) = step else {
            columns.push(column);
            continue;
        };
        let values = match column.data {
            ColumnData::Float64(mut values) => {
                for value in &mut values {
                    *value = scaling.apply(*value);
                }
                values
            }
            _ => column
                .numbers()?
                .iter()
                .map(|&value| scaling.apply(value))
                .collect(),
        };
        columns.push(Column {
            name: column.name,
            data: ColumnData::Float64(values),
        });
    }
    Ok(Table {
        rows: table.rows,
        columns,
    })
}

/// Per column, the scaling that normalises it, or `None` for an excluded column; the
/// statistics must cover exactly the normalised columns.
fn scaling_plan(
    names: &[&str],
    stats: &FittedStats,
    exclude: &[&str],
) -> Result<Vec<Option<Scaling>>, NormalizeError> {
    let normalised = normalised_names(names, exclude)?;
    let mut plan = Vec::with_capacity(names.len());
    for (name, &normalise) in names.iter().zip(&normalised) {
        plan.push(if normalise {
            let scaling = stats
                .scaling(name)
                .ok_or_else(|| NormalizeError::MissingStats((*name).to_owned()))?;
            Some(scaling)
        } else {
            None
        });
    }
    for column in &stats.columns {
        let position = names.iter().position(|name| *name == column.name);
        if !position.is_some_and(|position| normalised[position]) {
            return Err(NormalizeError::ExtraStats(column.name.clone()));
        }
    }
    Ok(plan)
}

/// Welford's running mean and sum of squared deviations, plus the extremes.
#[derive(Debug, Clone)]
struct Running {
    count: f64,
    mean: f64,
    squares: f64,
    min: f64,
    max: f64,
}

impl Default for Running {
    fn default() -> Self {
        Running {
            count: 0.0,
            mean: 0.0,
            squares: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }
}

impl Running {
    fn add(&mut self, value: f64) {
        self.count += 1.0;
        let delta = value - self.mean;
        self.mean += delta / self.count;
        self.squares += delta * (value - self.mean);
        self.min = self.min.min(value);
        self.max = self.max.max(value);
    }

    fn finish(self, name: &str) -> ColumnStats {
        ColumnStats {
            name: name.to_owned(),
            mean: self.mean,
            std: libm::sqrt(self.squares / self.count),
            min: self.min,
            max: self.max,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "a,label,b\n1,x,10\n2,y,10\n3,x,10\n4,y,10\n";

    fn fit_table(text: &str, method: Method) -> FittedStats {
        fit(&Csv::parse(text.as_bytes()).unwrap(), &["label"], method).unwrap()
    }

    fn apply_table(text: &str, stats: &FittedStats) -> String {
        let mut out = Vec::new();
        apply(
            &Csv::parse(text.as_bytes()).unwrap(),
            stats,
            &["label"],
            &mut out,
        )
        .unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn fits_population_statistics_per_column() {
        let stats = fit_table(TABLE, Method::Zscore);
        assert_eq!(stats.rows, 4);
        assert_eq!(stats.excluded, ["label"]);
        let a = &stats.columns[0];
        assert_eq!(a.name, "a");
        assert_eq!((a.mean, a.min, a.max), (2.5, 1.0, 4.0));
        assert_eq!(a.std, libm::sqrt(1.25));
        let b = &stats.columns[1];
        assert_eq!((b.name.as_str(), b.mean, b.std), ("b", 10.0, 0.0));
    }

    #[test]
    fn zscore_centres_and_scales_and_passes_the_label_through() {
        let stats = fit_table(TABLE, Method::Zscore);
        let out = apply_table(TABLE, &stats);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "a,label,b");
        let first: Vec<&str> = lines[1].split(',').collect();
        assert_eq!(first[1], "x");
        let expected = (1.0 - 2.5) / libm::sqrt(1.25);
        assert_eq!(first[0].parse::<f64>().unwrap(), expected);
        // A constant column is centred and left unscaled.
        assert_eq!(first[2], "0.0");
        let column: Vec<f64> = lines[1..]
            .iter()
            .map(|l| l.split(',').next().unwrap().parse().unwrap())
            .collect();
        let mean: f64 = column.iter().sum::<f64>() / 4.0;
        assert!(mean.abs() < 1e-12);
    }

    #[test]
    fn minmax_maps_the_fitted_range_to_unit_interval() {
        let stats = fit_table(TABLE, Method::Minmax);
        let out = apply_table(TABLE, &stats);
        let a: Vec<&str> = out
            .lines()
            .skip(1)
            .map(|l| l.split(',').next().unwrap())
            .collect();
        assert_eq!(
            a,
            ["0.0", "0.3333333333333333", "0.6666666666666666", "1.0"]
        );
    }

    #[test]
    fn statistics_fitted_on_one_table_apply_to_another() {
        let stats = fit_table(TABLE, Method::Minmax);
        let json = stats.to_json();
        let reread = FittedStats::from_json(json.as_bytes()).unwrap();
        assert_eq!(reread, stats);
        let out = apply_table("b,a,label\n20,7,z\n", &reread);
        assert_eq!(out, "b,a,label\n10.0,2.0,z\n");
    }

    #[test]
    fn statistics_files_hold_the_exact_values() {
        // Values whose shortest text a fast, inexact float parser reads back wrongly.
        let stats = FittedStats {
            method: Method::Zscore,
            rows: 426,
            excluded: Vec::new(),
            columns: vec![ColumnStats {
                name: "a".to_owned(),
                mean: 0.020607953051643202,
                std: 0.0026935336087429646,
                min: 0.0038340194835680733,
                max: 0.15404030900217341,
            }],
        };
        assert_eq!(
            FittedStats::from_json(stats.to_json().as_bytes()).unwrap(),
            stats
        );
    }

    #[test]
    fn scaling_is_the_arithmetic_apply_uses() {
        let stats = fit_table(TABLE, Method::Zscore);
        let a = stats.scaling("a").unwrap();
        assert_eq!(
            a,
            Scaling {
                shift: 2.5,
                scale: libm::sqrt(1.25)
            }
        );
        let out = apply_table(TABLE, &stats);
        // The third data row has a = 3.
        let row = out.lines().nth(3).unwrap();
        let written: f64 = row.split(',').next().unwrap().parse().unwrap();
        assert_eq!(written.to_bits(), a.apply(3.0).to_bits());
        // A constant column is only centred; excluded and unknown columns have none.
        assert_eq!(stats.scaling("b").unwrap().apply(10.0), 0.0);
        assert_eq!(stats.scaling("label"), None);
        assert_eq!(stats.scaling("c"), None);
        let minmax = fit_table(TABLE, Method::Minmax);
        assert_eq!(
            minmax.scaling("a").unwrap(),
            Scaling {
                shift: 1.0,
                scale: 3.0
            }
        );
    }

    #[test]
    fn rejects_non_numeric_fields_naming_the_cell() {
        let csv = Csv::parse(b"a,label\n1,x\noops,y\n").unwrap();
        let err = fit(&csv, &["label"], Method::Zscore).unwrap_err();
        assert_eq!(
            err.to_string(),
            "row 3, column 'a': expected a number, found 'oops'"
        );
    }

    #[test]
    fn rejects_mismatched_columns_and_methods() {
        let stats = fit_table(TABLE, Method::Zscore);
        let csv = Csv::parse(b"a,label\n1,x\n").unwrap();
        let err = apply(&csv, &stats, &["label"], &mut Vec::new()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the statistics describe column 'b', which the table lacks or excludes"
        );
        let csv = Csv::parse(b"a,label,b,c\n1,x,2,3\n").unwrap();
        let err = apply(&csv, &stats, &["label"], &mut Vec::new()).unwrap_err();
        assert_eq!(err.to_string(), "column 'c' has no fitted statistics");
        let csv = Csv::parse(TABLE.as_bytes()).unwrap();
        let err = fit(&csv, &["lable"], Method::Zscore).unwrap_err();
        assert_eq!(
            err.to_string(),
            "excluded column 'lable' is not in the header"
        );
        let err = stats.expect_method(Some(Method::Minmax)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "method minmax was asked for, but the statistics were fitted for zscore"
        );
        assert!(stats.expect_method(None).is_ok());
        assert!(stats.expect_method(Some(Method::Zscore)).is_ok());
        let csv = Csv::parse(b"label\nx\n").unwrap();
        assert!(matches!(
            fit(&csv, &["label"], Method::Zscore),
            Err(NormalizeError::NothingToNormalize)
        ));
        let csv = Csv::parse(b"a\n").unwrap();
        assert!(matches!(
            fit(&csv, &[], Method::Zscore),
            Err(NormalizeError::NoRows)
        ));
    }

    #[test]
    fn parses_method_names() {
        assert_eq!("zscore".parse::<Method>().unwrap(), Method::Zscore);
        assert_eq!("minmax".parse::<Method>().unwrap(), Method::Minmax);
        assert_eq!(
            "robust".parse::<Method>().unwrap_err().to_string(),
            "unknown method 'robust', expected 'zscore' or 'minmax'"
        );
    }
}
