//! Feeds arbitrary bytes to the TF Serving REST predict request reader (row and column formats).
//! Run with `fuzz/run.sh [SECONDS] tfs_request`; an input that crashed it is kept in
//! `fuzz/regressions/tfs_request/`, which the test suite replays.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_runtime::fuzzing::tfs_request(data));
