//! The IDX format of MNIST and Fashion-MNIST (LeCun et al.): a magic number
//! `0x00 0x00 <type> <ndim>`, `ndim` big-endian u32 dimensions, then the data. Read raw or gzip.

use std::io::Read;
use std::path::Path;

use crate::{Error, Result};

/// Refuse to decompress more than this (no IDX file nowt reads comes near it).
const MAX_DECOMPRESSED: u64 = 1 << 30;

/// An unsigned-byte IDX array.
#[derive(Clone, Debug, PartialEq)]
pub struct Idx {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

/// Reads an IDX file, decompressing it if it starts with the gzip magic.
pub fn read_idx(path: &Path) -> Result<Idx> {
    let raw = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    decode_idx(&raw, path)
}

/// Parses the bytes of an IDX file, raw or gzip (`path` is only for messages).
pub fn decode_idx(raw: &[u8], path: &Path) -> Result<Idx> {
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut bytes = Vec::new();
        flate2::read::GzDecoder::new(raw)
            .take(MAX_DECOMPRESSED + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::data(path, format!("corrupt gzip data: {e}")))?;
        if bytes.len() as u64 > MAX_DECOMPRESSED {
            return Err(Error::data(
                path,
                "decompresses to more than 1 GiB; not an IDX file nowt can read",
            ));
        }
        parse_idx(&bytes, path)
    } else {
        parse_idx(raw, path)
    }
}

/// Parses IDX bytes. Every size in the header is checked against the bytes present before
/// anything is allocated.
pub fn parse_idx(bytes: &[u8], path: &Path) -> Result<Idx> {
    if bytes.len() < 4 {
        return Err(Error::data(
            path,
            format!(
                "truncated: {} bytes, too short for an IDX header",
                bytes.len()
            ),
        ));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(Error::data(
            path,
            format!(
                "bad magic {:02x} {:02x} {:02x} {:02x}: not an IDX file",
                bytes[0], bytes[1], bytes[2], bytes[3]
            ),
        ));
    }
    if bytes[2] != 0x08 {
        return Err(Error::data(
            path,
            format!(
                "IDX element type 0x{:02x} is not unsigned byte (0x08)",
                bytes[2]
            ),
        ));
    }
    let ndim = bytes[3] as usize;
    if !(1..=4).contains(&ndim) {
        return Err(Error::data(
            path,
            format!("IDX header declares {ndim} dimensions (expected 1 to 4)"),
        ));
    }
    let header = 4 + 4 * ndim;
    if bytes.len() < header {
        return Err(Error::data(
            path,
            format!("truncated: {} bytes, header needs {header}", bytes.len()),
        ));
    }
    let dims: Vec<usize> = bytes[4..header]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let expected = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    let present = bytes.len() - header;
    match expected {
        None => Err(Error::data(
            path,
            format!("IDX header claims absurd dimensions {dims:?}"),
        )),
        Some(e) if e > present => Err(Error::data(
            path,
            format!(
                "truncated: header dimensions {dims:?} need {e} data bytes, file has {present}"
            ),
        )),
        Some(e) if e < present => Err(Error::data(
            path,
            format!(
                "{} bytes after the data that header dimensions {dims:?} describe",
                present - e
            ),
        )),
        Some(_) => Ok(Idx {
            dims,
            data: bytes[header..].to_vec(),
        }),
    }
}

/// Writes an unsigned-byte IDX file (for tests and tools).
pub fn encode_idx(dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for &d in dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(b: &[u8]) -> Result<Idx> {
        parse_idx(b, Path::new("t.idx"))
    }

    #[test]
    fn round_trips() {
        let data: Vec<u8> = (0..24).collect();
        let idx = parse(&encode_idx(&[2, 3, 4], &data)).unwrap();
        assert_eq!(idx.dims, vec![2, 3, 4]);
        assert_eq!(idx.data, data);
    }

    #[test]
    fn rejects_bad_headers_without_allocating() {
        let msg = |b: &[u8]| parse(b).unwrap_err().to_string();
        assert!(msg(&[0, 0]).contains("too short"));
        assert!(msg(&[1, 2, 8, 1, 0, 0, 0, 0]).contains("bad magic"));
        assert!(msg(&[0, 0, 0x0d, 1, 0, 0, 0, 0]).contains("not unsigned byte"));
        assert!(msg(&[0, 0, 8, 9]).contains("9 dimensions"));
        assert!(msg(&encode_idx(&[3], &[1, 2])).contains("truncated"));
        assert!(msg(&encode_idx(&[1], &[1, 2])).contains("after the data"));
        // 4 × 2³² − 1 per dimension: overflows usize on the product, never allocated.
        let absurd = encode_idx(&[u32::MAX as usize; 4], &[]);
        assert!(msg(&absurd).contains("absurd"));
        let big = encode_idx(&[60000, 28, 28], &[0; 10]);
        assert!(msg(&big).contains("need 47040000 data bytes, file has 10"));
    }
}
