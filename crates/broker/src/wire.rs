//! Small conversions between Millrace values and the codec's wire types.

use kafka_protocol::messages::{BrokerId, TopicName};
use kafka_protocol::protocol::StrBytes;

/// An owned string as the codec's string type.
pub fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// A topic name as the codec's newtype.
pub fn topic_name(s: &str) -> TopicName {
    TopicName(str_bytes(s))
}

/// A broker id as the codec's newtype.
pub fn broker_id(id: i32) -> BrokerId {
    BrokerId(id)
}

/// Milliseconds since the Unix epoch: Kafka's clock for timestamps.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
