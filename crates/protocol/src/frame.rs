//! Length-prefixed frames: every Kafka request and response is a big-endian
//! `int32` size followed by that many bytes.

use bytes::{Buf, Bytes, BytesMut};

/// Why a frame cannot be accepted. Either closes the connection, as Kafka
/// does: nothing sensible can be answered to a stream that lost its framing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The size prefix exceeds `socket.request.max.bytes`.
    #[error("frame of {size} bytes is larger than the maximum of {max} bytes")]
    TooLarge {
        /// Declared size of the frame.
        size: usize,
        /// The configured limit.
        max: usize,
    },
    /// The size prefix is negative.
    #[error("frame size {0} is negative")]
    NegativeSize(i32),
}

/// Splits one complete frame off the front of `buf`.
///
/// Returns `Ok(None)` when `buf` does not yet hold a whole frame: the caller
/// reads more bytes and tries again. The size is checked against `max` as soon
/// as the prefix arrives, before buffering the body, so an oversized request
/// never grows the buffer.
pub fn split_frame(buf: &mut BytesMut, max: usize) -> Result<Option<Bytes>, FrameError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let size = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if size < 0 {
        return Err(FrameError::NegativeSize(size));
    }
    let size = size as usize;
    if size > max {
        return Err(FrameError::TooLarge { size, max });
    }
    if buf.len() < 4 + size {
        buf.reserve(4 + size - buf.len());
        return Ok(None);
    }
    buf.advance(4);
    Ok(Some(buf.split_to(size).freeze()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_for_whole_frames() {
        let mut buf = BytesMut::from(&[0u8, 0, 0, 3, 1, 2][..]);
        assert_eq!(split_frame(&mut buf, 100).unwrap(), None);
        buf.extend_from_slice(&[3, 0, 0]);
        assert_eq!(
            split_frame(&mut buf, 100).unwrap(),
            Some(Bytes::from_static(&[1, 2, 3]))
        );
        assert_eq!(split_frame(&mut buf, 100).unwrap(), None);
        assert_eq!(buf.len(), 2);
    }

    #[test]
    fn rejects_oversized_and_negative_sizes() {
        let mut buf = BytesMut::from(&[0u8, 0, 1, 0][..]);
        assert_eq!(
            split_frame(&mut buf, 255),
            Err(FrameError::TooLarge {
                size: 256,
                max: 255
            })
        );
        let mut buf = BytesMut::from(&[0xffu8, 0xff, 0xff, 0xff][..]);
        assert_eq!(
            split_frame(&mut buf, 255),
            Err(FrameError::NegativeSize(-1))
        );
    }
}
