//! The controller: the single writer of cluster metadata.
//!
//! Each operation validates its input against the current image with Kafka's
//! rules and error codes, turns the accepted parts into records, appends them
//! to the metadata log as one atomic batch, applies them to a copy of the
//! image and publishes that copy. Subscribers (the broker's partition manager,
//! request handlers) see images in log order through a `watch` channel.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use millrace_protocol::ErrorCode;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use uuid::Uuid;

use crate::error::ApiError;
use crate::image::{MetadataImage, PartitionRegistration};
use crate::metadata_log::MetadataLogError;
use crate::placement::{self, PlacementBroker, PlacementError};
use crate::records::{ConfigResourceType, Endpoint, MetadataRecord};
use crate::store::{LocalMetadataStore, MetadataStore};
use crate::topic_name;

/// KRaft refuses requests that would create more partitions than this in one
/// go (`MAX_RECORDS_PER_USER_OP`), with POLICY_VIOLATION.
pub const MAX_PARTITIONS_PER_REQUEST: i64 = 10_000;

/// Config rules the controller applies but does not own: they live in
/// `millrace-config`, which the broker plugs in here.
pub trait ConfigValidator: Send + Sync {
    /// Checks a topic's complete set of overrides after a change.
    fn validate_topic(
        &self,
        topic: &str,
        configs: &BTreeMap<String, String>,
    ) -> Result<(), ApiError>;
    /// Checks the complete dynamic overrides of a broker (`""` = cluster default).
    fn validate_broker(
        &self,
        resource_name: &str,
        configs: &BTreeMap<String, String>,
    ) -> Result<(), ApiError>;
    /// Whether a config is a comma-separated list (APPEND/SUBTRACT apply to those only).
    fn is_list(&self, resource_type: ConfigResourceType, name: &str) -> bool;
    /// The schema default of a list config: APPEND and SUBTRACT start from it
    /// when the resource has no value of its own (Kafka's `getParts`).
    fn list_default(&self, _resource_type: ConfigResourceType, _name: &str) -> Option<String> {
        None
    }
}

/// Defaults the controller needs when a request leaves a value out.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// `num.partitions`.
    pub default_num_partitions: i32,
    /// `default.replication.factor`.
    pub default_replication_factor: i16,
    /// `delete.topic.enable`.
    pub delete_topic_enable: bool,
}

/// A topic to create, as the CreateTopics request describes it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CreateTopicSpec {
    /// Topic name.
    pub name: String,
    /// Partition count, -1 for `num.partitions`.
    pub num_partitions: i32,
    /// Replication factor, -1 for `default.replication.factor`.
    pub replication_factor: i16,
    /// Explicit replica lists by partition (then both counts must be -1).
    pub assignments: BTreeMap<i32, Vec<i32>>,
    /// Config overrides; a `None` value is refused as Kafka does.
    pub configs: Vec<(String, Option<String>)>,
}

/// What CreateTopics reports for a created (or validated) topic.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreatedTopic {
    /// New topic id (nil when only validated).
    pub topic_id: Uuid,
    /// Partition count.
    pub num_partitions: i32,
    /// Replication factor.
    pub replication_factor: i16,
    /// The overrides stored.
    pub configs: BTreeMap<String, String>,
}

/// A topic named by name or by id, as DeleteTopics allows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum TopicRef {
    /// By name.
    Name(String),
    /// By id (DeleteTopics v6+).
    Id(Uuid),
}

/// One config operation of IncrementalAlterConfigs (or a legacy set).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfigOp {
    /// Set the value.
    Set(String),
    /// Remove the override.
    Delete,
    /// Add to a list config.
    Append(String),
    /// Remove from a list config.
    Subtract(String),
}

/// Config changes to one resource.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConfigChange {
    /// Topic or broker.
    pub resource_type: ConfigResourceType,
    /// Topic name, broker id or `""`.
    pub resource_name: String,
    /// Operations in request order.
    pub ops: Vec<(String, ConfigOp)>,
    /// Legacy AlterConfigs: the given set replaces every existing override.
    pub replace_all: bool,
}

/// A topic DeleteTopics removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletedTopic {
    /// Its name.
    pub name: String,
    /// Its id.
    pub id: Uuid,
}

/// One topic of a CreatePartitions request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartitionGrowth {
    /// The topic to grow.
    pub topic: String,
    /// The new total partition count.
    pub count: i32,
    /// Replica lists for the new partitions, if given.
    pub assignments: Option<Vec<Vec<i32>>>,
}

/// An ISR change a partition leader asks for (AlterPartition).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlterPartitionSpec {
    /// The topic.
    pub topic_id: Uuid,
    /// The partition.
    pub partition: i32,
    /// The broker asking: must be the leader.
    pub leader_id: i32,
    /// The leader epoch it leads in.
    pub leader_epoch: i32,
    /// The partition epoch its view is based on.
    pub partition_epoch: i32,
    /// The ISR it wants.
    pub new_isr: Vec<i32>,
}

/// Result of a successful write: the offset after which the change is visible.
pub type CommitOffset = i64;

pub(crate) struct State {
    /// The image the current operation validates against: refreshed from
    /// the store when the operation takes the lock and after it commits.
    pub(crate) image: Arc<MetadataImage>,
    pub(crate) config: ControllerConfig,
}

/// The metadata controller for this node.
pub struct Controller {
    /// Serialises operations, so each validates against the image its
    /// predecessor produced.
    state: Mutex<State>,
    store: Arc<dyn MetadataStore>,
    validator: Arc<dyn ConfigValidator>,
    /// When each broker last heartbeated to this controller. Not
    /// replicated: a controller that becomes active starts every session
    /// afresh, as Kafka's `BrokerHeartbeatManager` does.
    heartbeats: Mutex<HashMap<i32, Instant>>,
    /// Whether the last session check ran as the active controller.
    active: AtomicBool,
}

impl Controller {
    /// Opens the local metadata log under `metadata_dir` (a one-node
    /// cluster), replays it into an image and returns the controller.
    pub fn open(
        metadata_dir: &Path,
        config: ControllerConfig,
        validator: Arc<dyn ConfigValidator>,
    ) -> Result<Arc<Controller>, MetadataLogError> {
        let store = Arc::new(LocalMetadataStore::open(metadata_dir)?);
        Ok(Controller::with_store(store, config, validator))
    }

    /// A controller over any [`MetadataStore`] (the Raft quorum in a
    /// cluster).
    pub fn with_store(
        store: Arc<dyn MetadataStore>,
        config: ControllerConfig,
        validator: Arc<dyn ConfigValidator>,
    ) -> Arc<Controller> {
        Arc::new(Controller {
            state: Mutex::new(State {
                image: store.image(),
                config,
            }),
            store,
            validator,
            heartbeats: Mutex::new(HashMap::new()),
            active: AtomicBool::new(false),
        })
    }

    /// Takes the operation lock with the latest committed image.
    pub(crate) fn lock(&self) -> parking_lot::MutexGuard<'_, State> {
        let mut state = self.state.lock();
        state.image = match self.store.image_for_update() {
            Ok(image) => image,
            // The append that follows fails the same way and says why.
            Err(_) => self.store.image(),
        };
        state
    }

    /// The store this controller appends to.
    pub(crate) fn store(&self) -> &dyn MetadataStore {
        self.store.as_ref()
    }

    /// The latest published image.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.store.image()
    }

    /// A receiver that sees every image published from now on.
    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.store.subscribe()
    }

    /// Replaces the defaults (after a dynamic config change).
    pub fn update_config(&self, config: ControllerConfig) {
        self.state.lock().config = config;
    }

    /// A broker's heartbeat: renews its session, and unfences it if it was
    /// fenced, electing it leader of the partitions left without one whose
    /// ISR names it. Returns the commit offset when metadata changed.
    pub(crate) fn broker_heartbeat_local(
        &self,
        broker_id: i32,
    ) -> Result<Option<CommitOffset>, ApiError> {
        self.heartbeats.lock().insert(broker_id, Instant::now());
        let mut state = self.lock();
        let Some(broker) = state.image.brokers.get(&broker_id) else {
            return Err(ApiError::new(
                ErrorCode::StaleBrokerEpoch,
                format!("broker {broker_id} is not registered"),
            ));
        };
        if !broker.fenced {
            return Ok(None);
        }
        let mut records = vec![MetadataRecord::BrokerFencing {
            broker_id,
            fenced: false,
        }];
        for topic in state.image.topics_by_id.values() {
            for (&index, p) in &topic.partitions {
                if p.leader == -1 && p.isr.contains(&broker_id) {
                    records.push(partition_record(
                        topic.id,
                        index,
                        PartitionRegistration {
                            leader: broker_id,
                            leader_epoch: p.leader_epoch + 1,
                            partition_epoch: p.partition_epoch + 1,
                            ..p.clone()
                        },
                    ));
                }
            }
        }
        tracing::info!(broker_id, "broker unfenced");
        self.commit(&mut state, records).map(Some)
    }

    /// Fences the brokers whose last heartbeat is older than
    /// `session_timeout` (`broker.session.timeout.ms`): their leaderships
    /// move to another live ISR member (or, with none, the partition has no
    /// leader until one returns; `unclean` allows any live replica), and
    /// they leave every ISR. Returns the brokers fenced. Only the active
    /// controller fences (elsewhere this does nothing), so every node can
    /// run the same periodic check.
    pub fn fence_expired_brokers(
        &self,
        session_timeout: Duration,
        unclean: bool,
    ) -> Result<Vec<i32>, ApiError> {
        if !self.store.is_active() {
            self.active.store(false, Ordering::SeqCst);
            return Ok(Vec::new());
        }
        if !self.active.swap(true, Ordering::SeqCst) {
            // Newly active: sessions heard by an earlier stint as leader are
            // stale, so every broker gets a full session from now.
            self.heartbeats.lock().clear();
        }
        let now = Instant::now();
        let mut state = self.lock();
        let expired: Vec<i32> = {
            let mut heartbeats = self.heartbeats.lock();
            state
                .image
                .brokers
                .values()
                .filter(|b| !b.fenced)
                .filter(|b| {
                    // A broker this controller never heard from gets a full
                    // session from now.
                    let last = *heartbeats.entry(b.id).or_insert(now);
                    now.duration_since(last) > session_timeout
                })
                .map(|b| b.id)
                .collect()
        };
        if expired.is_empty() {
            return Ok(expired);
        }
        let mut image = (*state.image).clone();
        let mut records = Vec::new();
        for &broker_id in &expired {
            tracing::warn!(broker_id, "broker session expired: fencing it");
            records.extend(fence(&mut image, broker_id, unclean, true));
        }
        self.commit(&mut state, records)?;
        Ok(expired)
    }

    /// Controlled shutdown: before `broker_id` stops, its leaderships move
    /// to other live ISR members (a partition with none keeps its leader, so
    /// a single broker restarts without an epoch change), it leaves the ISRs
    /// it follows in, and it is fenced.
    pub(crate) fn controlled_shutdown_local(
        &self,
        broker_id: i32,
    ) -> Result<CommitOffset, ApiError> {
        let mut state = self.lock();
        if !state.image.brokers.contains_key(&broker_id) {
            return Ok(state.image.offset);
        }
        let mut image = (*state.image).clone();
        let records = fence(&mut image, broker_id, false, false);
        self.heartbeats.lock().remove(&broker_id);
        self.commit(&mut state, records)
    }

    /// Records a broker's registration (at every start, with a new incarnation).
    pub(crate) fn register_broker_local(
        &self,
        broker_id: i32,
        endpoints: Vec<Endpoint>,
        rack: Option<String>,
    ) -> Result<CommitOffset, ApiError> {
        let mut state = self.lock();
        let record = MetadataRecord::RegisterBroker {
            broker_id,
            incarnation_id: Uuid::new_v4(),
            endpoints,
            rack,
        };
        self.commit(&mut state, vec![record])
    }

    /// Hands `broker_id` the next `block_size` producer ids (Kafka's
    /// AllocateProducerIds, KIP-730) and returns the first; the block is
    /// committed to the metadata log before it is returned.
    pub(crate) fn allocate_producer_ids_local(
        &self,
        broker_id: i32,
        block_size: i64,
    ) -> Result<i64, ApiError> {
        let mut state = self.lock();
        let first = state.image.next_producer_id;
        let record = MetadataRecord::ProducerIds {
            broker_id,
            next_producer_id: first + block_size,
        };
        self.commit(&mut state, vec![record])?;
        Ok(first)
    }

    /// AlterPartition (KIP-497): the leader of a partition changes its ISR
    /// (a follower fell behind or caught up). Checked as Kafka's controller
    /// does: a stale leader epoch is FENCED_LEADER_EPOCH, a stale partition
    /// epoch INVALID_UPDATE_VERSION, an ISR that is not a subset of the
    /// replicas or lacks the leader INVALID_REQUEST, an unregistered broker
    /// INELIGIBLE_REPLICA. Returns the committed registration.
    pub(crate) fn alter_partition_local(
        &self,
        change: AlterPartitionSpec,
    ) -> Result<(PartitionRegistration, CommitOffset), ApiError> {
        let mut state = self.lock();
        let topic = state
            .image
            .topic_by_id(&change.topic_id)
            .ok_or_else(|| ApiError::code(ErrorCode::UnknownTopicId))?;
        let current = topic
            .partitions
            .get(&change.partition)
            .cloned()
            .ok_or_else(|| ApiError::code(ErrorCode::UnknownTopicOrPartition))?;
        if change.leader_epoch < current.leader_epoch {
            return Err(ApiError::code(ErrorCode::FencedLeaderEpoch));
        }
        if change.leader_epoch > current.leader_epoch {
            return Err(ApiError::code(ErrorCode::UnknownLeaderEpoch));
        }
        if change.leader_id != current.leader {
            return Err(ApiError::new(
                ErrorCode::InvalidRequest,
                format!("broker {} is not the leader", change.leader_id),
            ));
        }
        if change.partition_epoch != current.partition_epoch {
            return Err(ApiError::code(ErrorCode::InvalidUpdateVersion));
        }
        if !change.new_isr.contains(&change.leader_id)
            || change.new_isr.iter().any(|r| !current.replicas.contains(r))
        {
            return Err(ApiError::new(
                ErrorCode::InvalidRequest,
                "the ISR must be a subset of the replicas and contain the leader",
            ));
        }
        if change.new_isr.iter().any(|&r| !state.image.is_live(r)) {
            return Err(ApiError::code(ErrorCode::IneligibleReplica));
        }
        let registration = PartitionRegistration {
            isr: change.new_isr.clone(),
            partition_epoch: current.partition_epoch + 1,
            ..current
        };
        let record = MetadataRecord::Partition {
            topic_id: change.topic_id,
            partition_id: change.partition,
            replicas: registration.replicas.clone(),
            isr: registration.isr.clone(),
            leader: registration.leader,
            leader_epoch: registration.leader_epoch,
            partition_epoch: registration.partition_epoch,
        };
        let offset = self.commit(&mut state, vec![record])?;
        let (registration, offset) = self.complete_reassignment(
            &mut state,
            change.topic_id,
            change.partition,
            registration,
            offset,
        )?;
        Ok((registration, offset))
    }

    /// CreateTopics. Returns one result per spec, in order, and the commit
    /// offset the created topics become visible at.
    pub(crate) fn create_topics_local(
        &self,
        specs: Vec<CreateTopicSpec>,
        validate_only: bool,
    ) -> (Vec<Result<CreatedTopic, ApiError>>, CommitOffset) {
        let mut state = self.lock();
        let mut seen = HashSet::new();
        let duplicates: HashSet<String> = specs
            .iter()
            .filter(|s| !seen.insert(s.name.clone()))
            .map(|s| s.name.clone())
            .collect();
        let requested_partitions: i64 = specs
            .iter()
            .map(|s| {
                if s.assignments.is_empty() {
                    i64::from(if s.num_partitions == -1 {
                        state.config.default_num_partitions
                    } else {
                        s.num_partitions.max(0)
                    })
                } else {
                    s.assignments.len() as i64
                }
            })
            .sum();
        let mut records = Vec::new();
        let mut results = Vec::with_capacity(specs.len());
        let mut names_in_batch: HashSet<String> = HashSet::new();
        for spec in specs {
            let result = if duplicates.contains(&spec.name) {
                Err(ApiError::new(
                    ErrorCode::InvalidRequest,
                    "Found multiple entries for this topic.",
                ))
            } else if requested_partitions > MAX_PARTITIONS_PER_REQUEST {
                Err(ApiError::new(
                    ErrorCode::PolicyViolation,
                    "Unable to perform excessively large batch operation.",
                ))
            } else {
                self.plan_topic(&state, &spec, &names_in_batch)
                    .map(|(created, topic_records)| {
                        names_in_batch.insert(spec.name.clone());
                        records.extend(topic_records);
                        created
                    })
            };
            results.push(result);
        }
        if validate_only || records.is_empty() {
            for created in results.iter_mut().flatten() {
                if validate_only {
                    created.topic_id = Uuid::nil();
                }
            }
            return (results, state.image.offset);
        }
        self.commit_batch(&mut state, records, results)
    }

    fn plan_topic(
        &self,
        state: &State,
        spec: &CreateTopicSpec,
        names_in_batch: &HashSet<String>,
    ) -> Result<(CreatedTopic, Vec<MetadataRecord>), ApiError> {
        let image = &state.image;
        topic_name::validate(&spec.name)
            .map_err(|m| ApiError::new(ErrorCode::InvalidTopicException, m))?;
        if image.topic(&spec.name).is_some() || names_in_batch.contains(&spec.name) {
            return Err(ApiError::new(
                ErrorCode::TopicAlreadyExists,
                format!("Topic '{}' already exists.", spec.name),
            ));
        }
        let unified = topic_name::unify_collision_chars(&spec.name);
        if let Some(existing) = image
            .topic_ids_by_name
            .keys()
            .chain(names_in_batch.iter())
            .find(|n| topic_name::unify_collision_chars(n) == unified)
        {
            return Err(ApiError::new(
                ErrorCode::InvalidTopicException,
                format!(
                    "Topic '{}' collides with existing topic: {existing}",
                    spec.name
                ),
            ));
        }
        let mut configs = BTreeMap::new();
        for (name, value) in &spec.configs {
            let value = value.clone().ok_or_else(|| {
                ApiError::new(
                    ErrorCode::InvalidConfig,
                    format!("Null value not supported for topic configs: {name}"),
                )
            })?;
            configs.insert(name.clone(), value);
        }
        let brokers = placement_brokers(image);
        let assignments = if spec.assignments.is_empty() {
            let partitions = match spec.num_partitions {
                -1 => state.config.default_num_partitions,
                n if n <= 0 => {
                    return Err(ApiError::new(
                        ErrorCode::InvalidPartitions,
                        "Number of partitions was set to an invalid non-positive value.",
                    ))
                }
                n => n,
            };
            let rf =
                match spec.replication_factor {
                    -1 => state.config.default_replication_factor,
                    n if n <= 0 => return Err(ApiError::new(
                        ErrorCode::InvalidReplicationFactor,
                        "Replication factor must be larger than 0, or -1 to use the default value.",
                    )),
                    n => n,
                };
            placement::assign(&brokers, 0, partitions, rf, None).map_err(placement_error)?
        } else {
            if spec.num_partitions != -1 || spec.replication_factor != -1 {
                return Err(ApiError::new(
                    ErrorCode::InvalidRequest,
                    "A manual partition assignment was specified, but numPartitions or replicationFactor was not set to -1.",
                ));
            }
            validate_manual_assignments(image, &spec.assignments, 0)?;
            spec.assignments.clone()
        };
        self.validator.validate_topic(&spec.name, &configs)?;
        let topic_id = Uuid::new_v4();
        let replication_factor = assignments.values().next().map_or(0, |r| r.len() as i16);
        let mut records = vec![MetadataRecord::Topic {
            name: spec.name.clone(),
            topic_id,
        }];
        for (&partition_id, replicas) in &assignments {
            records.push(new_partition_record(topic_id, partition_id, replicas));
        }
        for (name, value) in &configs {
            records.push(MetadataRecord::Config {
                resource_type: ConfigResourceType::Topic,
                resource_name: spec.name.clone(),
                name: name.clone(),
                value: Some(value.clone()),
            });
        }
        Ok((
            CreatedTopic {
                topic_id,
                num_partitions: assignments.len() as i32,
                replication_factor,
                configs,
            },
            records,
        ))
    }

    /// DeleteTopics: one result per reference, with the deleted topic's name and id.
    pub(crate) fn delete_topics_local(
        &self,
        topics: Vec<TopicRef>,
    ) -> (Vec<Result<DeletedTopic, ApiError>>, CommitOffset) {
        let mut state = self.lock();
        let mut records = Vec::new();
        let mut deleted = HashSet::new();
        let mut results = Vec::with_capacity(topics.len());
        for topic in topics {
            let found = match &topic {
                TopicRef::Name(name) => state.image.topic(name).ok_or_else(|| {
                    ApiError::new(
                        ErrorCode::UnknownTopicOrPartition,
                        "This server does not host this topic-partition.",
                    )
                }),
                TopicRef::Id(id) => state.image.topic_by_id(id).ok_or_else(|| {
                    ApiError::new(
                        ErrorCode::UnknownTopicId,
                        "This server does not host this topic ID.",
                    )
                }),
            };
            let result = found.and_then(|t| {
                if !state.config.delete_topic_enable {
                    return Err(ApiError::new(
                        ErrorCode::TopicDeletionDisabled,
                        "Topic deletion is disabled.",
                    ));
                }
                if deleted.insert(t.id) {
                    records.push(MetadataRecord::RemoveTopic { topic_id: t.id });
                }
                Ok(DeletedTopic {
                    name: t.name.clone(),
                    id: t.id,
                })
            });
            results.push(result);
        }
        if records.is_empty() {
            return (results, state.image.offset);
        }
        self.commit_batch(&mut state, records, results)
    }

    /// CreatePartitions: grow a topic to `count` partitions, with optional
    /// explicit assignments for the new ones.
    pub(crate) fn create_partitions_local(
        &self,
        requests: Vec<PartitionGrowth>,
        validate_only: bool,
    ) -> (Vec<Result<(), ApiError>>, CommitOffset) {
        let mut state = self.lock();
        let mut seen = HashSet::new();
        let duplicates: HashSet<String> = requests
            .iter()
            .filter(|r| !seen.insert(r.topic.clone()))
            .map(|r| r.topic.clone())
            .collect();
        let mut records = Vec::new();
        let mut results = Vec::with_capacity(requests.len());
        for PartitionGrowth {
            topic: name,
            count,
            assignments,
        } in requests
        {
            let result = if duplicates.contains(&name) {
                Err(ApiError::new(
                    ErrorCode::InvalidRequest,
                    "Duplicate topic in request.",
                ))
            } else {
                plan_partitions(&state.image, &name, count, assignments).map(|r| {
                    records.extend(r);
                })
            };
            results.push(result);
        }
        if validate_only || records.is_empty() {
            return (results, state.image.offset);
        }
        self.commit_batch(&mut state, records, results)
    }

    /// AlterConfigs and IncrementalAlterConfigs: one result per resource.
    pub(crate) fn alter_configs_local(
        &self,
        changes: Vec<ConfigChange>,
        validate_only: bool,
    ) -> (Vec<Result<(), ApiError>>, CommitOffset) {
        let mut state = self.lock();
        let mut records = Vec::new();
        let mut results = Vec::with_capacity(changes.len());
        for change in changes {
            let result = self.plan_config_change(&state.image, &change).map(|r| {
                records.extend(r);
            });
            results.push(result);
        }
        if validate_only || records.is_empty() {
            return (results, state.image.offset);
        }
        self.commit_batch(&mut state, records, results)
    }

    fn plan_config_change(
        &self,
        image: &MetadataImage,
        change: &ConfigChange,
    ) -> Result<Vec<MetadataRecord>, ApiError> {
        let current = match change.resource_type {
            ConfigResourceType::Topic => {
                if image.topic(&change.resource_name).is_none() {
                    return Err(ApiError::new(
                        ErrorCode::UnknownTopicOrPartition,
                        format!("The topic '{}' does not exist.", change.resource_name),
                    ));
                }
                image.topic_config(&change.resource_name)
            }
            ConfigResourceType::Broker => {
                if !change.resource_name.is_empty() && change.resource_name.parse::<i32>().is_err()
                {
                    return Err(ApiError::new(
                        ErrorCode::InvalidRequest,
                        format!("Invalid broker name {}", change.resource_name),
                    ));
                }
                image.broker_config(&change.resource_name)
            }
        };
        let mut names = HashSet::new();
        if let Some((dup, _)) = change.ops.iter().find(|(n, _)| !names.insert(n.clone())) {
            return Err(ApiError::new(
                ErrorCode::InvalidRequest,
                format!("Error due to duplicate config keys: {dup}"),
            ));
        }
        let mut next = if change.replace_all {
            BTreeMap::new()
        } else {
            current.clone()
        };
        for (name, op) in &change.ops {
            match op {
                ConfigOp::Set(v) => {
                    next.insert(name.clone(), v.clone());
                }
                ConfigOp::Delete => {
                    next.remove(name);
                }
                ConfigOp::Append(v) | ConfigOp::Subtract(v) => {
                    if !self.validator.is_list(change.resource_type, name) {
                        return Err(ApiError::new(
                            ErrorCode::InvalidConfig,
                            format!(
                                "Config value append/subtract is not allowed for config key: {name}"
                            ),
                        ));
                    }
                    let mut items: Vec<String> = next
                        .get(name)
                        .cloned()
                        .or_else(|| self.validator.list_default(change.resource_type, name))
                        .map(|s| {
                            s.split(',')
                                .map(str::trim)
                                .filter(|x| !x.is_empty())
                                .map(str::to_string)
                                .collect()
                        })
                        .unwrap_or_default();
                    for item in v.split(',').map(str::trim).filter(|x| !x.is_empty()) {
                        if matches!(op, ConfigOp::Append(_)) {
                            if !items.iter().any(|i| i == item) {
                                items.push(item.to_string());
                            }
                        } else {
                            items.retain(|i| i != item);
                        }
                    }
                    if items.is_empty() && matches!(op, ConfigOp::Subtract(_)) {
                        next.remove(name);
                    } else {
                        next.insert(name.clone(), items.join(","));
                    }
                }
            }
        }
        match change.resource_type {
            ConfigResourceType::Topic => self
                .validator
                .validate_topic(&change.resource_name, &next)?,
            ConfigResourceType::Broker => self
                .validator
                .validate_broker(&change.resource_name, &next)?,
        }
        let mut records = Vec::new();
        let keys: BTreeSet<&String> = current.keys().chain(next.keys()).collect();
        for key in keys {
            let before = current.get(key);
            let after = next.get(key);
            if before != after {
                records.push(MetadataRecord::Config {
                    resource_type: change.resource_type,
                    resource_name: change.resource_name.clone(),
                    name: key.clone(),
                    value: after.cloned(),
                });
            }
        }
        Ok(records)
    }

    /// Appends `records` durably, applies them and publishes the new image.
    /// Commits the records of a batch operation whose per-item `results`
    /// were decided on the image; if the commit fails, every item that had
    /// succeeded fails with the commit's error instead.
    pub(crate) fn commit_batch<T>(
        &self,
        state: &mut State,
        records: Vec<MetadataRecord>,
        results: Vec<Result<T, ApiError>>,
    ) -> (Vec<Result<T, ApiError>>, CommitOffset) {
        match self.commit(state, records) {
            Ok(offset) => (results, offset),
            Err(e) => (
                results.into_iter().map(|r| r.and(Err(e.clone()))).collect(),
                state.image.offset,
            ),
        }
    }

    pub(crate) fn commit(
        &self,
        state: &mut State,
        records: Vec<MetadataRecord>,
    ) -> Result<CommitOffset, ApiError> {
        let offset = self.store.append(records)?;
        state.image = self.store.image();
        Ok(offset)
    }
}

/// A Partition record carrying `registration`.
pub(crate) fn partition_record(
    topic_id: Uuid,
    partition: i32,
    registration: PartitionRegistration,
) -> MetadataRecord {
    MetadataRecord::Partition {
        topic_id,
        partition_id: partition,
        replicas: registration.replicas,
        isr: registration.isr,
        leader: registration.leader,
        leader_epoch: registration.leader_epoch,
        partition_epoch: registration.partition_epoch,
    }
}

/// The records that fence `broker_id` and move it out of leadership and
/// ISRs (see [`leadership_without`]), applied to `image` as well so several
/// brokers can be fenced in one batch.
fn fence(
    image: &mut MetadataImage,
    broker_id: i32,
    unclean: bool,
    orphan: bool,
) -> Vec<MetadataRecord> {
    let mut records = vec![MetadataRecord::BrokerFencing {
        broker_id,
        fenced: true,
    }];
    image.apply(image.offset, &records[0]);
    let moved = leadership_without(image, broker_id, unclean, orphan);
    for r in &moved {
        image.apply(image.offset, r);
    }
    records.extend(moved);
    records
}

/// The partition changes that take `broker_id` (already fenced in `image`)
/// out of leadership and ISRs. A partition it leads gets the first live ISR
/// member as leader (a new leader epoch); with none, `unclean` takes the
/// first live replica (ISR reset to it), else `orphan` leaves the partition
/// without a leader (ISR kept, so the broker is re-elected when it
/// returns) and `!orphan` leaves it led by the broker. An ISR never becomes
/// empty.
fn leadership_without(
    image: &MetadataImage,
    broker_id: i32,
    unclean: bool,
    orphan: bool,
) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    for topic in image.topics_sorted() {
        for (&index, p) in &topic.partitions {
            if p.leader != broker_id && !p.isr.contains(&broker_id) {
                continue;
            }
            let others: Vec<i32> = p
                .isr
                .iter()
                .copied()
                .filter(|&r| r != broker_id && image.is_live(r))
                .collect();
            let mut next = p.clone();
            if p.leader == broker_id {
                if let Some(&leader) = others.first() {
                    next.leader = leader;
                    next.isr = p.isr.iter().copied().filter(|&r| r != broker_id).collect();
                } else if let Some(&leader) = p
                    .replicas
                    .iter()
                    .find(|&&r| unclean && r != broker_id && image.is_live(r))
                {
                    next.leader = leader;
                    next.isr = vec![leader];
                } else if orphan {
                    next.leader = -1;
                } else {
                    continue;
                }
                next.leader_epoch += 1;
            } else if p.isr.len() > 1 {
                next.isr = p.isr.iter().copied().filter(|&r| r != broker_id).collect();
            } else {
                continue;
            }
            next.partition_epoch += 1;
            records.push(partition_record(topic.id, index, next));
        }
    }
    records
}

fn placement_brokers(image: &MetadataImage) -> Vec<PlacementBroker> {
    image
        .brokers
        .values()
        .filter(|b| !b.fenced)
        .map(|b| PlacementBroker {
            id: b.id,
            rack: b.rack.clone(),
        })
        .collect()
}

fn placement_error(e: PlacementError) -> ApiError {
    match e {
        PlacementError::NotEnoughBrokers {
            replication_factor,
            brokers,
        } => ApiError::new(
            ErrorCode::InvalidReplicationFactor,
            format!(
                "Unable to replicate the partition {replication_factor} time(s): The target replication factor of {replication_factor} cannot be reached because only {brokers} broker(s) are registered."
            ),
        ),
        PlacementError::InvalidReplicationFactor => {
            ApiError::new(ErrorCode::InvalidReplicationFactor, e.to_string())
        }
    }
}

fn new_partition_record(topic_id: Uuid, partition_id: i32, replicas: &[i32]) -> MetadataRecord {
    MetadataRecord::Partition {
        topic_id,
        partition_id,
        replicas: replicas.to_vec(),
        isr: replicas.to_vec(),
        leader: replicas.first().copied().unwrap_or(-1),
        leader_epoch: 0,
        partition_epoch: 0,
    }
}

fn validate_manual_assignments(
    image: &MetadataImage,
    assignments: &BTreeMap<i32, Vec<i32>>,
    first_partition: i32,
) -> Result<(), ApiError> {
    let invalid = |m: String| ApiError::new(ErrorCode::InvalidReplicaAssignment, m);
    let mut rf = None;
    for (expected, (&partition, replicas)) in (first_partition..).zip(assignments.iter()) {
        if partition != expected {
            return Err(invalid(format!(
                "Partitions should be a consecutive 0-based integer sequence, but partition {partition} was found where {expected} was expected."
            )));
        }
        if replicas.is_empty() {
            return Err(invalid(format!(
                "The manual partition assignment includes an empty replica list for partition {partition}."
            )));
        }
        let unique: HashSet<_> = replicas.iter().collect();
        if unique.len() != replicas.len() {
            return Err(invalid(format!(
                "The manual partition assignment includes the broker {} more than once.",
                replicas
                    .iter()
                    .find(|r| replicas.iter().filter(|x| x == r).count() > 1)
                    .copied()
                    .unwrap_or(-1)
            )));
        }
        if let Some(&missing) = replicas.iter().find(|r| !image.brokers.contains_key(r)) {
            return Err(invalid(format!(
                "The manual partition assignment includes broker {missing}, but no such broker is registered."
            )));
        }
        match rf {
            None => rf = Some(replicas.len()),
            Some(n) if n != replicas.len() => {
                return Err(invalid(
                    "All partitions in the manual partition assignment must have the same number of replicas."
                        .into(),
                ))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

fn plan_partitions(
    image: &MetadataImage,
    name: &str,
    count: i32,
    assignments: Option<Vec<Vec<i32>>>,
) -> Result<Vec<MetadataRecord>, ApiError> {
    let topic = image.topic(name).ok_or_else(|| {
        ApiError::new(
            ErrorCode::UnknownTopicOrPartition,
            "This server does not host this topic-partition.",
        )
    })?;
    let current = topic.partitions.len() as i32;
    if count < current {
        return Err(ApiError::new(
            ErrorCode::InvalidPartitions,
            format!("Topic currently has {current} partitions, which is higher than the requested {count}."),
        ));
    }
    if count == current {
        return Err(ApiError::new(
            ErrorCode::InvalidPartitions,
            format!("Topic already has {current} partitions."),
        ));
    }
    if i64::from(count - current) > MAX_PARTITIONS_PER_REQUEST {
        return Err(ApiError::new(
            ErrorCode::PolicyViolation,
            "Unable to perform excessively large batch operation.",
        ));
    }
    let new_assignments = match assignments {
        Some(list) => {
            if list.len() as i32 != count - current {
                return Err(ApiError::new(
                    ErrorCode::InvalidReplicaAssignment,
                    format!(
                        "Attempted to add {} additional partition(s), but only {} assignment(s) were specified.",
                        count - current,
                        list.len()
                    ),
                ));
            }
            let map: BTreeMap<i32, Vec<i32>> = list
                .into_iter()
                .enumerate()
                .map(|(i, r)| (current + i as i32, r))
                .collect();
            validate_manual_assignments(image, &map, current)?;
            let existing_rf = topic.partitions.values().next().map(|p| p.replicas.len());
            if let (Some(rf), Some(first)) = (existing_rf, map.values().next()) {
                if first.len() != rf {
                    return Err(ApiError::new(
                        ErrorCode::InvalidReplicaAssignment,
                        format!(
                            "The manual partition assignment includes a partition with {} replica(s), but this is not consistent with previous partitions, which have {rf} replica(s).",
                            first.len()
                        ),
                    ));
                }
            }
            map
        }
        None => {
            let rf = topic
                .partitions
                .values()
                .next()
                .map_or(1, |p| p.replicas.len() as i16);
            placement::assign(
                &placement_brokers(image),
                current,
                count - current,
                rf,
                None,
            )
            .map_err(placement_error)?
        }
    };
    Ok(new_assignments
        .iter()
        .map(|(&p, replicas)| new_partition_record(topic.id, p, replicas))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct AcceptAll;
    impl ConfigValidator for AcceptAll {
        fn validate_topic(&self, _: &str, c: &BTreeMap<String, String>) -> Result<(), ApiError> {
            if c.contains_key("bad") {
                return Err(ApiError::new(ErrorCode::InvalidConfig, "bad"));
            }
            Ok(())
        }
        fn validate_broker(&self, _: &str, _: &BTreeMap<String, String>) -> Result<(), ApiError> {
            Ok(())
        }
        fn is_list(&self, _: ConfigResourceType, name: &str) -> bool {
            name == "cleanup.policy"
        }
    }

    fn controller(dir: &Path) -> Arc<Controller> {
        let c = Controller::open(
            dir,
            ControllerConfig {
                default_num_partitions: 2,
                default_replication_factor: 1,
                delete_topic_enable: true,
            },
            Arc::new(AcceptAll),
        )
        .unwrap();
        c.register_broker(1, vec![], None).unwrap();
        c
    }

    fn spec(name: &str) -> CreateTopicSpec {
        CreateTopicSpec {
            name: name.into(),
            num_partitions: -1,
            replication_factor: -1,
            ..Default::default()
        }
    }

    #[test]
    fn creates_validates_and_survives_restart() {
        let dir = tempfile::tempdir().unwrap();
        {
            let c = controller(dir.path());
            let (results, _) = c.create_topics(vec![spec("a"), spec("a.b"), spec("a_b")], false);
            assert!(results[0].is_ok());
            assert!(results[1].is_ok());
            assert_eq!(
                results[2].as_ref().unwrap_err().code,
                ErrorCode::InvalidTopicException
            );
            let (again, _) = c.create_topics(vec![spec("a")], false);
            assert_eq!(
                again[0].as_ref().unwrap_err().code,
                ErrorCode::TopicAlreadyExists
            );
            let mut rf3 = spec("x");
            rf3.replication_factor = 3;
            let (r, _) = c.create_topics(vec![rf3], false);
            assert_eq!(
                r[0].as_ref().unwrap_err().code,
                ErrorCode::InvalidReplicationFactor
            );
            let mut bad = spec("y");
            bad.configs = vec![("bad".into(), Some("1".into()))];
            let (r, _) = c.create_topics(vec![bad], false);
            assert_eq!(r[0].as_ref().unwrap_err().code, ErrorCode::InvalidConfig);
            let (r, _) = c.create_topics(vec![spec("v")], true);
            assert!(r[0].is_ok());
            assert!(c.image().topic("v").is_none());
        }
        let c = controller(dir.path());
        let image = c.image();
        assert_eq!(image.topic("a").unwrap().partitions.len(), 2);
        assert!(image.topic("a.b").is_some());
    }

    fn grow(topic: &str, count: i32) -> PartitionGrowth {
        PartitionGrowth {
            topic: topic.into(),
            count,
            assignments: None,
        }
    }

    #[test]
    fn producer_id_blocks_never_repeat_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        {
            let c = controller(dir.path());
            assert_eq!(c.allocate_producer_ids(1, 1000).unwrap(), 0);
            assert_eq!(c.allocate_producer_ids(1, 1000).unwrap(), 1000);
        }
        let c = controller(dir.path());
        assert_eq!(c.allocate_producer_ids(1, 1000).unwrap(), 2000);
    }

    #[test]
    fn partitions_grow_only() {
        let dir = tempfile::tempdir().unwrap();
        let c = controller(dir.path());
        c.create_topics(vec![spec("t")], false);
        let (r, _) = c.create_partitions(vec![grow("t", 1)], false);
        assert_eq!(
            r[0].as_ref().unwrap_err().code,
            ErrorCode::InvalidPartitions
        );
        let (r, _) = c.create_partitions(vec![grow("t", 5)], false);
        assert!(r[0].is_ok());
        assert_eq!(c.image().topic("t").unwrap().partitions.len(), 5);
    }

    #[test]
    fn incremental_config_ops() {
        let dir = tempfile::tempdir().unwrap();
        let c = controller(dir.path());
        c.create_topics(vec![spec("t")], false);
        let change = |ops| ConfigChange {
            resource_type: ConfigResourceType::Topic,
            resource_name: "t".into(),
            ops,
            replace_all: false,
        };
        let (r, _) = c.alter_configs(
            vec![change(vec![
                ("cleanup.policy".into(), ConfigOp::Append("compact".into())),
                ("retention.ms".into(), ConfigOp::Set("5".into())),
            ])],
            false,
        );
        assert!(r[0].is_ok());
        let (r, _) = c.alter_configs(
            vec![change(vec![(
                "cleanup.policy".into(),
                ConfigOp::Append("delete".into()),
            )])],
            false,
        );
        assert!(r[0].is_ok());
        assert_eq!(
            c.image().topic_config("t")["cleanup.policy"],
            "compact,delete"
        );
        let (r, _) = c.alter_configs(
            vec![change(vec![(
                "retention.ms".into(),
                ConfigOp::Append("1".into()),
            )])],
            false,
        );
        assert_eq!(r[0].as_ref().unwrap_err().code, ErrorCode::InvalidConfig);
        let (r, _) = c.alter_configs(
            vec![change(vec![("retention.ms".into(), ConfigOp::Delete)])],
            false,
        );
        assert!(r[0].is_ok());
        assert!(!c.image().topic_config("t").contains_key("retention.ms"));
    }

    #[test]
    fn delete_by_name_and_id() {
        let dir = tempfile::tempdir().unwrap();
        let c = controller(dir.path());
        c.create_topics(vec![spec("t"), spec("u")], false);
        let id = c.image().topic("u").unwrap().id;
        let (r, _) = c.delete_topics(vec![
            TopicRef::Name("t".into()),
            TopicRef::Id(id),
            TopicRef::Name("nope".into()),
            TopicRef::Id(Uuid::new_v4()),
        ]);
        assert!(r[0].is_ok() && r[1].is_ok());
        assert_eq!(
            r[2].as_ref().unwrap_err().code,
            ErrorCode::UnknownTopicOrPartition
        );
        assert_eq!(r[3].as_ref().unwrap_err().code, ErrorCode::UnknownTopicId);
        assert!(c.image().topics_by_id.is_empty());
    }
}
