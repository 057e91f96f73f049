//! Kafka's text form of a UUID (`Uuid.toString()` in Kafka's Java code):
//! the 16 bytes in URL-safe base64 without padding, 22 characters. Topic ids
//! in `partition.metadata`, cluster ids in `meta.properties` and KIP-848
//! member ids all use it.

const BASE64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Encodes 16 UUID bytes as Kafka prints them.
pub fn encode(bytes: &[u8; 16]) -> String {
    let mut out = String::with_capacity(22);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(BASE64URL[((n >> (18 - 6 * i)) & 0x3f) as usize] as char);
        }
    }
    out
}

/// Decodes Kafka's text form back to the 16 bytes; `None` if it is not one.
pub fn decode(text: &str) -> Option<[u8; 16]> {
    if text.len() != 22 {
        return None;
    }
    let mut acc: u32 = 0;
    let mut bits = 0;
    let mut out = Vec::with_capacity(16);
    for c in text.bytes() {
        let v = BASE64URL.iter().position(|&x| x == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_kafkas_form_and_round_trips() {
        assert_eq!(encode(&[0; 16]), "AAAAAAAAAAAAAAAAAAAAAA");
        let bytes: [u8; 16] = *b"\x01\x23\x45\x67\x89\xab\xcd\xef\xfe\xdc\xba\x98\x76\x54\x32\x10";
        let text = encode(&bytes);
        assert_eq!(text.len(), 22);
        assert!(text.bytes().all(|c| BASE64URL.contains(&c)));
        assert_eq!(decode(&text), Some(bytes));
        assert_eq!(decode("short"), None);
    }
}
