//! Integration tests of the runtime against real wasm components: the sandbox, typed
//! steps, the compile cache, and scheduling with the wasm executor.

mod containers;
mod fuzz_inputs;
mod sandbox;
mod steps;
mod support;
mod tidy;
