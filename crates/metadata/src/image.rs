//! The applied metadata state, immutable once published.
//!
//! An image is cheap to share (`Arc`) and never changes: the controller builds
//! the next image by applying records to a copy and publishing it, so a
//! request handler reads one consistent view for its whole lifetime.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use uuid::Uuid;

use crate::records::{ConfigResourceType, Endpoint, MetadataRecord};

/// A registered broker.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerRegistration {
    /// `node.id`.
    pub id: i32,
    /// Changes per process start.
    pub incarnation_id: Uuid,
    /// Advertised listeners.
    pub endpoints: Vec<Endpoint>,
    /// `broker.rack`.
    pub rack: Option<String>,
}

impl BrokerRegistration {
    /// The endpoint of `listener`, which is what a client connected through
    /// that listener must be told.
    pub fn endpoint(&self, listener: &str) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| e.name == listener)
    }
}

/// Replica assignment and leadership of one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionRegistration {
    /// Replica broker ids, preferred leader first.
    pub replicas: Vec<i32>,
    /// In-sync replicas.
    pub isr: Vec<i32>,
    /// Leader id or -1.
    pub leader: i32,
    /// Leader epoch.
    pub leader_epoch: i32,
    /// Partition epoch.
    pub partition_epoch: i32,
}

/// A topic and its partitions.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicImage {
    /// Name.
    pub name: String,
    /// Id.
    pub id: Uuid,
    /// Partitions by index.
    pub partitions: BTreeMap<i32, PartitionRegistration>,
}

/// Config overrides by resource: what AlterConfigs set and DescribeConfigs reports.
pub type ConfigMap = BTreeMap<String, String>;

/// The whole metadata state at one log offset.
#[derive(Debug, Clone, Default)]
pub struct MetadataImage {
    /// Offset of the last record applied, -1 for an empty log.
    pub offset: i64,
    /// Registered brokers by id.
    pub brokers: BTreeMap<i32, BrokerRegistration>,
    /// Topics by id.
    pub topics_by_id: HashMap<Uuid, Arc<TopicImage>>,
    /// Topic ids by name.
    pub topic_ids_by_name: HashMap<String, Uuid>,
    /// Topic config overrides by topic name.
    pub topic_configs: HashMap<String, ConfigMap>,
    /// Dynamic broker configs by broker id; the key `""` is the cluster default.
    pub broker_configs: HashMap<String, ConfigMap>,
    /// First producer id not yet allocated to any broker.
    pub next_producer_id: i64,
}

impl MetadataImage {
    /// The image of an empty log.
    pub fn empty() -> Self {
        MetadataImage {
            offset: -1,
            ..Default::default()
        }
    }

    /// Looks a topic up by name.
    pub fn topic(&self, name: &str) -> Option<&Arc<TopicImage>> {
        self.topic_ids_by_name
            .get(name)
            .and_then(|id| self.topics_by_id.get(id))
    }

    /// Looks a topic up by id.
    pub fn topic_by_id(&self, id: &Uuid) -> Option<&Arc<TopicImage>> {
        self.topics_by_id.get(id)
    }

    /// Topics sorted by name, for stable responses.
    pub fn topics_sorted(&self) -> Vec<&Arc<TopicImage>> {
        let mut topics: Vec<_> = self.topics_by_id.values().collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        topics
    }

    /// Config overrides of a topic (empty when none).
    pub fn topic_config(&self, name: &str) -> ConfigMap {
        self.topic_configs.get(name).cloned().unwrap_or_default()
    }

    /// Dynamic configs of a broker id, or of the cluster default for `""`.
    pub fn broker_config(&self, resource_name: &str) -> ConfigMap {
        self.broker_configs
            .get(resource_name)
            .cloned()
            .unwrap_or_default()
    }

    /// Applies one record at `offset`. Records that refer to something that
    /// does not exist are ignored, as KRaft's image builders do, so replay
    /// never fails half-way.
    pub fn apply(&mut self, offset: i64, record: &MetadataRecord) {
        self.offset = offset;
        match record {
            MetadataRecord::ProducerIds {
                next_producer_id, ..
            } => {
                self.next_producer_id = self.next_producer_id.max(*next_producer_id);
            }
            MetadataRecord::RegisterBroker {
                broker_id,
                incarnation_id,
                endpoints,
                rack,
            } => {
                self.brokers.insert(
                    *broker_id,
                    BrokerRegistration {
                        id: *broker_id,
                        incarnation_id: *incarnation_id,
                        endpoints: endpoints.clone(),
                        rack: rack.clone(),
                    },
                );
            }
            MetadataRecord::Topic { name, topic_id } => {
                self.topic_ids_by_name.insert(name.clone(), *topic_id);
                self.topics_by_id.insert(
                    *topic_id,
                    Arc::new(TopicImage {
                        name: name.clone(),
                        id: *topic_id,
                        partitions: BTreeMap::new(),
                    }),
                );
            }
            MetadataRecord::Partition {
                topic_id,
                partition_id,
                replicas,
                isr,
                leader,
                leader_epoch,
                partition_epoch,
            } => {
                if let Some(topic) = self.topics_by_id.get_mut(topic_id) {
                    Arc::make_mut(topic).partitions.insert(
                        *partition_id,
                        PartitionRegistration {
                            replicas: replicas.clone(),
                            isr: isr.clone(),
                            leader: *leader,
                            leader_epoch: *leader_epoch,
                            partition_epoch: *partition_epoch,
                        },
                    );
                }
            }
            MetadataRecord::RemoveTopic { topic_id } => {
                if let Some(topic) = self.topics_by_id.remove(topic_id) {
                    self.topic_ids_by_name.remove(&topic.name);
                    self.topic_configs.remove(&topic.name);
                }
            }
            MetadataRecord::Config {
                resource_type,
                resource_name,
                name,
                value,
            } => {
                let map = match resource_type {
                    ConfigResourceType::Topic => &mut self.topic_configs,
                    ConfigResourceType::Broker => &mut self.broker_configs,
                };
                let entry = map.entry(resource_name.clone()).or_default();
                match value {
                    Some(v) => {
                        entry.insert(name.clone(), v.clone());
                    }
                    None => {
                        entry.remove(name);
                    }
                }
                if entry.is_empty() {
                    map.remove(resource_name);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applies_topics_partitions_configs_and_removal() {
        let mut image = MetadataImage::empty();
        let id = Uuid::new_v4();
        image.apply(
            0,
            &MetadataRecord::Topic {
                name: "t".into(),
                topic_id: id,
            },
        );
        image.apply(
            1,
            &MetadataRecord::Partition {
                topic_id: id,
                partition_id: 0,
                replicas: vec![1],
                isr: vec![1],
                leader: 1,
                leader_epoch: 0,
                partition_epoch: 0,
            },
        );
        image.apply(
            2,
            &MetadataRecord::Config {
                resource_type: ConfigResourceType::Topic,
                resource_name: "t".into(),
                name: "retention.ms".into(),
                value: Some("1000".into()),
            },
        );
        assert_eq!(image.topic("t").unwrap().partitions.len(), 1);
        assert_eq!(image.topic_config("t").get("retention.ms").unwrap(), "1000");
        image.apply(3, &MetadataRecord::RemoveTopic { topic_id: id });
        assert!(image.topic("t").is_none());
        assert!(image.topic_config("t").is_empty());
        assert_eq!(image.offset, 3);
    }
}
