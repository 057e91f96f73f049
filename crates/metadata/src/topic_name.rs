//! Kafka's rules for topic names, so clients get the same answers they would
//! from Apache Kafka (`org.apache.kafka.common.internals.Topic`).

/// Longest legal topic name: 249 bytes, so that `<topic>-<partition>` plus a
/// delete suffix still fits a 255-byte file name.
pub const MAX_NAME_LENGTH: usize = 249;

/// Checks a topic name, returning Kafka's explanation when it is illegal.
pub fn validate(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("Topic name is illegal, it can't be empty".into());
    }
    if name == "." || name == ".." {
        return Err("Topic name cannot be \".\" or \"..\"".into());
    }
    if name.len() > MAX_NAME_LENGTH {
        return Err(format!(
            "Topic name is illegal, it can't be longer than {MAX_NAME_LENGTH} characters, topic name: {name}"
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return Err(format!(
            "Topic name \"{name}\" is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'"
        ));
    }
    Ok(())
}

/// `.` and `_` collide in metric names, so Kafka refuses a topic whose name
/// differs from an existing one only by those characters.
pub fn unify_collision_chars(name: &str) -> String {
    name.replace('.', "_")
}

/// Whether Kafka treats the topic as internal (hidden from `listTopics` by default).
pub fn is_internal(name: &str) -> bool {
    name == "__consumer_offsets" || name == "__transaction_state"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_rejects_like_kafka() {
        assert!(validate("orders.v1_EU-2").is_ok());
        assert!(validate("").is_err());
        assert!(validate(".").is_err());
        assert!(validate("..").is_err());
        assert!(validate("a b").is_err());
        assert!(validate("ü").is_err());
        assert!(validate(&"x".repeat(249)).is_ok());
        assert!(validate(&"x".repeat(250)).is_err());
        assert_eq!(unify_collision_chars("a.b_c"), "a_b_c");
    }
}
