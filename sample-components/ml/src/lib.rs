//! The behaviour of every Sluice sample step: reading CSV tables, checking them against a
//! schema, normalising, splitting, training a logistic regression and scoring it, bundling
//! the model with its normalisation, and predicting with that bundle. Pure Rust
//! with no file IO (callers hand in byte buffers and writers; only `entry`, the command
//! components' `main`, prints) and nothing specific to wasm, so the same code is unit-tested
//! natively, compiled into the WASI components and into the static native trainer.
//!
//! Floating-point results are reproducible across targets: transcendental functions come
//! from `libm` (never the platform's maths library), sums run in a fixed order, and floats
//! are written with shortest round-trip formatting.

#![forbid(unsafe_code)]

pub mod bundle;
pub mod cli;
pub mod csv;
pub mod entry;
pub mod kfp;
pub mod logistic;
pub mod metrics;
pub mod normalize;
pub mod rng;
pub mod schema;
pub mod split;
pub mod step;
pub mod table;
pub mod tensor;

/// An error and its chain of sources on one line, `outer: inner: innermost`, the form
/// Sluice shows a user.
pub fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_joins_the_source_chain() {
        let inner = serde_json::from_str::<u8>("x").unwrap_err();
        let outer = schema::SchemaError::Json(inner);
        let text = describe(&outer);
        assert!(
            text.starts_with("the schema is not valid JSON for a table schema: expected value"),
            "{text}"
        );
    }
}
