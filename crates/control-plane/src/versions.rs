//! Apache Kafka versions (MSK Developer Guide, "Supported Apache Kafka
//! versions"): the catalogue behind ListKafkaVersions, the upgrade paths
//! behind GetCompatibleKafkaVersions and UpdateClusterKafkaVersion, and the
//! version rules of cluster creation.

use axum::extract::{RawQuery, State};
use axum::Json;
use serde_json::{json, Value};
use time::{Date, Month, OffsetDateTime};

use crate::api::{paginate, AppState, QueryParams};
use crate::error::ApiError;

/// One version of the catalogue.
#[derive(Debug, Clone, Copy)]
pub struct KafkaVersionInfo {
    /// The API string, e.g. `3.5.1` or `3.7.x.kraft`.
    pub version: &'static str,
    /// End of support (year, month, day), when published.
    pub end_of_support: Option<(i32, u8, u8)>,
    /// Whether new clusters may use it (2.4.1 is replaced by 2.4.1.1; 1.1.1
    /// takes no new clusters since 2020).
    pub creatable: bool,
}

const fn v(version: &'static str, eos: Option<(i32, u8, u8)>, creatable: bool) -> KafkaVersionInfo {
    KafkaVersionInfo {
        version,
        end_of_support: eos,
        creatable,
    }
}

/// Every version MSK has offered, oldest first.
pub const KAFKA_VERSIONS: &[KafkaVersionInfo] = &[
    v("1.1.1", Some((2024, 6, 5)), false),
    v("2.1.0", Some((2024, 6, 5)), true),
    v("2.2.1", Some((2024, 6, 8)), true),
    v("2.3.1", Some((2024, 6, 8)), true),
    v("2.4.1", Some((2024, 6, 8)), false),
    v("2.4.1.1", Some((2024, 6, 8)), true),
    v("2.5.1", Some((2024, 6, 8)), true),
    v("2.6.0", Some((2024, 9, 11)), true),
    v("2.6.1", Some((2024, 9, 11)), true),
    v("2.6.2", Some((2024, 9, 11)), true),
    v("2.6.3", Some((2024, 9, 11)), true),
    v("2.7.0", Some((2024, 9, 11)), true),
    v("2.7.1", Some((2024, 9, 11)), true),
    v("2.7.2", Some((2024, 9, 11)), true),
    v("2.8.0", Some((2024, 9, 11)), true),
    v("2.8.1", Some((2024, 9, 11)), true),
    v("2.8.2.tiered", None, true),
    v("3.1.1", Some((2024, 9, 11)), true),
    v("3.2.0", Some((2024, 9, 11)), true),
    v("3.3.1", Some((2024, 9, 11)), true),
    v("3.3.2", Some((2024, 9, 11)), true),
    v("3.4.0", Some((2025, 6, 17)), true),
    v("3.5.1", None, true),
    v("3.6.0", None, true),
    v("3.7.x", None, true),
    v("3.7.x.kraft", None, true),
];

/// The version MSK recommends for new clusters.
pub const RECOMMENDED_VERSION: &str = "3.5.1";

/// The catalogue entry of `version`.
pub fn find(version: &str) -> Option<&'static KafkaVersionInfo> {
    KAFKA_VERSIONS.iter().find(|v| v.version == version)
}

/// Whether `version` runs its metadata on KRaft rather than ZooKeeper.
pub fn is_kraft(version: &str) -> bool {
    version.ends_with(".kraft")
}

/// Whether the version can host tiered storage (3.6.0 and later, or the
/// MSK-only `2.8.2.tiered`).
pub fn supports_tiered_storage(version: &str) -> bool {
    version == "2.8.2.tiered" || ordinal(version) >= ordinal("3.6.0")
}

/// Whether its end of support has passed.
pub fn is_deprecated(info: &KafkaVersionInfo) -> bool {
    let Some((y, m, d)) = info.end_of_support else {
        return false;
    };
    let Ok(month) = Month::try_from(m) else {
        return false;
    };
    Date::from_calendar_date(y, month, d).is_ok_and(|eos| OffsetDateTime::now_utc().date() >= eos)
}

/// Whether `version` is `min` or later.
pub fn at_least(version: &str, min: &str) -> bool {
    ordinal(version) >= ordinal(min)
}

/// Sortable numeric form: `3.7.x` sorts after every `3.7.N`, `2.4.1.1` after
/// `2.4.1`.
fn ordinal(version: &str) -> Vec<u32> {
    version
        .split('.')
        .take(4)
        .map(|p| match p {
            "x" => 999,
            p => p.parse().unwrap_or(0),
        })
        .collect()
}

/// Versions a cluster on `source` may be upgraded to: later versions of the
/// same metadata mode that are still supported; `2.8.2.tiered` only to
/// tiered-capable versions; KRaft versions have no later KRaft version yet.
pub fn compatible_targets(source: &str) -> Vec<&'static str> {
    KAFKA_VERSIONS
        .iter()
        .filter(|t| !is_deprecated(t))
        .filter(|t| is_kraft(t.version) == is_kraft(source))
        .filter(|t| t.version != source && ordinal(t.version) > ordinal(source))
        .filter(|t| source != "2.8.2.tiered" || supports_tiered_storage(t.version))
        .map(|t| t.version)
        .collect()
}

/// GetCompatibleKafkaVersions: `GET /v1/compatible-kafka-versions[?clusterArn=]`.
pub async fn get_compatible_kafka_versions(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let query = QueryParams::parse(query.as_deref());
    let entries: Vec<Value> = match query.get("clusterArn") {
        Some(arn) => {
            let cluster = state.cluster(arn, "clusterArn")?;
            let source = cluster.settings.kafka_version.clone();
            vec![json!({"sourceVersion": source, "targetVersions": compatible_targets(&source)})]
        }
        None => KAFKA_VERSIONS
            .iter()
            .map(|v| {
                json!({"sourceVersion": v.version, "targetVersions": compatible_targets(v.version)})
            })
            .collect(),
    };
    Ok(Json(json!({ "compatibleKafkaVersions": entries })))
}

/// ListKafkaVersions: `GET /v1/kafka-versions`.
pub async fn list_kafka_versions(RawQuery(query): RawQuery) -> Result<Json<Value>, ApiError> {
    let query = QueryParams::parse(query.as_deref());
    let all: Vec<Value> = KAFKA_VERSIONS
        .iter()
        .map(|v| {
            json!({
                "version": v.version,
                "status": if is_deprecated(v) { "DEPRECATED" } else { "ACTIVE" },
            })
        })
        .collect();
    let (page, next) = paginate(all, &query)?;
    let mut out = json!({ "kafkaVersions": page });
    if let Some(next) = next {
        out["nextToken"] = next.into();
    }
    Ok(Json(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upgrade_paths() {
        let t = compatible_targets("2.8.1");
        assert!(t.contains(&"3.5.1") && t.contains(&"3.7.x"));
        assert!(!t.contains(&"2.6.0"), "no downgrade");
        assert!(!t.contains(&"3.7.x.kraft"), "no ZooKeeper to KRaft");
        assert!(compatible_targets("3.7.x.kraft").is_empty());
        assert!(compatible_targets("2.8.2.tiered")
            .iter()
            .all(|v| supports_tiered_storage(v)));
        assert!(ordinal("2.4.1.1") > ordinal("2.4.1"));
        assert!(ordinal("3.7.x") > ordinal("3.6.0"));
    }
}
