//! Kafka's `ConfigDef` model: what one property is (type, default, validator,
//! importance, documentation, dynamic update mode) and how a string value is
//! parsed and validated into a typed [`ConfigValue`], with Kafka's error
//! messages.

use std::borrow::Cow;
use std::fmt;

use crate::error::ConfigError;

/// Kafka's `ConfigDef.Type`: how a property's string value is interpreted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConfigType {
    /// `true`/`false`, case-insensitive.
    Boolean,
    /// Free text (trimmed).
    String,
    /// 32-bit signed integer.
    Int,
    /// 16-bit signed integer.
    Short,
    /// 64-bit signed integer.
    Long,
    /// 64-bit float.
    Double,
    /// Comma-separated list of strings.
    List,
    /// A Java class name (not loaded by Millrace).
    Class,
    /// A secret; never reported by DescribeConfigs.
    Password,
}

impl ConfigType {
    /// Kafka's upper-case type name, as used in error messages
    /// (`Not a number of type INT`).
    pub fn kafka_name(self) -> &'static str {
        match self {
            ConfigType::Boolean => "BOOLEAN",
            ConfigType::String => "STRING",
            ConfigType::Int => "INT",
            ConfigType::Short => "SHORT",
            ConfigType::Long => "LONG",
            ConfigType::Double => "DOUBLE",
            ConfigType::List => "LIST",
            ConfigType::Class => "CLASS",
            ConfigType::Password => "PASSWORD",
        }
    }

    /// The `ConfigType` id DescribeConfigs (v3+) puts on the wire
    /// (`BOOLEAN`=1 ... `PASSWORD`=9; 0 is UNKNOWN).
    pub fn describe_id(self) -> i8 {
        match self {
            ConfigType::Boolean => 1,
            ConfigType::String => 2,
            ConfigType::Int => 3,
            ConfigType::Short => 4,
            ConfigType::Long => 5,
            ConfigType::Double => 6,
            ConfigType::List => 7,
            ConfigType::Class => 8,
            ConfigType::Password => 9,
        }
    }
}

/// A secret value. `Debug`/`Display` print `[hidden]` like Kafka's
/// `Password.toString`, so secrets do not leak into logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Password(value.into())
    }

    /// The secret itself.
    pub fn value(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[hidden]")
    }
}

impl fmt::Display for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[hidden]")
    }
}

/// A parsed, validated property value.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigValue {
    /// [`ConfigType::Boolean`].
    Boolean(bool),
    /// [`ConfigType::String`].
    String(String),
    /// [`ConfigType::Int`].
    Int(i32),
    /// [`ConfigType::Short`].
    Short(i16),
    /// [`ConfigType::Long`].
    Long(i64),
    /// [`ConfigType::Double`].
    Double(f64),
    /// [`ConfigType::List`].
    List(Vec<String>),
    /// [`ConfigType::Class`].
    Class(String),
    /// [`ConfigType::Password`].
    Password(Password),
}

impl ConfigValue {
    /// The type of this value.
    pub fn config_type(&self) -> ConfigType {
        match self {
            ConfigValue::Boolean(_) => ConfigType::Boolean,
            ConfigValue::String(_) => ConfigType::String,
            ConfigValue::Int(_) => ConfigType::Int,
            ConfigValue::Short(_) => ConfigType::Short,
            ConfigValue::Long(_) => ConfigType::Long,
            ConfigValue::Double(_) => ConfigType::Double,
            ConfigValue::List(_) => ConfigType::List,
            ConfigValue::Class(_) => ConfigType::Class,
            ConfigValue::Password(_) => ConfigType::Password,
        }
    }

    /// The string Kafka's `ConfigDef.convertToString` produces (what
    /// DescribeConfigs reports): lists joined with `,`, doubles in Java's
    /// `Double.toString` form, passwords in clear (callers must hide them).
    pub fn to_kafka_string(&self) -> String {
        match self {
            ConfigValue::Boolean(b) => b.to_string(),
            ConfigValue::String(s) | ConfigValue::Class(s) => s.clone(),
            ConfigValue::Int(v) => v.to_string(),
            ConfigValue::Short(v) => v.to_string(),
            ConfigValue::Long(v) => v.to_string(),
            ConfigValue::Double(v) => java_double_to_string(*v),
            ConfigValue::List(items) => items.join(","),
            ConfigValue::Password(p) => p.value().to_string(),
        }
    }

    /// The value as Java's `toString` prints it inside error messages
    /// (`[a, b]` for lists, `[hidden]` for passwords).
    pub fn java_display(&self) -> String {
        match self {
            ConfigValue::List(items) => format!("[{}]", items.join(", ")),
            ConfigValue::Password(_) => "[hidden]".to_string(),
            other => other.to_kafka_string(),
        }
    }

    /// The boolean, if this is a [`ConfigValue::Boolean`].
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            ConfigValue::Boolean(b) => Some(*b),
            _ => None,
        }
    }

    /// The number, if this is an `Int` or `Short`.
    pub fn as_i32(&self) -> Option<i32> {
        match self {
            ConfigValue::Int(v) => Some(*v),
            ConfigValue::Short(v) => Some(i32::from(*v)),
            _ => None,
        }
    }

    /// The number, if this is a `Short`.
    pub fn as_i16(&self) -> Option<i16> {
        match self {
            ConfigValue::Short(v) => Some(*v),
            _ => None,
        }
    }

    /// The number, widened, if this is an `Int`, `Short` or `Long`.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            ConfigValue::Int(v) => Some(i64::from(*v)),
            ConfigValue::Short(v) => Some(i64::from(*v)),
            ConfigValue::Long(v) => Some(*v),
            _ => None,
        }
    }

    /// The number, if this is a `Double` (integers are widened).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            ConfigValue::Double(v) => Some(*v),
            other => other.as_i64().map(|v| v as f64),
        }
    }

    /// The text, if this is a `String` or `Class` (not a `Password`).
    pub fn as_str(&self) -> Option<&str> {
        match self {
            ConfigValue::String(s) | ConfigValue::Class(s) => Some(s),
            _ => None,
        }
    }

    /// The items, if this is a `List`.
    pub fn as_list(&self) -> Option<&[String]> {
        match self {
            ConfigValue::List(items) => Some(items),
            _ => None,
        }
    }
}

/// Formats a double exactly like Java's `Double.toString` (shortest
/// round-trip digits; plain notation for 1e-3 <= |v| < 1e7, otherwise
/// `d.dddE±n`), because Kafka reports doubles that way.
pub fn java_double_to_string(v: f64) -> String {
    if v.is_nan() {
        return "NaN".to_string();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.to_string();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0.0" } else { "0.0" }.to_string();
    }
    let sign = if v < 0.0 { "-" } else { "" };
    let abs = v.abs();
    // Rust's `{:e}` gives the shortest round-trip digits: "1.2345e-7".
    let sci = format!("{abs:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let (first, rest) = match digits.char_indices().nth(1) {
        Some((i, _)) => digits.split_at(i),
        None => (digits.as_str(), ""),
    };
    if (1e-3..1e7).contains(&abs) {
        if exp >= 0 {
            let int_len = (exp + 1) as usize;
            let mut int_part = digits.clone();
            let frac_part = if int_part.len() > int_len {
                int_part.split_off(int_len)
            } else {
                while int_part.len() < int_len {
                    int_part.push('0');
                }
                "0".to_string()
            };
            format!("{sign}{int_part}.{frac_part}")
        } else {
            let zeros = "0".repeat((-exp - 1) as usize);
            format!("{sign}0.{zeros}{digits}")
        }
    } else {
        let rest = if rest.is_empty() { "0" } else { rest };
        format!("{sign}{first}.{rest}E{exp}")
    }
}

/// Kafka's `ConfigDef.Importance`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Importance {
    /// `HIGH`.
    High,
    /// `MEDIUM`.
    Medium,
    /// `LOW`.
    Low,
}

/// When a broker config may change without a restart ("Update Mode" in
/// Kafka's broker config docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UpdateMode {
    /// Needs a broker restart; rejected by dynamic updates.
    ReadOnly,
    /// Can be updated for one broker only (`--entity-name <id>`).
    PerBroker,
    /// Can be updated per broker or cluster-wide (`--entity-default`).
    ClusterWide,
}

impl UpdateMode {
    /// Kafka's documentation spelling: `read-only`, `per-broker`,
    /// `cluster-wide`.
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateMode::ReadOnly => "read-only",
            UpdateMode::PerBroker => "per-broker",
            UpdateMode::ClusterWide => "cluster-wide",
        }
    }
}

/// A custom validation function: gets the property name and the parsed
/// value, returns Kafka's reason text on failure.
pub type CustomCheck = fn(name: &str, value: &ConfigValue) -> Result<(), String>;

/// Kafka's `ConfigDef.Validator` kinds.
#[derive(Clone, Copy)]
pub enum Validator {
    /// No validation beyond parsing.
    None,
    /// `ConfigDef.Range`: numeric bounds, inclusive (`atLeast`, `between`).
    Range {
        /// Inclusive lower bound.
        min: Option<i64>,
        /// Inclusive upper bound.
        max: Option<i64>,
    },
    /// `ValidString.in` / `CaseInsensitiveValidString.in`.
    OneOf {
        /// Allowed values, in Kafka's order.
        values: &'static [&'static str],
        /// Whether case is ignored.
        case_insensitive: bool,
    },
    /// `ValidList.in`: every list item must be one of `values`.
    ListOneOf {
        /// Allowed items, in Kafka's order.
        values: &'static [&'static str],
        /// Whether case is ignored.
        case_insensitive: bool,
    },
    /// `NonEmptyString`.
    NonEmptyString,
    /// Any other rule.
    Custom {
        /// What the rule accepts (shown as "Valid Values" in docs).
        description: &'static str,
        /// The check itself.
        check: CustomCheck,
    },
}

impl fmt::Debug for Validator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Validator({})", self.describe())
    }
}

impl Validator {
    /// `atLeast(min)`.
    pub const fn at_least(min: i64) -> Self {
        Validator::Range {
            min: Some(min),
            max: None,
        }
    }

    /// `between(min, max)`.
    pub const fn between(min: i64, max: i64) -> Self {
        Validator::Range {
            min: Some(min),
            max: Some(max),
        }
    }

    /// `ValidString.in(values)` (case-sensitive).
    pub const fn one_of(values: &'static [&'static str]) -> Self {
        Validator::OneOf {
            values,
            case_insensitive: false,
        }
    }

    /// `CaseInsensitiveValidString.in(values)`.
    pub const fn one_of_ignore_case(values: &'static [&'static str]) -> Self {
        Validator::OneOf {
            values,
            case_insensitive: true,
        }
    }

    /// `ValidList.in(values)`.
    pub const fn list_of(values: &'static [&'static str]) -> Self {
        Validator::ListOneOf {
            values,
            case_insensitive: false,
        }
    }

    /// The "Valid Values" text Kafka's docs show for this validator.
    pub fn describe(&self) -> String {
        match self {
            Validator::None => String::new(),
            Validator::Range { min, max } => match (min, max) {
                (Some(a), Some(b)) => format!("[{a},...,{b}]"),
                (Some(a), None) => format!("[{a},...]"),
                (None, Some(b)) => format!("[...,{b}]"),
                (None, None) => "[...]".to_string(),
            },
            Validator::OneOf {
                values,
                case_insensitive,
            }
            | Validator::ListOneOf {
                values,
                case_insensitive,
            } => {
                if *case_insensitive {
                    format!("(case insensitive) [{}]", values.join(", "))
                } else {
                    format!("[{}]", values.join(", "))
                }
            }
            Validator::NonEmptyString => "non-empty string".to_string(),
            Validator::Custom { description, .. } => description.to_string(),
        }
    }

    /// Runs the validator on a parsed value; the error uses Kafka's words.
    pub fn ensure_valid(&self, name: &str, value: &ConfigValue) -> Result<(), ConfigError> {
        match self {
            Validator::None => Ok(()),
            Validator::Range { min, max } => {
                let too_low;
                let too_high;
                if let Some(n) = value.as_i64() {
                    too_low = min.is_some_and(|m| n < m);
                    too_high = max.is_some_and(|m| n > m);
                } else if let Some(x) = value.as_f64() {
                    too_low = min.is_some_and(|m| x < m as f64);
                    too_high = max.is_some_and(|m| x > m as f64);
                } else {
                    return Ok(());
                }
                if too_low {
                    Err(ConfigError::invalid_value(
                        name,
                        value.java_display(),
                        format!("Value must be at least {}", min.unwrap_or_default()),
                    ))
                } else if too_high {
                    Err(ConfigError::invalid_value(
                        name,
                        value.java_display(),
                        format!("Value must be no more than {}", max.unwrap_or_default()),
                    ))
                } else {
                    Ok(())
                }
            }
            Validator::OneOf {
                values,
                case_insensitive,
            } => {
                let s = value
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| value.to_kafka_string());
                check_one_of(name, &s, values, *case_insensitive)
            }
            Validator::ListOneOf {
                values,
                case_insensitive,
            } => match value.as_list() {
                Some(items) => items
                    .iter()
                    .try_for_each(|item| check_one_of(name, item, values, *case_insensitive)),
                None => Ok(()),
            },
            Validator::NonEmptyString => match value.as_str() {
                Some("") => Err(ConfigError::invalid_value(
                    name,
                    "",
                    "String must be non-empty",
                )),
                _ => Ok(()),
            },
            Validator::Custom { check, .. } => check(name, value)
                .map_err(|reason| ConfigError::invalid_value(name, value.java_display(), reason)),
        }
    }
}

fn check_one_of(
    name: &str,
    s: &str,
    values: &[&str],
    case_insensitive: bool,
) -> Result<(), ConfigError> {
    let ok = if case_insensitive {
        values.iter().any(|v| v.eq_ignore_ascii_case(s))
    } else {
        values.contains(&s)
    };
    if ok {
        Ok(())
    } else if case_insensitive {
        Err(ConfigError::invalid_value(
            name,
            s,
            format!(
                "String must be one of (case insensitive): {}",
                values.join(", ")
            ),
        ))
    } else {
        Err(ConfigError::invalid_value(
            name,
            s,
            format!("String must be one of: {}", values.join(", ")),
        ))
    }
}

/// The description of one Kafka property: the unit every table in this crate
/// (broker configs, topic configs) is made of.
#[derive(Debug, Clone)]
pub struct ConfigDef {
    /// Property name, e.g. `num.partitions`.
    pub name: &'static str,
    /// How the value is parsed.
    pub config_type: ConfigType,
    /// Millrace's default, as DescribeConfigs shows it; `None` is Kafka's
    /// `null`. For broker configs MSK's default wins over Kafka's.
    pub default: Option<Cow<'static, str>>,
    /// Apache Kafka 3.7's own default (differs from `default` only where the
    /// MSK default configuration sets the property).
    pub kafka_default: Option<&'static str>,
    /// Value validation beyond parsing.
    pub validator: Validator,
    /// Kafka's importance rating.
    pub importance: Importance,
    /// One-line documentation.
    pub documentation: &'static str,
    /// Broker configs: Kafka's dynamic update mode. `None` for topic configs.
    pub update_mode: Option<UpdateMode>,
    /// Topic configs: the broker configs supplying the default, most
    /// preferred first (Kafka's `ALL_TOPIC_CONFIG_SYNONYMS`). Broker configs:
    /// the synonym group resolved together (Kafka's `brokerConfigSynonyms`,
    /// e.g. `log.retention.{ms,minutes,hours}`); empty when there is none.
    pub synonyms: &'static [&'static str],
}

impl ConfigDef {
    /// A definition with no default, no validator and no update mode; use
    /// the builder methods to fill in the rest.
    pub const fn new(
        name: &'static str,
        config_type: ConfigType,
        importance: Importance,
        documentation: &'static str,
    ) -> Self {
        ConfigDef {
            name,
            config_type,
            default: None,
            kafka_default: None,
            validator: Validator::None,
            importance,
            documentation,
            update_mode: None,
            synonyms: &[],
        }
    }

    /// Sets Kafka's default (also Millrace's until MSK overrides it).
    pub fn default_value_of(mut self, default: &'static str) -> Self {
        self.default = Some(Cow::Borrowed(default));
        self.kafka_default = Some(default);
        self
    }

    /// Sets the validator.
    pub fn validate(mut self, validator: Validator) -> Self {
        self.validator = validator;
        self
    }

    /// Sets the dynamic update mode.
    pub fn mode(mut self, mode: UpdateMode) -> Self {
        self.update_mode = Some(mode);
        self
    }

    /// Sets the synonyms.
    pub fn with_synonyms(mut self, synonyms: &'static [&'static str]) -> Self {
        self.synonyms = synonyms;
        self
    }

    /// The default as a string (`None` = Kafka's `null`).
    pub fn default_value(&self) -> Option<&str> {
        self.default.as_deref()
    }

    /// Whether DescribeConfigs must hide the value (passwords).
    pub fn is_sensitive(&self) -> bool {
        self.config_type == ConfigType::Password
    }

    /// Whether a dynamic update may change this broker config.
    pub fn is_dynamic(&self) -> bool {
        matches!(
            self.update_mode,
            Some(UpdateMode::PerBroker | UpdateMode::ClusterWide)
        )
    }

    /// Parses and validates a string value (Kafka's `parseType` followed by
    /// `ensureValid`). Errors name the property and give Kafka's reason, e.g.
    /// `Invalid value abc for configuration num.partitions: Not a number of type INT`.
    pub fn parse(&self, raw: &str) -> Result<ConfigValue, ConfigError> {
        let value = parse_type(self.name, raw, self.config_type)?;
        self.validator.ensure_valid(self.name, &value)?;
        Ok(value)
    }

    /// The parsed default (`None` for `null`).
    pub fn parsed_default(&self) -> Result<Option<ConfigValue>, ConfigError> {
        self.default_value().map(|d| self.parse(d)).transpose()
    }
}

/// Kafka's `ConfigDef.parseType` for a string input.
pub fn parse_type(name: &str, raw: &str, ty: ConfigType) -> Result<ConfigValue, ConfigError> {
    let trimmed = raw.trim();
    let not_a_number = || {
        ConfigError::invalid_value(
            name,
            raw,
            format!("Not a number of type {}", ty.kafka_name()),
        )
    };
    Ok(match ty {
        ConfigType::Boolean => {
            if trimmed.eq_ignore_ascii_case("true") {
                ConfigValue::Boolean(true)
            } else if trimmed.eq_ignore_ascii_case("false") {
                ConfigValue::Boolean(false)
            } else {
                return Err(ConfigError::invalid_value(
                    name,
                    raw,
                    "Expected value to be either true or false",
                ));
            }
        }
        ConfigType::String => ConfigValue::String(trimmed.to_string()),
        ConfigType::Password => ConfigValue::Password(Password::new(trimmed)),
        ConfigType::Class => ConfigValue::Class(trimmed.to_string()),
        ConfigType::Int => ConfigValue::Int(trimmed.parse().map_err(|_| not_a_number())?),
        ConfigType::Short => ConfigValue::Short(trimmed.parse().map_err(|_| not_a_number())?),
        ConfigType::Long => ConfigValue::Long(trimmed.parse().map_err(|_| not_a_number())?),
        ConfigType::Double => {
            ConfigValue::Double(parse_java_double(trimmed).ok_or_else(not_a_number)?)
        }
        ConfigType::List => ConfigValue::List(split_kafka_list(trimmed)),
    })
}

/// Kafka's list parsing: empty string is the empty list, otherwise split on
/// `\s*,\s*` keeping empty items (`a,,b` has three items).
pub fn split_kafka_list(s: &str) -> Vec<String> {
    let trimmed = s.trim();
    if trimmed.is_empty() {
        return Vec::new();
    }
    trimmed
        .split(',')
        .map(|item| item.trim().to_string())
        .collect()
}

/// `Double.parseDouble` for the forms that matter: decimal and exponent
/// notation, optional `d`/`f` suffix, `NaN`, `Infinity`.
fn parse_java_double(s: &str) -> Option<f64> {
    match s {
        "NaN" | "+NaN" | "-NaN" => return Some(f64::NAN),
        "Infinity" | "+Infinity" => return Some(f64::INFINITY),
        "-Infinity" => return Some(f64::NEG_INFINITY),
        _ => {}
    }
    let body = s.strip_suffix(['d', 'D', 'f', 'F']).unwrap_or(s);
    let valid = !body.is_empty()
        && body
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
        && body.chars().any(|c| c.is_ascii_digit());
    if !valid {
        return None;
    }
    body.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(ty: ConfigType, v: Validator) -> ConfigDef {
        ConfigDef::new("num.partitions", ty, Importance::Medium, "doc").validate(v)
    }

    #[test]
    fn parse_errors_use_kafka_words() {
        let d = def(ConfigType::Int, Validator::at_least(1));
        assert_eq!(
            d.parse("abc").unwrap_err().to_string(),
            "Invalid value abc for configuration num.partitions: Not a number of type INT"
        );
        assert_eq!(
            d.parse("0").unwrap_err().to_string(),
            "Invalid value 0 for configuration num.partitions: Value must be at least 1"
        );
        assert_eq!(d.parse(" 7 ").unwrap(), ConfigValue::Int(7));
        assert_eq!(d.parse("+7").unwrap(), ConfigValue::Int(7));
        assert!(d.parse("2147483648").is_err());
        let b = def(ConfigType::Boolean, Validator::None);
        assert_eq!(b.parse("TRUE").unwrap(), ConfigValue::Boolean(true));
        assert_eq!(
            b.parse("yes").unwrap_err().to_string(),
            "Invalid value yes for configuration num.partitions: Expected value to be either true or false"
        );
        let s = def(ConfigType::Short, Validator::None);
        assert_eq!(
            s.parse("40000").unwrap_err().to_string(),
            "Invalid value 40000 for configuration num.partitions: Not a number of type SHORT"
        );
        let l = def(ConfigType::Long, Validator::None);
        assert_eq!(
            l.parse("9223372036854775807").unwrap(),
            ConfigValue::Long(i64::MAX)
        );
        assert!(l.parse("1.5").is_err());
        let dbl = def(ConfigType::Double, Validator::None);
        assert_eq!(dbl.parse("0.5").unwrap(), ConfigValue::Double(0.5));
        assert_eq!(dbl.parse("1e3").unwrap(), ConfigValue::Double(1000.0));
        assert_eq!(dbl.parse("2d").unwrap(), ConfigValue::Double(2.0));
        assert_eq!(
            dbl.parse("inf").unwrap_err().to_string(),
            "Invalid value inf for configuration num.partitions: Not a number of type DOUBLE"
        );
    }

    #[test]
    fn range_validator() {
        let d = def(ConfigType::Double, Validator::between(0, 1));
        assert!(d.parse("0").is_ok());
        assert!(d.parse("1").is_ok());
        assert_eq!(
            d.parse("1.5").unwrap_err().to_string(),
            "Invalid value 1.5 for configuration num.partitions: Value must be no more than 1"
        );
        assert_eq!(
            d.parse("-0.1").unwrap_err().to_string(),
            "Invalid value -0.1 for configuration num.partitions: Value must be at least 0"
        );
        let l = def(ConfigType::Long, Validator::at_least(-2));
        assert!(l.parse("-2").is_ok());
        assert!(l.parse("-3").is_err());
        assert_eq!(Validator::between(0, 1).describe(), "[0,...,1]");
        assert_eq!(Validator::at_least(1).describe(), "[1,...]");
    }

    #[test]
    fn one_of_validators() {
        static V: &[&str] = &["CreateTime", "LogAppendTime"];
        let cs = def(ConfigType::String, Validator::one_of(V));
        assert!(cs.parse("CreateTime").is_ok());
        assert_eq!(
            cs.parse("createtime").unwrap_err().to_string(),
            "Invalid value createtime for configuration num.partitions: String must be one of: CreateTime, LogAppendTime"
        );
        let ci = def(ConfigType::String, Validator::one_of_ignore_case(V));
        assert!(ci.parse("createtime").is_ok());
        assert_eq!(
            ci.parse("x").unwrap_err().to_string(),
            "Invalid value x for configuration num.partitions: String must be one of (case insensitive): CreateTime, LogAppendTime"
        );
    }

    #[test]
    fn list_validator() {
        static V: &[&str] = &["compact", "delete"];
        let d = def(ConfigType::List, Validator::list_of(V));
        assert_eq!(
            d.parse(" compact , delete ").unwrap(),
            ConfigValue::List(vec!["compact".into(), "delete".into()])
        );
        assert_eq!(d.parse("").unwrap(), ConfigValue::List(vec![]));
        assert_eq!(
            d.parse("delete,foo").unwrap_err().to_string(),
            "Invalid value foo for configuration num.partitions: String must be one of: compact, delete"
        );
        // Trailing comma yields an empty item, which is not valid.
        assert!(d.parse("delete,").is_err());
    }

    #[test]
    fn non_empty_and_custom_validators() {
        let d = def(ConfigType::String, Validator::NonEmptyString);
        assert!(d.parse("x").is_ok());
        assert_eq!(
            d.parse("  ").unwrap_err().to_string(),
            "Invalid value  for configuration num.partitions: String must be non-empty"
        );
        fn even(_: &str, v: &ConfigValue) -> Result<(), String> {
            match v.as_i64() {
                Some(n) if n % 2 == 0 => Ok(()),
                _ => Err("Value must be even".to_string()),
            }
        }
        let c = def(
            ConfigType::Int,
            Validator::Custom {
                description: "even numbers",
                check: even,
            },
        );
        assert!(c.parse("4").is_ok());
        assert_eq!(
            c.parse("3").unwrap_err().to_string(),
            "Invalid value 3 for configuration num.partitions: Value must be even"
        );
    }

    #[test]
    fn password_is_hidden() {
        let d = def(ConfigType::Password, Validator::None);
        let v = d.parse("s3cret").unwrap();
        assert_eq!(format!("{v:?}"), "Password([hidden])");
        assert_eq!(v.java_display(), "[hidden]");
        assert_eq!(v.to_kafka_string(), "s3cret");
        assert!(d.is_sensitive());
    }

    #[test]
    fn java_doubles() {
        assert_eq!(java_double_to_string(0.5), "0.5");
        assert_eq!(java_double_to_string(1.0), "1.0");
        assert_eq!(java_double_to_string(0.9), "0.9");
        assert_eq!(java_double_to_string(100.0), "100.0");
        assert_eq!(java_double_to_string(1234567.0), "1234567.0");
        assert_eq!(java_double_to_string(1.0e7), "1.0E7");
        assert_eq!(java_double_to_string(0.001), "0.001");
        assert_eq!(java_double_to_string(0.0001), "1.0E-4");
        assert_eq!(java_double_to_string(-2.5), "-2.5");
        assert_eq!(java_double_to_string(f64::MAX), "1.7976931348623157E308");
        assert_eq!(java_double_to_string(0.0), "0.0");
        assert_eq!(java_double_to_string(12.25), "12.25");
    }
}
