//! Image folders as `.tar.gz` (tar, gzip and image decoding behind nowt's size checks): any
//! bytes give datasets or an error, never a panic — decoded at load time, or kept encoded and
//! decoded per batch with the ImageNet transforms (inputs of odd length).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let size = (data.len() % 2) * 8;
    let path = std::path::Path::new("fuzz.tar.gz");
    if let Ok((train, _)) = nowt::data::image_folder::from_tar_gz_bytes(data, path, size) {
        let idx: Vec<usize> = (0..train.len().min(4)).collect();
        let _ = train.batch(&idx);
        let _ = train.train_batch(&idx, true, &mut nowt::rng(0, 0));
    }
});
