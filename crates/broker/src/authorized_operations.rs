//! Authorized-operation bitfields for Metadata and DescribeCluster.
//!
//! Until ACLs arrive every operation is allowed, so the answer is every
//! operation Kafka defines for the resource type, encoded as Kafka encodes
//! `AclOperation` sets (bit n set for operation code n).

/// Value Kafka sends when the client did not ask for authorized operations.
pub const NOT_REQUESTED: i32 = i32::MIN;

const READ: i32 = 3;
const WRITE: i32 = 4;
const CREATE: i32 = 5;
const DELETE: i32 = 6;
const ALTER: i32 = 7;
const DESCRIBE: i32 = 8;
const CLUSTER_ACTION: i32 = 9;
const DESCRIBE_CONFIGS: i32 = 10;
const ALTER_CONFIGS: i32 = 11;
const IDEMPOTENT_WRITE: i32 = 12;

fn bits(ops: &[i32]) -> i32 {
    ops.iter().fold(0, |acc, op| acc | (1 << op))
}

/// Operations allowed on a topic.
pub fn topic() -> i32 {
    bits(&[
        READ,
        WRITE,
        CREATE,
        DELETE,
        ALTER,
        DESCRIBE,
        DESCRIBE_CONFIGS,
        ALTER_CONFIGS,
    ])
}

/// Operations allowed on the cluster: Kafka's `AclEntry.supportedOperations
/// (CLUSTER)`. CREATE_TOKENS and DESCRIBE_TOKENS belong to the USER resource,
/// not the cluster; clients that map the bits to an enum (kafka-python 2.x)
/// fail on them.
pub fn cluster() -> i32 {
    bits(&[
        CREATE,
        ALTER,
        DESCRIBE,
        CLUSTER_ACTION,
        DESCRIBE_CONFIGS,
        ALTER_CONFIGS,
        IDEMPOTENT_WRITE,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_operations_are_kafkas_cluster_set() {
        // CREATE, ALTER, DESCRIBE, CLUSTER_ACTION, DESCRIBE_CONFIGS,
        // ALTER_CONFIGS, IDEMPOTENT_WRITE: bits 5, 7-12.
        assert_eq!(cluster(), 0b1_1111_1010_0000);
        assert_eq!(topic(), 0b1101_1111_1000);
    }
}
