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
const CREATE_TOKENS: i32 = 13;
const DESCRIBE_TOKENS: i32 = 14;

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

/// Operations allowed on the cluster.
pub fn cluster() -> i32 {
    bits(&[
        CREATE,
        ALTER,
        DESCRIBE,
        CLUSTER_ACTION,
        DESCRIBE_CONFIGS,
        ALTER_CONFIGS,
        IDEMPOTENT_WRITE,
        CREATE_TOKENS,
        DESCRIBE_TOKENS,
    ])
}
