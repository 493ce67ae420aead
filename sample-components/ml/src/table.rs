//! Tables held by column, as transform steps exchange them in memory (the `tables`
//! interface of `wit/pipeline.wit`): every column has a name and one value per row.
//! A step that works on a [`Table`] gives the same results as its CSV form working on the
//! table's CSV text: [`ColumnData::text`] is the field as CSV writes it, and numbers are
//! the values the CSV reader parses.

use std::borrow::Cow;

use thiserror::Error;

use crate::csv::{CellError, parse_number, quote_field};

#[derive(Debug, Clone, PartialEq)]
pub enum ColumnData {
    Float64(Vec<f64>),
    Int64(Vec<i64>),
    Boolean(Vec<bool>),
    Text(TextColumn),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub data: ColumnData,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub rows: usize,
    pub columns: Vec<Column>,
}

/// A table whose shape is wrong: a column of the wrong length, or names that are empty or
/// repeated.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TableError {
    #[error("column '{name}' has {found} values, the table has {rows} rows")]
    Length {
        name: String,
        found: usize,
        rows: usize,
    },
    #[error("column {0} has an empty name")]
    EmptyName(usize),
    #[error("column name '{0}' appears twice")]
    Duplicate(String),
}

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

    /// The value of `row` as a CSV field: numbers in their shortest round-trip form.
    pub fn text(&self, row: usize) -> Cow<'_, str> {
        match self {
            ColumnData::Float64(v) => {
                Cow::Owned(zmij::Buffer::new().format_finite(v[row]).to_owned())
            }
            ColumnData::Int64(v) => Cow::Owned(v[row].to_string()),
            ColumnData::Boolean(v) => Cow::Borrowed(if v[row] { "true" } else { "false" }),
            ColumnData::Text(v) => Cow::Borrowed(v.get(row)),
        }
    }

    /// The rows at `rows`, in that order.
    pub fn select(&self, rows: &[usize]) -> ColumnData {
        fn pick<T: Clone>(values: &[T], rows: &[usize]) -> Vec<T> {
            rows.iter().map(|&row| values[row].clone()).collect()
        }
        match self {
            ColumnData::Float64(v) => ColumnData::Float64(pick(v, rows)),
            ColumnData::Int64(v) => ColumnData::Int64(pick(v, rows)),
            ColumnData::Boolean(v) => ColumnData::Boolean(pick(v, rows)),
            ColumnData::Text(v) => ColumnData::Text(v.select(rows)),
        }
    }
}

impl Column {
    /// Every value as a finite number, with the CSV reader's error for the first that is not
    /// one (`row` numbers count the header as row 1).
    pub fn numbers(&self) -> Result<Cow<'_, [f64]>, CellError> {
        let error = |row: usize, field: &str| CellError {
            row: row + 2,
            column: self.name.clone(),
            problem: format!("expected a number, found {}", quote_field(field)),
        };
        match &self.data {
            ColumnData::Float64(v) => Ok(Cow::Borrowed(v)),
            ColumnData::Int64(v) => Ok(Cow::Owned(v.iter().map(|&i| i as f64).collect())),
            ColumnData::Boolean(v) => Err(error(0, if v[0] { "true" } else { "false" })),
            ColumnData::Text(v) => v
                .iter()
                .enumerate()
                .map(|(row, field)| parse_number(field).ok_or_else(|| error(row, field)))
                .collect::<Result<Vec<f64>, _>>()
                .map(Cow::Owned),
        }
    }
}

/// Text values stored end to end, the form text columns cross the component boundary in:
/// value `i` is `data[offsets[i]..offsets[i + 1]]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TextColumn {
    data: String,
    offsets: Vec<u32>,
}

impl TextColumn {
    /// `None` when the offsets do not start at 0, ascend, end at the data's length and fall
    /// on character boundaries.
    pub fn new(data: String, offsets: Vec<u32>) -> Option<TextColumn> {
        let fits = offsets.first() == Some(&0)
            && offsets.last().map(|&o| o as usize) == Some(data.len())
            && offsets.windows(2).all(|w| w[0] <= w[1])
            && offsets.iter().all(|&o| data.is_char_boundary(o as usize));
        fits.then_some(TextColumn { data, offsets })
    }

    pub fn from_values<S: AsRef<str>>(values: &[S]) -> TextColumn {
        let mut data = String::new();
        let mut offsets = Vec::with_capacity(values.len() + 1);
        offsets.push(0);
        for value in values {
            data.push_str(value.as_ref());
            offsets.push(data.len() as u32);
        }
        TextColumn { data, offsets }
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

    /// The values at `rows`, in that order.
    pub fn select(&self, rows: &[usize]) -> TextColumn {
        let mut data = String::with_capacity(self.data.len());
        let mut offsets = Vec::with_capacity(rows.len() + 1);
        offsets.push(0);
        for &row in rows {
            data.push_str(self.get(row));
            offsets.push(data.len() as u32);
        }
        TextColumn { data, offsets }
    }

    pub fn into_parts(self) -> (String, Vec<u32>) {
        (self.data, self.offsets)
    }
}

impl Table {
    /// Checks that every column has one value per row and a unique, non-empty name.
    pub fn check(&self) -> Result<(), TableError> {
        for (index, column) in self.columns.iter().enumerate() {
            if column.name.is_empty() {
                return Err(TableError::EmptyName(index + 1));
            }
            if self.columns[..index].iter().any(|c| c.name == column.name) {
                return Err(TableError::Duplicate(column.name.clone()));
            }
            if column.data.len() != self.rows {
                return Err(TableError::Length {
                    name: column.name.clone(),
                    found: column.data.len(),
                    rows: self.rows,
                });
            }
        }
        Ok(())
    }

    pub fn names(&self) -> Vec<&str> {
        self.columns.iter().map(|c| c.name.as_str()).collect()
    }

    pub fn position(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// The rows at `rows`, in that order, under the same columns.
    pub fn select(&self, rows: &[usize]) -> Table {
        Table {
            rows: rows.len(),
            columns: self
                .columns
                .iter()
                .map(|c| Column {
                    name: c.name.clone(),
                    data: c.data.select(rows),
                })
                .collect(),
        }
    }
}

/// Writes `from_wit` and `to_wit`, the conversions between [`Table`] and the `table` of a
/// component's own generated bindings of the `tables` interface (each component's
/// `wit_bindgen::generate!` makes its own types), given the path of that bindings module:
/// `sluice_ml::wit_table_conversions!(bindings::sluice::pipeline::tables);`.
/// `from_wit` checks the table's shape and its text offsets.
#[macro_export]
macro_rules! wit_table_conversions {
    ($($tables:ident)::+) => {
        fn from_wit(
            table: $($tables)::+::Table,
        ) -> Result<$crate::table::Table, String> {
            use $($tables)::+::ColumnData as Wit;
            use $crate::table::{Column, ColumnData, Table, TextColumn};
            let mut columns = Vec::with_capacity(table.columns.len());
            for column in table.columns {
                let data = match column.data {
                    Wit::Float64(v) => ColumnData::Float64(v),
                    Wit::Int64(v) => ColumnData::Int64(v),
                    Wit::Boolean(v) => ColumnData::Boolean(v),
                    Wit::Text(text) => ColumnData::Text(
                        TextColumn::new(text.data, text.offsets).ok_or_else(|| {
                            format!("column '{}': text offsets do not fit its data", column.name)
                        })?,
                    ),
                };
                columns.push(Column {
                    name: column.name,
                    data,
                });
            }
            let table = Table {
                rows: table.rows as usize,
                columns,
            };
            table.check().map_err(|err| err.to_string())?;
            Ok(table)
        }

        fn to_wit(table: $crate::table::Table) -> $($tables)::+::Table {
            use $($tables)::+::ColumnData as Wit;
            use $crate::table::ColumnData;
            $($tables)::+::Table {
                rows: table.rows as u64,
                columns: table
                    .columns
                    .into_iter()
                    .map(|column| $($tables)::+::Column {
                        name: column.name,
                        data: match column.data {
                            ColumnData::Float64(v) => Wit::Float64(v),
                            ColumnData::Int64(v) => Wit::Int64(v),
                            ColumnData::Boolean(v) => Wit::Boolean(v),
                            ColumnData::Text(v) => {
                                let (data, offsets) = v.into_parts();
                                Wit::Text($($tables)::+::TextColumn { data, offsets })
                            }
                        },
                    })
                    .collect(),
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        Table {
            rows: 2,
            columns: vec![
                Column {
                    name: "x".into(),
                    data: ColumnData::Float64(vec![1.0, 0.25]),
                },
                Column {
                    name: "label".into(),
                    data: ColumnData::Text(TextColumn::from_values(&["M", ""])),
                },
            ],
        }
    }

    #[test]
    fn fields_read_as_csv_writes_them() {
        let t = table();
        assert_eq!(t.columns[0].data.text(0), "1.0");
        assert_eq!(t.columns[0].data.text(1), "0.25");
        assert_eq!(t.columns[1].data.text(1), "");
        assert_eq!(
            t.select(&[1]).columns[0].data,
            ColumnData::Float64(vec![0.25])
        );
    }

    #[test]
    fn shape_problems_are_named() {
        let mut t = table();
        assert_eq!(t.check(), Ok(()));
        t.columns[1].name = "x".into();
        assert_eq!(t.check(), Err(TableError::Duplicate("x".into())));
        t.columns[1].name = "y".into();
        t.rows = 3;
        assert!(matches!(t.check(), Err(TableError::Length { .. })));
    }

    #[test]
    fn text_numbers_fail_like_the_csv_reader() {
        let t = table();
        let err = t.columns[1].numbers().unwrap_err();
        assert_eq!(
            err.to_string(),
            "row 2, column 'label': expected a number, found 'M'"
        );
        assert_eq!(&*t.columns[0].numbers().unwrap(), &[1.0, 0.25]);
    }
}
