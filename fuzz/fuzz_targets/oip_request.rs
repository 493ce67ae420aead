//! Feeds arbitrary bytes to the OIP v2 inference request reader (JSON header, binary tensor
//! extension). Run with `fuzz/run.sh [SECONDS] oip_request`; an input that crashed it is kept in
//! `fuzz/regressions/oip_request/`, which the test suite replays.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_runtime::fuzzing::oip_request(data));
