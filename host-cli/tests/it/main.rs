//! End-to-end tests of the `sluice` binary: the example pipeline, the data-driven
//! pipeline cases under `tests/cases/`, deploying and serving (the protocols to the letter
//! and under hostile load too), and the other subcommands.

mod argo;
mod bundle;
mod cases;
mod commands;
mod example;
mod fused;
mod home;
mod kfp;
mod registry;
mod resume;
mod serve;
mod serve_load;
mod serve_spec;
mod slurm;
mod support;
mod ui;
