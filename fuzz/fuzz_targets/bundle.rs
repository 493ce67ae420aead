//! Feeds arbitrary bytes to the bundle reader (an OCI image-layout tar) as `sluice run` opens it.
//! Run with `fuzz/run.sh [SECONDS] bundle`; an input that crashed it is kept in
//! `fuzz/regressions/bundle/`, which the test suite replays.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_runtime::fuzzing::bundle(data));
