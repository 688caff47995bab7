//! Image folders as `.tar.gz` (tar, gzip and image decoding behind nowt's size checks): any
//! bytes give datasets or an error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = nowt::data::image_folder::from_tar_gz_bytes(data, std::path::Path::new("fuzz.tar.gz"));
});
