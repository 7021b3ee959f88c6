//! Image references: parsing never panics, and what a valid reference
//! displays as parses again to the same display (`Reference`'s `Display`
//! is what gvpod stores and shows, and reads back).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(shown) = gvpod::fuzzing::reference(s) {
        let again = gvpod::fuzzing::reference(&shown)
            .unwrap_or_else(|| panic!("{s:?} displays as {shown:?}, which does not parse"));
        assert_eq!(again, shown, "{s:?}: the display form does not round-trip");
    }
});
