//! A topic's effective configuration in the two shapes the data path needs:
//! storage's [`LogConfig`] and the produce validator's settings.

use millrace_config::{CompressionType, TimestampType, TopicConfig};
use millrace_protocol::records::Compression;
use millrace_storage::LogConfig;

use crate::log_validator::ValidationSettings;

/// Resolved settings of one topic.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicSettings {
    /// What the log needs: segments, retention, compaction, flushing.
    pub log: LogConfig,
    /// What produce validation needs.
    pub validation: ValidationSettings,
    /// `min.insync.replicas`, checked for acks=all.
    pub min_insync_replicas: i32,
}

impl TopicSettings {
    /// Converts a resolved topic config.
    pub fn from_topic_config(c: &TopicConfig) -> TopicSettings {
        let non_negative = |v: i32| v.max(0) as u64;
        TopicSettings {
            log: LogConfig {
                segment_bytes: non_negative(c.segment_bytes),
                segment_ms: c.segment_ms,
                segment_jitter_ms: c.segment_jitter_ms,
                segment_index_bytes: non_negative(c.segment_index_bytes),
                index_interval_bytes: non_negative(c.index_interval_bytes),
                retention_ms: c.retention_ms,
                retention_bytes: c.retention_bytes,
                cleanup_delete: c.cleanup_policy.delete,
                cleanup_compact: c.cleanup_policy.compact,
                delete_retention_ms: c.delete_retention_ms,
                min_compaction_lag_ms: c.min_compaction_lag_ms,
                max_compaction_lag_ms: c.max_compaction_lag_ms,
                min_cleanable_dirty_ratio: c.min_cleanable_dirty_ratio,
                flush_messages: c.flush_messages,
                flush_ms: c.flush_ms,
                file_delete_delay_ms: c.file_delete_delay_ms,
                preallocate: c.preallocate,
            },
            validation: ValidationSettings {
                max_message_bytes: c.max_message_bytes.max(0) as usize,
                log_append_time: c.message_timestamp_type == TimestampType::LogAppendTime,
                timestamp_before_max_ms: c.message_timestamp_before_max_ms,
                timestamp_after_max_ms: c.message_timestamp_after_max_ms,
                compacted: c.cleanup_policy.compact,
                target_compression: match c.compression_type {
                    CompressionType::Producer => None,
                    CompressionType::Uncompressed => Some(Compression::None),
                    CompressionType::Gzip => Some(Compression::Gzip),
                    CompressionType::Snappy => Some(Compression::Snappy),
                    CompressionType::Lz4 => Some(Compression::Lz4),
                    CompressionType::Zstd => Some(Compression::Zstd),
                },
            },
            min_insync_replicas: c.min_insync_replicas,
        }
    }
}
