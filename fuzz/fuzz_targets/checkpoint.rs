//! Checkpoints: any bytes give a state or an error, never a panic or an allocation beyond the
//! file's own size.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = nowt::checkpoint::from_bytes(data, std::path::Path::new("fuzz.safetensors"));
});
