//! Feeds arbitrary bytes to the reading of OCI manifests and image indexes a registry pull does.
//! Run with `fuzz/run.sh [SECONDS] oci_manifest`; an input that crashed it is kept in
//! `fuzz/regressions/oci_manifest/`, which the test suite replays.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_runtime::fuzzing::oci_manifest(data));
