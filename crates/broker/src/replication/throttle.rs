//! Replication throttles (KIP-73), as the reassignment tool sets them:
//! `follower.replication.throttled.rate` (bytes/s, a dynamic broker config)
//! caps what this broker fetches for the replicas a topic's
//! `follower.replication.throttled.replicas` names (`partition:broker`
//! pairs, or `*`), while they are out of the ISR — so moving a partition
//! to a new broker does not starve the replication that keeps the ISR.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use millrace_metadata::MetadataImage;
use parking_lot::Mutex;

/// How far back the rate looks (Kafka: `replication.quota.window.num` = 11
/// samples of `replication.quota.window.size.seconds` = 1).
const WINDOW: Duration = Duration::from_secs(11);

/// A byte rate measured over the last [`WINDOW`], in one-second samples.
#[derive(Default)]
pub struct ByteRate {
    samples: Mutex<VecDeque<(Instant, u64)>>,
}

impl ByteRate {
    /// Counts `bytes` transferred now.
    pub fn record(&self, bytes: u64) {
        let now = Instant::now();
        let mut samples = self.samples.lock();
        match samples.back_mut() {
            Some((start, total)) if now.duration_since(*start) < Duration::from_secs(1) => {
                *total += bytes;
            }
            _ => samples.push_back((now, bytes)),
        }
        while samples
            .front()
            .is_some_and(|(start, _)| now.duration_since(*start) > WINDOW)
        {
            samples.pop_front();
        }
    }

    /// Whether the measured rate is above `limit` bytes/s. As in Kafka, a
    /// young measurement counts over at least one second, so the first
    /// fetch is allowed and the next ones wait until the average is back
    /// under the limit.
    pub fn exceeded(&self, limit: i64) -> bool {
        if limit == i64::MAX {
            return false;
        }
        let now = Instant::now();
        let samples = self.samples.lock();
        let total: u64 = samples
            .iter()
            .filter(|(start, _)| now.duration_since(*start) <= WINDOW)
            .map(|(_, bytes)| bytes)
            .sum();
        let Some((first, _)) = samples
            .iter()
            .find(|(start, _)| now.duration_since(*start) <= WINDOW)
        else {
            return false;
        };
        let elapsed = now.duration_since(*first).max(Duration::from_secs(1));
        total as f64 / elapsed.as_secs_f64() > limit.max(0) as f64
    }
}

/// Whether a topic's `*.replication.throttled.replicas` override (`config`
/// names `leader.` or `follower.`) throttles `partition` on `broker`.
pub fn is_throttled(
    image: &MetadataImage,
    config: &str,
    topic: &str,
    partition: i32,
    broker: i32,
) -> bool {
    let Some(value) = image.topic_configs.get(topic).and_then(|c| c.get(config)) else {
        return false;
    };
    if value.trim() == "*" {
        return true;
    }
    value.split(',').any(|item| {
        item.trim()
            .split_once(':')
            .and_then(|(p, b)| Some((p.trim().parse::<i32>().ok()?, b.trim().parse::<i32>().ok()?)))
            == Some((partition, broker))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use millrace_metadata::records::{ConfigResourceType, MetadataRecord};

    #[test]
    fn rate_is_measured_over_the_window() {
        let rate = ByteRate::default();
        assert!(!rate.exceeded(1000));
        rate.record(5000);
        assert!(rate.exceeded(1000), "5000 bytes in under a second");
        assert!(!rate.exceeded(10_000));
        assert!(!rate.exceeded(i64::MAX));
    }

    #[test]
    fn throttled_replicas_are_parsed_like_kafka() {
        let mut image = MetadataImage::empty();
        let id = uuid::Uuid::new_v4();
        image.apply(
            0,
            &MetadataRecord::Topic {
                name: "t".into(),
                topic_id: id,
            },
        );
        image.apply(
            1,
            &MetadataRecord::Config {
                resource_type: ConfigResourceType::Topic,
                resource_name: "t".into(),
                name: "follower.replication.throttled.replicas".into(),
                value: Some("0:1, 1:2".into()),
            },
        );
        let f = "follower.replication.throttled.replicas";
        assert!(is_throttled(&image, f, "t", 0, 1));
        assert!(is_throttled(&image, f, "t", 1, 2));
        assert!(!is_throttled(&image, f, "t", 0, 2));
        assert!(!is_throttled(
            &image,
            "leader.replication.throttled.replicas",
            "t",
            0,
            1
        ));
        image.apply(
            2,
            &MetadataRecord::Config {
                resource_type: ConfigResourceType::Topic,
                resource_name: "t".into(),
                name: f.into(),
                value: Some("*".into()),
            },
        );
        assert!(is_throttled(&image, f, "t", 7, 9));
    }
}
