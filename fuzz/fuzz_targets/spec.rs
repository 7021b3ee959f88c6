//! Pod-spec YAML (`gvpod up -f A -f B`): parsing, merging and validation
//! never panic. The input is one to three files separated by a line
//! `--- next file ---`, so merging is fuzzed too.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let files: Vec<&str> = s.splitn(3, "\n--- next file ---\n").collect();
    let _ = gvpod::fuzzing::spec(&files);
});
