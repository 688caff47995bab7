//! The CIFAR-10/100 binary format, as raw records and as an official `.tar.gz`: any bytes give
//! datasets or an error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nowt::data::cifar_bin::{from_tar_gz_bytes, parse, Variant};

fuzz_target!(|data: &[u8]| {
    let path = std::path::Path::new("fuzz.bin");
    for variant in [Variant::Cifar10, Variant::Cifar100] {
        let _ = parse(data, variant, path);
        let _ = from_tar_gz_bytes(data, path, variant);
    }
});
