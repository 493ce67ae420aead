//! End-to-end tests of the `sluice` binary: the example pipeline, the data-driven
//! pipeline cases under `tests/cases/`, deploying and serving, and the other subcommands.

mod bundle;
mod cases;
mod commands;
mod example;
mod fused;
mod kfp;
mod registry;
mod serve;
mod support;
