#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_runtime::fuzzing::pipeline_yaml(data));
