//! Deploying: after a run, publish a task's output as a new version of a served model.
pub mod gate;
