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
    /// Fenced by the controller (its session expired, or it shut down):
    /// it leads nothing, is in no ISR and is left out of Metadata responses
    /// until it heartbeats again.
    pub fenced: bool,
}

impl BrokerRegistration {
    /// The endpoint of `listener`, which is what a client connected through
    /// that listener must be told.
    pub fn endpoint(&self, listener: &str) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| e.name == listener)
    }
}

/// Replica assignment and leadership of one partition.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    /// Replicas a reassignment is adding (in `replicas` already, as
    /// followers); empty when none is in progress.
    pub adding_replicas: Vec<i32>,
    /// Replicas a reassignment will remove once the target is in sync
    /// (still in `replicas` until then).
    pub removing_replicas: Vec<i32>,
}

impl PartitionRegistration {
    /// Whether a reassignment is in progress (KIP-455).
    pub fn is_reassigning(&self) -> bool {
        !self.adding_replicas.is_empty() || !self.removing_replicas.is_empty()
    }

    /// The replica set a reassignment moves to: `replicas` without the
    /// ones being removed (`replicas` itself when none is in progress).
    pub fn target_replicas(&self) -> Vec<i32> {
        self.replicas
            .iter()
            .copied()
            .filter(|r| !self.removing_replicas.contains(r))
            .collect()
    }
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

    /// Whether `broker_id` is registered and not fenced: only such brokers
    /// may lead or be in an ISR.
    pub fn is_live(&self, broker_id: i32) -> bool {
        self.brokers.get(&broker_id).is_some_and(|b| !b.fenced)
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

    /// The records that rebuild this image from [`MetadataImage::empty`], for
    /// snapshots of a replicated metadata log: a node that receives them
    /// instead of the log prefix they replace must end up with the same
    /// state. Parents come before children (brokers, topics, then partitions
    /// and configs) because `apply` ignores records about unknown topics; the
    /// output is sorted so equal images give equal snapshots. The image's
    /// `offset` is not a record: the snapshot carries it alongside.
    pub fn to_records(&self) -> Vec<MetadataRecord> {
        let mut records = Vec::new();
        for broker in self.brokers.values() {
            records.push(MetadataRecord::RegisterBroker {
                broker_id: broker.id,
                incarnation_id: broker.incarnation_id,
                endpoints: broker.endpoints.clone(),
                rack: broker.rack.clone(),
            });
            if broker.fenced {
                records.push(MetadataRecord::BrokerFencing {
                    broker_id: broker.id,
                    fenced: true,
                });
            }
        }
        for topic in self.topics_sorted() {
            records.push(MetadataRecord::Topic {
                name: topic.name.clone(),
                topic_id: topic.id,
            });
            for (&partition_id, partition) in &topic.partitions {
                records.push(MetadataRecord::Partition {
                    topic_id: topic.id,
                    partition_id,
                    replicas: partition.replicas.clone(),
                    isr: partition.isr.clone(),
                    leader: partition.leader,
                    leader_epoch: partition.leader_epoch,
                    partition_epoch: partition.partition_epoch,
                });
                if partition.is_reassigning() {
                    records.push(MetadataRecord::PartitionReassignment {
                        topic_id: topic.id,
                        partition_id,
                        adding_replicas: partition.adding_replicas.clone(),
                        removing_replicas: partition.removing_replicas.clone(),
                    });
                }
            }
        }
        let configs = [
            (ConfigResourceType::Topic, &self.topic_configs),
            (ConfigResourceType::Broker, &self.broker_configs),
        ];
        for (resource_type, by_resource) in configs {
            let sorted: BTreeMap<&String, &ConfigMap> = by_resource.iter().collect();
            for (resource_name, map) in sorted {
                for (name, value) in map {
                    records.push(MetadataRecord::Config {
                        resource_type,
                        resource_name: resource_name.clone(),
                        name: name.clone(),
                        value: Some(value.clone()),
                    });
                }
            }
        }
        if self.next_producer_id != 0 {
            // Which broker received the last block is not part of the image;
            // -1 names none, and `apply` only keeps the maximum id anyway.
            records.push(MetadataRecord::ProducerIds {
                broker_id: -1,
                next_producer_id: self.next_producer_id,
            });
        }
        records
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
                // A re-registering broker stays fenced until its first
                // heartbeat unfences it (and re-elects it where needed).
                let fenced = self.brokers.get(broker_id).is_some_and(|b| b.fenced);
                self.brokers.insert(
                    *broker_id,
                    BrokerRegistration {
                        id: *broker_id,
                        incarnation_id: *incarnation_id,
                        endpoints: endpoints.clone(),
                        rack: rack.clone(),
                        fenced,
                    },
                );
            }
            MetadataRecord::BrokerFencing { broker_id, fenced } => {
                if let Some(b) = self.brokers.get_mut(broker_id) {
                    b.fenced = *fenced;
                }
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
                    let partitions = &mut Arc::make_mut(topic).partitions;
                    // An ongoing reassignment survives records that only
                    // change leadership or the ISR.
                    let (adding, removing) = partitions
                        .get(partition_id)
                        .map(|p| {
                            let kept = |list: &[i32]| -> Vec<i32> {
                                list.iter()
                                    .copied()
                                    .filter(|r| replicas.contains(r))
                                    .collect()
                            };
                            (kept(&p.adding_replicas), kept(&p.removing_replicas))
                        })
                        .unwrap_or_default();
                    partitions.insert(
                        *partition_id,
                        PartitionRegistration {
                            replicas: replicas.clone(),
                            isr: isr.clone(),
                            leader: *leader,
                            leader_epoch: *leader_epoch,
                            partition_epoch: *partition_epoch,
                            adding_replicas: adding,
                            removing_replicas: removing,
                        },
                    );
                }
            }
            MetadataRecord::PartitionReassignment {
                topic_id,
                partition_id,
                adding_replicas,
                removing_replicas,
            } => {
                if let Some(topic) = self.topics_by_id.get_mut(topic_id) {
                    if let Some(p) = Arc::make_mut(topic).partitions.get_mut(partition_id) {
                        p.adding_replicas = adding_replicas.clone();
                        p.removing_replicas = removing_replicas.clone();
                    }
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

    fn assert_same_image(a: &MetadataImage, b: &MetadataImage) {
        assert_eq!(a.offset, b.offset);
        assert_eq!(a.brokers, b.brokers);
        assert_eq!(a.topics_by_id, b.topics_by_id);
        assert_eq!(a.topic_ids_by_name, b.topic_ids_by_name);
        assert_eq!(a.topic_configs, b.topic_configs);
        assert_eq!(a.broker_configs, b.broker_configs);
        assert_eq!(a.next_producer_id, b.next_producer_id);
    }

    #[test]
    fn image_to_records_rebuilds_the_same_image() {
        let mut image = MetadataImage::empty();
        let kept = Uuid::new_v4();
        let removed = Uuid::new_v4();
        let history = vec![
            MetadataRecord::RegisterBroker {
                broker_id: 2,
                incarnation_id: Uuid::new_v4(),
                endpoints: vec![Endpoint {
                    name: "PLAINTEXT".into(),
                    host: "b2".into(),
                    port: 9092,
                    security_protocol: 0,
                }],
                rack: Some("use1-az1".into()),
            },
            MetadataRecord::RegisterBroker {
                broker_id: 1,
                incarnation_id: Uuid::new_v4(),
                endpoints: vec![],
                rack: None,
            },
            MetadataRecord::Topic {
                name: "kept".into(),
                topic_id: kept,
            },
            MetadataRecord::Topic {
                name: "removed".into(),
                topic_id: removed,
            },
            MetadataRecord::Partition {
                topic_id: kept,
                partition_id: 1,
                replicas: vec![2, 1],
                isr: vec![2],
                leader: 2,
                leader_epoch: 3,
                partition_epoch: 5,
            },
            MetadataRecord::Partition {
                topic_id: kept,
                partition_id: 0,
                replicas: vec![1, 2],
                isr: vec![1, 2],
                leader: 1,
                leader_epoch: 0,
                partition_epoch: 0,
            },
            MetadataRecord::PartitionReassignment {
                topic_id: kept,
                partition_id: 1,
                adding_replicas: vec![1],
                removing_replicas: vec![],
            },
            MetadataRecord::Config {
                resource_type: ConfigResourceType::Topic,
                resource_name: "kept".into(),
                name: "retention.ms".into(),
                value: Some("1000".into()),
            },
            MetadataRecord::Config {
                resource_type: ConfigResourceType::Topic,
                resource_name: "removed".into(),
                name: "retention.ms".into(),
                value: Some("5".into()),
            },
            MetadataRecord::Config {
                resource_type: ConfigResourceType::Broker,
                resource_name: String::new(),
                name: "log.retention.ms".into(),
                value: Some("7".into()),
            },
            MetadataRecord::Config {
                resource_type: ConfigResourceType::Broker,
                resource_name: "2".into(),
                name: "log.cleaner.threads".into(),
                value: Some("2".into()),
            },
            MetadataRecord::ProducerIds {
                broker_id: 1,
                next_producer_id: 2000,
            },
            MetadataRecord::RemoveTopic { topic_id: removed },
        ];
        for (offset, record) in history.iter().enumerate() {
            image.apply(offset as i64, record);
        }
        assert_eq!(
            image.topic("kept").unwrap().partitions[&1].adding_replicas,
            vec![1],
            "a reassignment is part of the image"
        );
        let records = image.to_records();
        assert!(records
            .iter()
            .any(|r| matches!(r, MetadataRecord::PartitionReassignment { .. })));
        assert!(!records
            .iter()
            .any(|r| matches!(r, MetadataRecord::RemoveTopic { .. })));
        let mut rebuilt = MetadataImage::empty();
        for (offset, record) in records.iter().enumerate() {
            rebuilt.apply(offset as i64, record);
        }
        rebuilt.offset = image.offset;
        assert_same_image(&image, &rebuilt);
        assert_eq!(rebuilt.to_records(), records, "snapshots are deterministic");
        assert!(MetadataImage::empty().to_records().is_empty());
    }

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
