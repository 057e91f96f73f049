//! Record batches as the produce path and log recovery read them: framing
//! with `BatchIter`, `verify_crc`, decompression and record iteration
//! (`records()`), and header decoding. Nothing may panic, abort or
//! allocate without bound.
//!
//! The first byte picks how the rest is used:
//! - bit 0 clear: the bytes are a run of batches, read as they are (CRC
//!   failures do not stop the walk, so records of bad batches are parsed
//!   too, as a corrupt segment would be);
//! - bit 0 set: the bytes are a records section wrapped in a well-formed
//!   batch header with a correct CRC, so record parsing is reached on every
//!   input; bits 1-3 pick the codec and bit 4 whether the section is first
//!   compressed with it (valid stream) or used as the compressed stream.

#![no_main]

use libfuzzer_sys::fuzz_target;
use millrace_protocol::records::{compress, BatchHeader, BatchIter, Compression, BATCH_HEADER_LEN};

fn walk(bytes: &[u8]) {
    let mut iter = BatchIter::new(bytes);
    for batch in iter.by_ref() {
        let Ok(batch) = batch else { break };
        let _ = batch.verify_crc();
        let header = batch.header;
        let _ = (header.last_offset(), header.next_offset(), header.size());
        let _ = header.compression();
        if let Ok(payload) = batch.records() {
            for record in payload.iter() {
                match record {
                    Ok(record) => {
                        let _ = record.header_pairs();
                    }
                    Err(_) => break,
                }
            }
        }
    }
    assert!(iter.position() <= bytes.len());
}

fn wrap(codec: Compression, count: i32, section: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(BATCH_HEADER_LEN + section.len());
    out.extend_from_slice(&0i64.to_be_bytes()); // base offset
    out.extend_from_slice(&((BATCH_HEADER_LEN - 12 + section.len()) as i32).to_be_bytes());
    out.extend_from_slice(&(-1i32).to_be_bytes()); // leader epoch
    out.push(2); // magic
    out.extend_from_slice(&[0; 4]); // crc, set below
    out.extend_from_slice(&codec.id().to_be_bytes()); // attributes
    out.extend_from_slice(&(count - 1).max(0).to_be_bytes()); // last offset delta
    out.extend_from_slice(&0i64.to_be_bytes()); // base timestamp
    out.extend_from_slice(&0i64.to_be_bytes()); // max timestamp
    out.extend_from_slice(&(-1i64).to_be_bytes()); // producer id
    out.extend_from_slice(&(-1i16).to_be_bytes()); // producer epoch
    out.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    out.extend_from_slice(&count.to_be_bytes());
    out.extend_from_slice(section);
    let crc = crc32c::crc32c(&out[21..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        walk(rest);
        return;
    }
    let codec = match (mode >> 1) & 7 {
        0 | 5 => Compression::None,
        1 | 6 => Compression::Gzip,
        2 | 7 => Compression::Snappy,
        3 => Compression::Lz4,
        _ => Compression::Zstd,
    };
    let Some((&count, section)) = rest.split_first() else {
        return;
    };
    let count = i32::from(count);
    let section = if mode & 16 != 0 {
        match compress(codec, section) {
            Ok(compressed) => compressed,
            Err(_) => return,
        }
    } else {
        section.to_vec()
    };
    let batch = wrap(codec, count, &section);
    let header = BatchHeader::parse(&batch).expect("a well-formed header");
    assert_eq!(header.size(), batch.len());
    let parsed = BatchIter::new(&batch)
        .next()
        .expect("one batch")
        .expect("framed");
    parsed.verify_crc().expect("the CRC was just computed");
    walk(&batch);
});
