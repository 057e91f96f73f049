//! The one error type of the crate.
//!
//! Messages follow Apache Kafka's wording (`ConfigException`,
//! `InvalidConfigurationException`, `DynamicBrokerConfig`) so that they can
//! be returned to Kafka clients verbatim in `error_message` fields.

/// Why a configuration could not be parsed, validated or applied.
///
/// `Display` renders Kafka's message text; [`ConfigError::property`] names the
/// offending property when there is a single one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `java.util.Properties` text could not be parsed (only a malformed
    /// `\uXXXX` escape can cause this).
    #[error("line {line}: {message}")]
    Properties {
        /// 1-based physical line number of the offending text.
        line: usize,
        /// What was wrong, in Java's words.
        message: String,
    },

    /// A value failed to parse or validate: Kafka's
    /// `ConfigException(name, value, message)`.
    #[error("Invalid value {value} for configuration {name}{}", reason_suffix(.reason))]
    InvalidValue {
        /// The property name.
        name: String,
        /// The offending value as Kafka prints it.
        value: String,
        /// Kafka's reason text, e.g. `Value must be at least 1`.
        reason: Option<String>,
    },

    /// A topic config name that Kafka does not know (`CreateTopics`,
    /// `AlterConfigs` on a topic).
    #[error("Unknown topic config name: {0}")]
    UnknownTopicConfig(String),

    /// A dynamic broker config name that Millrace does not know.
    #[error("Unknown broker config name: {0}")]
    UnknownBrokerConfig(String),

    /// A dynamic update touched read-only broker configs.
    #[error("Cannot update these configs dynamically: {}", scala_set(.0))]
    NotDynamic(Vec<String>),

    /// A cluster-wide (`<default>`) dynamic update touched per-broker configs.
    #[error("Cannot update these configs at default cluster level, broker id must be specified: {}", scala_set(.0))]
    PerBrokerOnly(Vec<String>),

    /// A dynamic update used a security config without the listener prefix.
    #[error("These security configs can be dynamically updated only per-listener using the listener prefix: {}", scala_set(.0))]
    ListenerPrefixRequired(Vec<String>),

    /// Any other rule violation (`ConfigException(message)`), optionally tied
    /// to one property.
    #[error("{message}")]
    Invalid {
        /// The property the rule is about, when there is one.
        name: Option<String>,
        /// Kafka's message text.
        message: String,
    },
}

impl ConfigError {
    /// The single property this error is about, if any.
    pub fn property(&self) -> Option<&str> {
        match self {
            ConfigError::InvalidValue { name, .. } => Some(name),
            ConfigError::UnknownTopicConfig(name) | ConfigError::UnknownBrokerConfig(name) => {
                Some(name)
            }
            ConfigError::NotDynamic(names)
            | ConfigError::PerBrokerOnly(names)
            | ConfigError::ListenerPrefixRequired(names) => match names.as_slice() {
                [one] => Some(one),
                _ => None,
            },
            ConfigError::Invalid { name, .. } => name.as_deref(),
            ConfigError::Properties { .. } => None,
        }
    }

    /// Shorthand for [`ConfigError::InvalidValue`].
    pub(crate) fn invalid_value(
        name: impl Into<String>,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        ConfigError::InvalidValue {
            name: name.into(),
            value: value.into(),
            reason: Some(reason.into()),
        }
    }

    /// Shorthand for [`ConfigError::Invalid`] about one property.
    pub(crate) fn invalid(name: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            name: Some(name.into()),
            message: message.into(),
        }
    }
}

fn reason_suffix(reason: &Option<String>) -> String {
    match reason {
        Some(r) => format!(": {r}"),
        None => String::new(),
    }
}

/// Renders names the way Scala prints a `Set[String]`: `Set(a, b)` (sorted
/// here, so messages are deterministic).
pub(crate) fn scala_set(names: &[String]) -> String {
    let mut sorted: Vec<&str> = names.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    sorted.dedup();
    format!("Set({})", sorted.join(", "))
}
