//! Where the broker meets `millrace-config`: config validation for the
//! controller, topic settings resolution, and DescribeConfigs entries.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use millrace_config::{
    describe_broker, describe_broker_default, describe_topic as describe_topic_entries,
    resolve_broker_config_name, topic_config_def, validate_dynamic_update, validate_topic_configs,
    BrokerConfig, ConfigType, DescribeConfigEntry, TopicConfig,
};
use millrace_metadata::controller::ConfigValidator;
use millrace_metadata::records::ConfigResourceType;
use millrace_metadata::{ApiError, MetadataImage};
use millrace_protocol::ErrorCode;
use millrace_storage::LogConfig;

use crate::broker::Broker;
use crate::settings::BrokerSettings;
use crate::topic_settings::TopicSettings;

/// Validates config changes for the controller with Kafka's rules.
pub struct MillraceConfigValidator {
    static_config: Arc<BrokerConfig>,
}

impl MillraceConfigValidator {
    /// A validator over the broker's static configuration.
    pub fn new(static_config: Arc<BrokerConfig>) -> Self {
        MillraceConfigValidator { static_config }
    }
}

fn invalid_config(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorCode::InvalidConfig, e.to_string())
}

impl ConfigValidator for MillraceConfigValidator {
    fn validate_topic(
        &self,
        _topic: &str,
        configs: &BTreeMap<String, String>,
    ) -> Result<(), ApiError> {
        let entries: Vec<(String, Option<String>)> = configs
            .iter()
            .map(|(k, v)| (k.clone(), Some(v.clone())))
            .collect();
        validate_topic_configs(&entries).map_err(invalid_config)
    }

    fn validate_broker(
        &self,
        resource_name: &str,
        configs: &BTreeMap<String, String>,
    ) -> Result<(), ApiError> {
        let entries: Vec<(String, Option<String>)> = configs
            .iter()
            .map(|(k, v)| (k.clone(), Some(v.clone())))
            .collect();
        let per_broker = !resource_name.is_empty();
        validate_dynamic_update(&entries, per_broker).map_err(invalid_config)?;
        // Cross-config rules: the result must still be a valid configuration.
        let empty = BTreeMap::new();
        let (default, own) = if per_broker {
            (&empty, configs)
        } else {
            (configs, &empty)
        };
        self.static_config
            .with_dynamic(default, own)
            .map(|_| ())
            .map_err(invalid_config)
    }

    fn is_list(&self, resource_type: ConfigResourceType, name: &str) -> bool {
        let def = match resource_type {
            ConfigResourceType::Topic => topic_config_def(name),
            ConfigResourceType::Broker => resolve_broker_config_name(name),
        };
        def.is_some_and(|d| d.config_type == ConfigType::List)
    }

    fn list_default(&self, resource_type: ConfigResourceType, name: &str) -> Option<String> {
        let def = match resource_type {
            ConfigResourceType::Topic => topic_config_def(name),
            ConfigResourceType::Broker => resolve_broker_config_name(name),
        };
        def.and_then(|d| d.default_value()).map(str::to_string)
    }
}

/// The dynamic broker configs that apply to `settings`' node.
fn dynamic_layers(
    settings: &BrokerSettings,
    image: &MetadataImage,
) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    (
        image.broker_config(""),
        image.broker_config(&settings.node_id.to_string()),
    )
}

/// Settings of one topic (`""` or an unknown topic: the broker defaults).
pub fn topic_settings(
    settings: &BrokerSettings,
    image: &MetadataImage,
    topic: &str,
) -> TopicSettings {
    let (default, own) = dynamic_layers(settings, image);
    let overrides = image.topic_config(topic);
    match TopicConfig::resolve(&overrides, &settings.model, &default, &own) {
        Ok(config) => TopicSettings::from_topic_config(&config),
        Err(e) => {
            tracing::error!(topic, error = %e, "topic configs no longer resolve; using broker defaults");
            TopicSettings::from_topic_config(settings.model.log_defaults())
        }
    }
}

/// Settings of every topic in the image.
pub fn all_topic_settings(
    settings: &BrokerSettings,
    image: &MetadataImage,
) -> HashMap<String, Arc<TopicSettings>> {
    image
        .topic_ids_by_name
        .keys()
        .map(|name| {
            (
                name.clone(),
                Arc::new(topic_settings(settings, image, name)),
            )
        })
        .collect()
}

/// The log config of a topic without overrides.
pub fn default_log_config(settings: &BrokerSettings) -> LogConfig {
    TopicSettings::from_topic_config(settings.model.log_defaults()).log
}

/// DescribeConfigs entries of a topic with the given overrides.
pub fn describe_topic(
    broker: &Broker,
    overrides: &BTreeMap<String, String>,
    names: Option<&[String]>,
) -> Vec<DescribeConfigEntry> {
    let settings = broker.config();
    let image = broker.image();
    let (default, own) = dynamic_layers(&settings, &image);
    describe_topic_entries(overrides, broker.static_config(), &default, &own, names).unwrap_or_else(
        |e| {
            tracing::error!(error = %e, "cannot describe topic configs");
            Vec::new()
        },
    )
}

/// DescribeConfigs entries of this broker (`per_broker`) or of the cluster
/// default broker resource.
pub fn describe_broker_configs(
    broker: &Broker,
    per_broker: bool,
    names: Option<&[String]>,
) -> Vec<DescribeConfigEntry> {
    let settings = broker.config();
    let image = broker.image();
    let (default, own) = dynamic_layers(&settings, &image);
    if !per_broker {
        return describe_broker_default(&default, names);
    }
    describe_broker(broker.static_config(), &default, &own, names).unwrap_or_else(|e| {
        tracing::error!(error = %e, "cannot describe broker configs");
        Vec::new()
    })
}
