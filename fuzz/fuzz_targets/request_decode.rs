//! A request frame's payload as the broker sees it after the size prefix:
//! the header is parsed with `parse_request_header`, then the body is
//! decoded with the codec for the API and version the header names, as
//! `handlers::run` does. Nothing may panic, abort or allocate without bound.
//!
//! The body is also decoded at every other version of the same API, since
//! a mismatched version is what a buggy client sends.

#![no_main]

use bytes::Bytes;
use kafka_protocol::messages::RequestKind;
use libfuzzer_sys::fuzz_target;
use millrace_protocol::header::parse_request_header;

fuzz_target!(|data: &[u8]| {
    let mut frame = Bytes::copy_from_slice(data);
    let Ok(header) = parse_request_header(&mut frame) else {
        return;
    };
    let mut body = frame.clone();
    let _ = RequestKind::decode(header.api_key, &mut body, header.api_version);
    let range = header.api_key.valid_versions();
    for version in range.min..=range.max {
        if version != header.api_version {
            let mut body = frame.clone();
            let _ = RequestKind::decode(header.api_key, &mut body, version);
        }
    }
});
