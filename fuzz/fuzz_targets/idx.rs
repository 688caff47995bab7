//! IDX files, raw or gzip: any bytes give a value or an error, never a panic or a huge allocation.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(idx) = nowt::data::idx::decode_idx(data, std::path::Path::new("fuzz.idx")) {
        assert_eq!(idx.dims.iter().product::<usize>(), idx.data.len());
    }
});
