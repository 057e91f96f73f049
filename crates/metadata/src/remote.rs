//! Controller operations from any node: run here when this node is the
//! active controller, otherwise forwarded to the one that is.
//!
//! In a cluster every broker holds a [`Controller`] over the same
//! replicated store, but only the quorum leader may append. A request a
//! client sends to any broker (CreateTopics, a broker's own heartbeat or
//! AlterPartition …) is encoded as a [`ControllerRequest`], carried by the
//! store to the leader, and served there by [`Controller::serve`] against
//! the leader's image, as KRaft brokers forward to the active controller.
//! Each public operation here has the same signature whether it ran locally
//! or remotely, so callers never know the difference.
//!
//! Encoding is JSON: these are small, rare messages between nodes of one
//! version, and JSON keeps them readable in a packet capture.

use std::time::{Duration, Instant};

use millrace_protocol::ErrorCode;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::controller::{
    AlterPartitionSpec, CommitOffset, ConfigChange, Controller, CreateTopicSpec, CreatedTopic,
    DeletedTopic, PartitionGrowth, TopicRef,
};
use crate::error::ApiError;
use crate::image::PartitionRegistration;
use crate::reassignment::{
    ElectionResult, ElectionType, OngoingReassignment, ReassignmentSpec, TopicPartitions,
};
use crate::records::Endpoint;
use crate::store::StoreError;

/// How long a forwarded request keeps looking for a leader (an election
/// takes a few seconds) before the caller gets REQUEST_TIMED_OUT.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(15);

/// A controller operation, as it travels to the active controller.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ControllerRequest {
    /// [`Controller::broker_heartbeat`].
    BrokerHeartbeat {
        /// The broker.
        broker_id: i32,
    },
    /// [`Controller::controlled_shutdown`].
    ControlledShutdown {
        /// The broker stopping.
        broker_id: i32,
    },
    /// [`Controller::register_broker`].
    RegisterBroker {
        /// The broker.
        broker_id: i32,
        /// Its advertised listeners.
        endpoints: Vec<Endpoint>,
        /// Its `broker.rack`.
        rack: Option<String>,
    },
    /// [`Controller::allocate_producer_ids`].
    AllocateProducerIds {
        /// The broker asking.
        broker_id: i32,
        /// How many ids.
        block_size: i64,
    },
    /// [`Controller::alter_partition`].
    AlterPartition(AlterPartitionSpec),
    /// [`Controller::create_topics`].
    CreateTopics {
        /// The topics.
        specs: Vec<CreateTopicSpec>,
        /// Validate without creating.
        validate_only: bool,
    },
    /// [`Controller::delete_topics`].
    DeleteTopics(Vec<TopicRef>),
    /// [`Controller::create_partitions`].
    CreatePartitions {
        /// The topics to grow.
        requests: Vec<PartitionGrowth>,
        /// Validate without growing.
        validate_only: bool,
    },
    /// [`Controller::alter_configs`].
    AlterConfigs {
        /// The changes.
        changes: Vec<ConfigChange>,
        /// Validate without changing.
        validate_only: bool,
    },
    /// [`Controller::elect_leaders`].
    ElectLeaders {
        /// Preferred or unclean.
        election: ElectionType,
        /// The partitions, `None` for all.
        partitions: Option<Vec<TopicPartitions>>,
    },
    /// [`Controller::alter_partition_reassignments`].
    AlterPartitionReassignments {
        /// One per partition.
        specs: Vec<ReassignmentSpec>,
        /// The asking broker's `unclean.leader.election.enable`.
        unclean_default: bool,
    },
    /// [`Controller::list_partition_reassignments`].
    ListPartitionReassignments {
        /// The partitions, `None` for all.
        topics: Option<Vec<TopicPartitions>>,
    },
}

/// The active controller's answer to a forwarded request.
#[derive(Debug, Serialize, Deserialize)]
enum ControllerReply {
    /// The operation's result, encoded as the operation returns it.
    Done(serde_json::Value),
    /// The request could not be decoded (a node of another version).
    Refused(String),
}

impl Controller {
    /// Serves a request another node forwarded: decodes it, runs it here and
    /// encodes the result. Blocks; call it off the async runtime.
    pub fn serve(&self, request: &[u8]) -> Vec<u8> {
        let reply = match serde_json::from_slice::<ControllerRequest>(request) {
            Ok(request) => self.run_local(request),
            Err(e) => ControllerReply::Refused(format!("undecodable controller request: {e}")),
        };
        // A reply of plain data always encodes.
        serde_json::to_vec(&reply).unwrap_or_default()
    }

    fn run_local(&self, request: ControllerRequest) -> ControllerReply {
        let encoded = match request {
            ControllerRequest::BrokerHeartbeat { broker_id } => {
                serde_json::to_value(self.broker_heartbeat_local(broker_id))
            }
            ControllerRequest::ControlledShutdown { broker_id } => {
                serde_json::to_value(self.controlled_shutdown_local(broker_id))
            }
            ControllerRequest::RegisterBroker {
                broker_id,
                endpoints,
                rack,
            } => serde_json::to_value(self.register_broker_local(broker_id, endpoints, rack)),
            ControllerRequest::AllocateProducerIds {
                broker_id,
                block_size,
            } => serde_json::to_value(self.allocate_producer_ids_local(broker_id, block_size)),
            ControllerRequest::AlterPartition(spec) => {
                serde_json::to_value(self.alter_partition_local(spec))
            }
            ControllerRequest::CreateTopics {
                specs,
                validate_only,
            } => serde_json::to_value(self.create_topics_local(specs, validate_only)),
            ControllerRequest::DeleteTopics(topics) => {
                serde_json::to_value(self.delete_topics_local(topics))
            }
            ControllerRequest::CreatePartitions {
                requests,
                validate_only,
            } => serde_json::to_value(self.create_partitions_local(requests, validate_only)),
            ControllerRequest::AlterConfigs {
                changes,
                validate_only,
            } => serde_json::to_value(self.alter_configs_local(changes, validate_only)),
            ControllerRequest::ElectLeaders {
                election,
                partitions,
            } => serde_json::to_value(self.elect_leaders_local(election, partitions)),
            ControllerRequest::AlterPartitionReassignments {
                specs,
                unclean_default,
            } => serde_json::to_value(
                self.alter_partition_reassignments_local(specs, unclean_default),
            ),
            ControllerRequest::ListPartitionReassignments { topics } => {
                serde_json::to_value(self.list_partition_reassignments_local(topics))
            }
        };
        match encoded {
            Ok(value) => ControllerReply::Done(value),
            Err(e) => ControllerReply::Refused(format!("unencodable controller reply: {e}")),
        }
    }

    /// Sends `request` to the active controller and decodes its answer.
    /// Retries while the request certainly was not delivered (no leader
    /// yet, or the one asked had just stepped down); an answer lost after
    /// delivery is REQUEST_TIMED_OUT, since the change may have happened.
    fn forward<T: DeserializeOwned>(&self, request: &ControllerRequest) -> Result<T, ApiError> {
        let encoded = serde_json::to_vec(request).map_err(|e| {
            ApiError::new(
                ErrorCode::UnknownServerError,
                format!("cannot encode controller request: {e}"),
            )
        })?;
        let deadline = Instant::now() + FORWARD_TIMEOUT;
        let answer = loop {
            match self.store().forward(encoded.clone()) {
                Ok(answer) => break answer,
                Err(StoreError::NotController { .. }) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                // As a KRaft broker's forwarding times out: the client
                // retries, and a metadata quorum may be back by then.
                Err(StoreError::NotController { .. }) => {
                    return Err(ApiError::new(
                        ErrorCode::RequestTimedOut,
                        format!("no active controller answered within {FORWARD_TIMEOUT:?}"),
                    ))
                }
                Err(e) => return Err(e.into()),
            }
        };
        match serde_json::from_slice::<ControllerReply>(&answer) {
            Ok(ControllerReply::Done(value)) => serde_json::from_value(value).map_err(|e| {
                ApiError::new(
                    ErrorCode::UnknownServerError,
                    format!("undecodable controller reply: {e}"),
                )
            }),
            Ok(ControllerReply::Refused(reason)) => {
                Err(ApiError::new(ErrorCode::UnknownServerError, reason))
            }
            Err(e) => Err(ApiError::new(
                ErrorCode::UnknownServerError,
                format!("undecodable controller reply: {e}"),
            )),
        }
    }

    /// A broker's heartbeat (see `broker_heartbeat_local`): renews its
    /// session with the active controller and unfences it.
    pub fn broker_heartbeat(&self, broker_id: i32) -> Result<Option<CommitOffset>, ApiError> {
        if self.store().is_active() {
            return self.broker_heartbeat_local(broker_id);
        }
        self.forward(&ControllerRequest::BrokerHeartbeat { broker_id })
            .and_then(|r| r)
    }

    /// Controlled shutdown: moves `broker_id`'s leaderships away and fences it.
    pub fn controlled_shutdown(&self, broker_id: i32) -> Result<CommitOffset, ApiError> {
        if self.store().is_active() {
            return self.controlled_shutdown_local(broker_id);
        }
        self.forward(&ControllerRequest::ControlledShutdown { broker_id })
            .and_then(|r| r)
    }

    /// Records a broker's registration (at every start, with a new incarnation).
    pub fn register_broker(
        &self,
        broker_id: i32,
        endpoints: Vec<Endpoint>,
        rack: Option<String>,
    ) -> Result<CommitOffset, ApiError> {
        if self.store().is_active() {
            return self.register_broker_local(broker_id, endpoints, rack);
        }
        self.forward(&ControllerRequest::RegisterBroker {
            broker_id,
            endpoints,
            rack,
        })
        .and_then(|r| r)
    }

    /// Hands `broker_id` the next `block_size` producer ids and returns the first.
    pub fn allocate_producer_ids(&self, broker_id: i32, block_size: i64) -> Result<i64, ApiError> {
        if self.store().is_active() {
            return self.allocate_producer_ids_local(broker_id, block_size);
        }
        self.forward(&ControllerRequest::AllocateProducerIds {
            broker_id,
            block_size,
        })
        .and_then(|r| r)
    }

    /// AlterPartition: a partition leader changes its ISR.
    pub fn alter_partition(
        &self,
        change: AlterPartitionSpec,
    ) -> Result<(PartitionRegistration, CommitOffset), ApiError> {
        if self.store().is_active() {
            return self.alter_partition_local(change);
        }
        self.forward(&ControllerRequest::AlterPartition(change))
            .and_then(|r| r)
    }

    /// CreateTopics: one result per spec, in order, and the commit offset
    /// the created topics become visible at.
    pub fn create_topics(
        &self,
        specs: Vec<CreateTopicSpec>,
        validate_only: bool,
    ) -> (Vec<Result<CreatedTopic, ApiError>>, CommitOffset) {
        if self.store().is_active() {
            return self.create_topics_local(specs, validate_only);
        }
        let count = specs.len();
        let request = ControllerRequest::CreateTopics {
            specs,
            validate_only,
        };
        self.forward(&request)
            .unwrap_or_else(|e| self.failed_all(count, e))
    }

    /// DeleteTopics: one result per reference.
    pub fn delete_topics(
        &self,
        topics: Vec<TopicRef>,
    ) -> (Vec<Result<DeletedTopic, ApiError>>, CommitOffset) {
        if self.store().is_active() {
            return self.delete_topics_local(topics);
        }
        let count = topics.len();
        self.forward(&ControllerRequest::DeleteTopics(topics))
            .unwrap_or_else(|e| self.failed_all(count, e))
    }

    /// CreatePartitions: grows topics.
    pub fn create_partitions(
        &self,
        requests: Vec<PartitionGrowth>,
        validate_only: bool,
    ) -> (Vec<Result<(), ApiError>>, CommitOffset) {
        if self.store().is_active() {
            return self.create_partitions_local(requests, validate_only);
        }
        let count = requests.len();
        let request = ControllerRequest::CreatePartitions {
            requests,
            validate_only,
        };
        self.forward(&request)
            .unwrap_or_else(|e| self.failed_all(count, e))
    }

    /// AlterConfigs and IncrementalAlterConfigs: one result per resource.
    pub fn alter_configs(
        &self,
        changes: Vec<ConfigChange>,
        validate_only: bool,
    ) -> (Vec<Result<(), ApiError>>, CommitOffset) {
        if self.store().is_active() {
            return self.alter_configs_local(changes, validate_only);
        }
        let count = changes.len();
        let request = ControllerRequest::AlterConfigs {
            changes,
            validate_only,
        };
        self.forward(&request)
            .unwrap_or_else(|e| self.failed_all(count, e))
    }

    /// `count` copies of a forwarding failure, at the current offset.
    /// ElectLeaders: elects preferred or unclean leaders (see
    /// `elect_leaders_local`).
    pub fn elect_leaders(
        &self,
        election: ElectionType,
        partitions: Option<Vec<TopicPartitions>>,
    ) -> (Vec<ElectionResult>, CommitOffset) {
        if self.store().is_active() {
            return self.elect_leaders_local(election, partitions);
        }
        let named = partitions.clone();
        let request = ControllerRequest::ElectLeaders {
            election,
            partitions,
        };
        self.forward(&request).unwrap_or_else(|e| {
            let results = named
                .unwrap_or_default()
                .into_iter()
                .map(|t| ElectionResult {
                    topic: t.topic,
                    partitions: t
                        .partitions
                        .into_iter()
                        .map(|p| (p, Err(e.clone())))
                        .collect(),
                })
                .collect();
            (results, self.image().offset)
        })
    }

    /// AlterPartitionReassignments: one result per partition.
    pub fn alter_partition_reassignments(
        &self,
        specs: Vec<ReassignmentSpec>,
        unclean_default: bool,
    ) -> (Vec<Result<(), ApiError>>, CommitOffset) {
        if self.store().is_active() {
            return self.alter_partition_reassignments_local(specs, unclean_default);
        }
        let count = specs.len();
        let request = ControllerRequest::AlterPartitionReassignments {
            specs,
            unclean_default,
        };
        self.forward(&request)
            .unwrap_or_else(|e| self.failed_all(count, e))
    }

    /// ListPartitionReassignments: the reassignments in progress, as the
    /// active controller knows them.
    pub fn list_partition_reassignments(
        &self,
        topics: Option<Vec<TopicPartitions>>,
    ) -> Result<Vec<OngoingReassignment>, ApiError> {
        if self.store().is_active() {
            return Ok(self.list_partition_reassignments_local(topics));
        }
        self.forward(&ControllerRequest::ListPartitionReassignments { topics })
    }

    /// The periodic preferred-leader rebalance: runs on the active
    /// controller only (elsewhere it does nothing), so every node can
    /// schedule it.
    pub fn balance_partition_leaders(
        &self,
        imbalance_percentage: i32,
    ) -> Result<Option<CommitOffset>, ApiError> {
        if !self.store().is_active() {
            return Ok(None);
        }
        self.balance_partition_leaders_local(imbalance_percentage)
    }

    fn failed_all<T>(
        &self,
        count: usize,
        error: ApiError,
    ) -> (Vec<Result<T, ApiError>>, CommitOffset) {
        let results = (0..count).map(|_| Err(error.clone())).collect();
        (results, self.image().offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_survive_the_wire() {
        let e = ApiError::new(ErrorCode::TopicAlreadyExists, "Topic 't' already exists.");
        let back: ApiError = serde_json::from_slice(&serde_json::to_vec(&e).unwrap()).unwrap();
        assert_eq!(back, e);
        let bare = ApiError::code(ErrorCode::NotController);
        let back: ApiError = serde_json::from_slice(&serde_json::to_vec(&bare).unwrap()).unwrap();
        assert_eq!(back, bare);
    }
}
