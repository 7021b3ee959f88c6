//! The `run` option parsers (`-p`, `-v`, `--memory`, `--restart`,
//! `--route`, `--log-max-size`, a network's `--subnet`) never panic on any
//! string, and a subnet displays as something that parses back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let _ = gvpod::fuzzing::options(s);
    if let Some(shown) = gvpod::fuzzing::cidr(s) {
        assert_eq!(
            gvpod::fuzzing::cidr(&shown).as_deref(),
            Some(shown.as_str()),
            "subnet {s:?} displays as {shown:?}, which does not parse back"
        );
    }
});
