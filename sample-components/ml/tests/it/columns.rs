//! The transform forms of validate, split and normalize, which work on tables held by
//! column, against their CSV forms on the shipped data: the same reports, rows, statistics
//! and, written back as CSV, the same bytes. This is what makes a fused chain's outputs
//! identical to those of the same tasks run through files.

use std::fs;

use sluice_ml::csv::Csv;
use sluice_ml::normalize::{self, Method};
use sluice_ml::schema::{self, Schema};
use sluice_ml::split::{SplitConfig, split_csv, split_table};
use sluice_ml::table::{Column, ColumnData, Table, TextColumn};

use crate::repository;

/// Reads CSV as a host hands a table over: a column is numbers when every field is a
/// number written in its shortest form (`numbers: true`), else text.
fn table(bytes: &[u8], numbers: bool) -> Table {
    let csv = Csv::parse(bytes).unwrap();
    let mut fields: Vec<Vec<String>> = vec![Vec::new(); csv.width()];
    let mut rows = csv.rows();
    let mut count = 0;
    while let Some(row) = rows.next_row() {
        for (column, field) in row.unwrap().fields.iter().enumerate() {
            fields[column].push((*field).to_owned());
        }
        count += 1;
    }
    let columns = csv
        .columns()
        .iter()
        .zip(fields)
        .map(|(name, texts)| {
            let canonical: Option<Vec<f64>> = texts
                .iter()
                .map(|t| {
                    let v: f64 = t.parse().ok()?;
                    (zmij_text(v) == *t).then_some(v)
                })
                .collect();
            Column {
                name: (*name).to_owned(),
                data: match canonical {
                    Some(values) if numbers => ColumnData::Float64(values),
                    _ => ColumnData::Text(TextColumn::from_values(&texts)),
                },
            }
        })
        .collect();
    Table {
        rows: count,
        columns,
    }
}

fn zmij_text(value: f64) -> String {
    let table = Table {
        rows: 1,
        columns: vec![Column {
            name: "x".into(),
            data: ColumnData::Float64(vec![value]),
        }],
    };
    table.columns[0].data.text(0).into_owned()
}

fn to_csv(table: &Table) -> Vec<u8> {
    let mut out = table.names().join(",");
    out.push('\n');
    for row in 0..table.rows {
        let fields: Vec<String> = table
            .columns
            .iter()
            .map(|c| c.data.text(row).into_owned())
            .collect();
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    out.into_bytes()
}

#[test]
fn column_forms_agree_with_csv_forms() {
    let data_dir = repository().join("examples/breast-cancer/data");
    let data = fs::read(data_dir.join("breast_cancer.csv")).unwrap();
    let schema = Schema::from_json(&fs::read(data_dir.join("schema.json")).unwrap()).unwrap();
    let config = SplitConfig {
        test_fraction: 0.25,
        seed: 42,
        stratify: Some("diagnosis".to_owned()),
    };
    let split = split_csv(&data, &config).unwrap();
    let train_csv = Csv::parse(&split.train).unwrap();
    let stats = normalize::fit(&train_csv, &["diagnosis"], Method::Zscore).unwrap();
    let mut normalised = Vec::new();
    normalize::apply(
        &Csv::parse(&split.test).unwrap(),
        &stats,
        &["diagnosis"],
        &mut normalised,
    )
    .unwrap();

    for numbers in [true, false] {
        let t = table(&data, numbers);
        assert_eq!(
            to_csv(&t),
            data,
            "the table reads back (numbers: {numbers})"
        );
        let report = schema::validate(&Csv::parse(&data).unwrap(), &schema, 10).unwrap();
        assert_eq!(schema::validate_columns(&t, &schema, 10).unwrap(), report);

        let (train, test) = split_table(&t, &config).unwrap();
        assert_eq!(to_csv(&train), split.train);
        assert_eq!(to_csv(&test), split.test);

        let fitted = normalize::fit_table(&train, &["diagnosis"], Method::Zscore).unwrap();
        assert_eq!(fitted, stats);
        let applied = normalize::apply_table(test, &fitted, &["diagnosis"]).unwrap();
        assert_eq!(to_csv(&applied), normalised);
    }
}

#[test]
fn column_forms_report_the_same_problems() {
    let schema = Schema::from_json(
        br#"{"columns": [{"name": "x", "type": "number", "max": 5},
                         {"name": "label", "type": "category", "allowed": ["a", "b"]}]}"#,
    )
    .unwrap();
    let text = b"x,label\n1.5,a\n7.0,b\n2.0,c\n";
    let csv_problems = schema::validate(&Csv::parse(text).unwrap(), &schema, 10).unwrap_err();
    for numbers in [true, false] {
        let problems = schema::validate_columns(&table(text, numbers), &schema, 10).unwrap_err();
        assert_eq!(problems, csv_problems);
    }
    let err = normalize::fit_table(&table(b"x,label\n1.0,a\n", true), &["nope"], Method::Zscore)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "excluded column 'nope' is not in the header"
    );
}
