//! Config files: any text gives a validated config or an error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(cfg) = toml::from_str::<nowt::config::TrainConfig>(text) {
            let _ = cfg.validate();
        }
    }
});
