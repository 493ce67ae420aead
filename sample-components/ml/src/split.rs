//! Deterministic train/test split of a CSV table, optionally stratified by a column.
//!
//! The number of test rows is `ceil(test_fraction * rows)`. With stratification it is
//! shared out over the classes in proportion to their sizes (largest remainder, exact integer
//! arithmetic); each class's rows are shuffled with [`SplitMix64`] seeded by the caller, the
//! classes taken in byte order of their values. Output rows keep their original order and
//! bytes, so the same table, fraction and seed give the same two files on every platform.

use std::collections::BTreeMap;

use thiserror::Error;

use crate::csv::{Csv, CsvError};
use crate::rng::SplitMix64;
use crate::table::Table;

/// How to split.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitConfig {
    /// Share of rows that go to the test table, strictly between 0 and 1.
    pub test_fraction: f64,
    pub seed: u64,
    /// Column whose classes keep their proportions in both tables.
    pub stratify: Option<String>,
}

/// The two tables, each with the input's header.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    pub train: Vec<u8>,
    pub test: Vec<u8>,
    pub train_rows: usize,
    pub test_rows: usize,
}

#[derive(Debug, Clone, PartialEq, Error)]
pub enum SplitError {
    #[error(transparent)]
    Csv(#[from] CsvError),
    #[error("test fraction {0} is not strictly between 0 and 1")]
    Fraction(f64),
    #[error("stratify column '{0}' is not in the header")]
    UnknownColumn(String),
    #[error(
        "a test fraction of {fraction} leaves {test} of {rows} rows for testing; both tables need rows"
    )]
    Empty {
        fraction: f64,
        rows: usize,
        test: usize,
    },
}

/// Splits a CSV table held in `bytes`.
pub fn split_csv(bytes: &[u8], config: &SplitConfig) -> Result<Split, SplitError> {
    let csv = Csv::parse(bytes)?;
    let stratify = match &config.stratify {
        Some(name) => Some(
            csv.position(name)
                .ok_or_else(|| SplitError::UnknownColumn(name.clone()))?,
        ),
        None => None,
    };
    let mut lines: Vec<&str> = Vec::new();
    let mut classes: Vec<&str> = Vec::new();
    let mut rows = csv.rows();
    while let Some(row) = rows.next_row() {
        let row = row?;
        lines.push(row.line);
        if let Some(column) = stratify {
            classes.push(row.fields[column]);
        }
    }
    let in_test = if stratify.is_some() {
        assign(&classes, config)?
    } else {
        assign(&vec![""; lines.len()], config)?
    };
    let mut train = Vec::with_capacity(bytes.len());
    let mut test = Vec::with_capacity(bytes.len() / 2);
    for out in [&mut train, &mut test] {
        out.extend_from_slice(csv.header_line().as_bytes());
        out.push(b'\n');
    }
    let mut test_rows = 0;
    for (line, is_test) in lines.iter().zip(&in_test) {
        let out = if *is_test {
            test_rows += 1;
            &mut test
        } else {
            &mut train
        };
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    Ok(Split {
        train,
        test,
        train_rows: lines.len() - test_rows,
        test_rows,
    })
}

/// Splits a table held by column, choosing the same rows as [`split_csv`] does on the
/// table's CSV text. Returns the training and test tables.
pub fn split_table(table: &Table, config: &SplitConfig) -> Result<(Table, Table), SplitError> {
    let in_test = match &config.stratify {
        Some(name) => {
            let column = table
                .position(name)
                .ok_or_else(|| SplitError::UnknownColumn(name.clone()))?;
            let data = &table.columns[column].data;
            let classes: Vec<_> = (0..table.rows).map(|row| data.text(row)).collect();
            let classes: Vec<&str> = classes.iter().map(|class| class.as_ref()).collect();
            assign(&classes, config)?
        }
        None => assign(&vec![""; table.rows], config)?,
    };
    let (test, train): (Vec<usize>, Vec<usize>) = (0..table.rows).partition(|&row| in_test[row]);
    Ok((table.select(&train), table.select(&test)))
}

/// Chooses the test rows given each row's class; `true` marks a test row.
pub fn assign(classes: &[&str], config: &SplitConfig) -> Result<Vec<bool>, SplitError> {
    let fraction = config.test_fraction;
    if !(fraction > 0.0 && fraction < 1.0) {
        return Err(SplitError::Fraction(fraction));
    }
    let rows = classes.len();
    let test = (fraction * rows as f64).ceil() as usize;
    if test == 0 || test >= rows {
        return Err(SplitError::Empty {
            fraction,
            rows,
            test,
        });
    }

    // `str` orders by bytes, so the class order does not depend on any locale.
    let mut members: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (index, class) in classes.iter().enumerate() {
        members.entry(class).or_default().push(index);
    }
    let quotas = share_out(test, rows, members.values().map(Vec::len));

    let mut rng = SplitMix64::new(config.seed);
    let mut in_test = vec![false; rows];
    for (indices, quota) in members.into_values().zip(quotas) {
        let mut indices = indices;
        rng.shuffle(&mut indices);
        for &index in &indices[..quota] {
            in_test[index] = true;
        }
    }
    Ok(in_test)
}

/// Shares `total` out over classes of the given sizes in proportion to them: each class gets
/// the floor of its exact share, and the rows left over go to the largest remainders (the
/// earlier class first on a tie).
fn share_out(total: usize, rows: usize, sizes: impl Iterator<Item = usize>) -> Vec<usize> {
    let exact: Vec<(usize, usize)> = sizes
        .map(|size| {
            let scaled = total as u128 * size as u128;
            (
                (scaled / rows as u128) as usize,
                (scaled % rows as u128) as usize,
            )
        })
        .collect();
    let mut quotas: Vec<usize> = exact.iter().map(|(floor, _)| *floor).collect();
    let left = total - quotas.iter().sum::<usize>();
    let mut order: Vec<usize> = (0..exact.len()).collect();
    order.sort_by(|a, b| exact[*b].1.cmp(&exact[*a].1).then(a.cmp(b)));
    for &class in order.iter().take(left) {
        quotas[class] += 1;
    }
    quotas
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(fraction: f64, seed: u64, stratify: Option<&str>) -> SplitConfig {
        SplitConfig {
            test_fraction: fraction,
            seed,
            stratify: stratify.map(str::to_owned),
        }
    }

    fn table(rows: usize) -> String {
        let mut text = String::from("id,label\n");
        for id in 0..rows {
            let label = if id % 4 == 0 { "M" } else { "B" };
            text.push_str(&format!("{id},{label}\n"));
        }
        text
    }

    fn ids(bytes: &[u8]) -> Vec<usize> {
        String::from_utf8(bytes.to_vec())
            .unwrap()
            .lines()
            .skip(1)
            .map(|line| line.split(',').next().unwrap().parse().unwrap())
            .collect()
    }

    #[test]
    fn every_row_lands_in_exactly_one_table_in_original_order() {
        let text = table(100);
        let split = split_csv(text.as_bytes(), &config(0.25, 42, None)).unwrap();
        assert_eq!((split.train_rows, split.test_rows), (75, 25));
        let train = ids(&split.train);
        let test = ids(&split.test);
        assert!(train.windows(2).all(|w| w[0] < w[1]));
        assert!(test.windows(2).all(|w| w[0] < w[1]));
        let mut all: Vec<usize> = train.iter().chain(&test).copied().collect();
        all.sort();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        assert!(split.train.starts_with(b"id,label\n"));
        assert!(split.test.starts_with(b"id,label\n"));
    }

    #[test]
    fn the_seed_fixes_the_split() {
        let text = table(60);
        let a = split_csv(text.as_bytes(), &config(0.3, 7, Some("label"))).unwrap();
        let b = split_csv(text.as_bytes(), &config(0.3, 7, Some("label"))).unwrap();
        let c = split_csv(text.as_bytes(), &config(0.3, 8, Some("label"))).unwrap();
        assert_eq!(a, b);
        assert_ne!(a.test, c.test);
    }

    #[test]
    fn the_split_of_a_known_table_never_changes() {
        // Pinned (and checked against an independent implementation of the same algorithm) so
        // that a change to the shuffle or the rounding is noticed.
        let split = split_csv(table(12).as_bytes(), &config(0.25, 42, None)).unwrap();
        assert_eq!(ids(&split.test), [7, 9, 11]);
    }

    #[test]
    fn stratification_keeps_class_proportions() {
        let text = table(100); // 25 M, 75 B
        let split = split_csv(text.as_bytes(), &config(0.2, 3, Some("label"))).unwrap();
        let test = String::from_utf8(split.test).unwrap();
        let malignant = test.lines().filter(|line| line.ends_with(",M")).count();
        let benign = test.lines().filter(|line| line.ends_with(",B")).count();
        assert_eq!((malignant, benign), (5, 15));
    }

    #[test]
    fn leftover_test_rows_go_to_the_largest_remainders() {
        // 10 test rows over classes of 7, 7 and 6 of 20 rows: exact shares 3.5, 3.5, 3.
        assert_eq!(share_out(10, 20, [7, 7, 6].into_iter()), [4, 3, 3]);
        // 3 test rows over classes of 5 and 5: 1.5 each, the tie goes to the first.
        assert_eq!(share_out(3, 10, [5, 5].into_iter()), [2, 1]);
        assert_eq!(share_out(143, 569, [357, 212].into_iter()), [90, 53]);
    }

    #[test]
    fn rejects_bad_fractions_and_columns() {
        let text = table(10);
        for fraction in [0.0, 1.0, -0.1, 1.5, f64::NAN] {
            assert!(matches!(
                split_csv(text.as_bytes(), &config(fraction, 1, None)),
                Err(SplitError::Fraction(_))
            ));
        }
        assert_eq!(
            split_csv(text.as_bytes(), &config(0.5, 1, Some("class")))
                .unwrap_err()
                .to_string(),
            "stratify column 'class' is not in the header"
        );
        assert_eq!(
            split_csv(b"id\n1\n", &config(0.5, 1, None))
                .unwrap_err()
                .to_string(),
            "a test fraction of 0.5 leaves 1 of 1 rows for testing; both tables need rows"
        );
    }

    #[test]
    fn keeps_crlf_rows_byte_for_byte_without_the_line_end() {
        let split = split_csv(b"a,b\r\n1,x\r\n2,y\r\n", &config(0.5, 0, None)).unwrap();
        let mut rows: Vec<&str> = std::str::from_utf8(&split.train)
            .unwrap()
            .lines()
            .chain(std::str::from_utf8(&split.test).unwrap().lines())
            .collect();
        rows.sort();
        assert_eq!(rows, ["1,x", "2,y", "a,b", "a,b"]);
    }

    #[test]
    fn reports_malformed_rows() {
        assert_eq!(
            split_csv(b"a,b\n1\n", &config(0.5, 0, None))
                .unwrap_err()
                .to_string(),
            "row 2, column 'b': missing field (the row has 1 of 2 fields)"
        );
    }
}
