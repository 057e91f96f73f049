//! Tags on clusters and configurations: TagResource and UntagResource (204,
//! no body) and ListTagsForResource, with the guide's rules ("Tagging"):
//! at most 50 per resource, keys 1–128 and values 0–256 characters of
//! letters, digits, spaces and `_ . : / = + - @`, the `aws:` prefix reserved,
//! a repeated key overwriting the old value.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::{parse_body, AppState, QueryParams};
use crate::arn::{classify, ResourceKind};
use crate::clusters::validation::required;
use crate::error::ApiError;
use crate::store::StoreTx;
use crate::wire::Tags;

/// Tags per resource.
pub const MAX_TAGS: usize = 50;

fn allowed_char(c: char) -> bool {
    c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(c)
}

fn reserved(key: &str) -> bool {
    key.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("aws:"))
}

/// Checks tags to be added to a resource that has `existing`.
pub fn validate_new_tags(existing: &Tags, new: &Tags) -> Result<(), ApiError> {
    for (k, v) in new {
        let len = k.chars().count();
        if !(1..=128).contains(&len) || !k.chars().all(allowed_char) {
            return Err(ApiError::bad_request(
                "tags",
                format!("The tag key {k:?} is not valid: use 1 to 128 letters, digits, spaces and _ . : / = + - @."),
            ));
        }
        if v.chars().count() > 256 || !v.chars().all(allowed_char) {
            return Err(ApiError::bad_request(
                "tags",
                format!("The value of tag {k:?} is not valid: use up to 256 letters, digits, spaces and _ . : / = + - @."),
            ));
        }
        if reserved(k) {
            return Err(ApiError::bad_request(
                "tags",
                format!("The tag key {k:?} uses the reserved prefix aws:."),
            ));
        }
    }
    let total = existing
        .keys()
        .chain(new.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    if total > MAX_TAGS {
        return Err(ApiError::bad_request(
            "tags",
            format!("A resource can have at most {MAX_TAGS} tags; this would make {total}."),
        ));
    }
    Ok(())
}

/// Reads the tags of `arn`, lets `change` edit them, and stores them.
fn with_tags<T>(
    state: &AppState,
    arn: &str,
    change: impl FnOnce(&mut Tags) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    let kind = classify(&state.scope, arn, "resourceArn")?;
    let missing = || ApiError::not_found("resourceArn", "The requested resource doesn't exist.");
    state.store.transaction(|tx: &StoreTx<'_>| match kind {
        ResourceKind::Cluster => {
            let mut c = tx.cluster(arn)?.ok_or_else(missing)?;
            let out = change(&mut c.tags)?;
            tx.put_cluster(&c)?;
            Ok(out)
        }
        ResourceKind::Configuration => {
            let mut c = tx.configuration(arn)?.ok_or_else(missing)?;
            let out = change(&mut c.tags)?;
            tx.put_configuration(&c)?;
            Ok(out)
        }
        ResourceKind::ClusterOperation => Err(ApiError::bad_request(
            "resourceArn",
            "Cluster operations can't be tagged.",
        )),
    })
}

/// Body of TagResource.
#[derive(Debug, Default, Deserialize)]
pub struct TagResourceRequest {
    /// Tags to add or overwrite.
    pub tags: Option<Tags>,
}

/// TagResource: `POST /v1/tags/{resourceArn}` → 204.
pub async fn tag_resource(
    State(state): State<AppState>,
    Path(arn): Path<String>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let req: TagResourceRequest = parse_body(&body)?;
    let new = required(req.tags.as_ref(), "tags")?.clone();
    if new.is_empty() {
        return Err(ApiError::bad_request("tags", "Specify at least one tag."));
    }
    with_tags(&state, &arn, |tags| {
        validate_new_tags(tags, &new)?;
        tags.extend(new.clone());
        Ok(())
    })?;
    Ok(StatusCode::NO_CONTENT)
}

/// UntagResource: `DELETE /v1/tags/{resourceArn}?tagKeys=…` → 204.
pub async fn untag_resource(
    State(state): State<AppState>,
    Path(arn): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<StatusCode, ApiError> {
    let query = QueryParams::parse(query.as_deref());
    let keys = query.all("tagKeys");
    if keys.is_empty() {
        return Err(ApiError::bad_request(
            "tagKeys",
            "The parameter tagKeys is required.",
        ));
    }
    if let Some(k) = keys.iter().find(|k| reserved(k)) {
        return Err(ApiError::bad_request(
            "tagKeys",
            format!("The tag key {k:?} uses the reserved prefix aws: and can't be removed."),
        ));
    }
    with_tags(&state, &arn, |tags| {
        for k in &keys {
            tags.remove(*k);
        }
        Ok(())
    })?;
    Ok(StatusCode::NO_CONTENT)
}

/// ListTagsForResource: `GET /v1/tags/{resourceArn}`.
pub async fn list_tags_for_resource(
    State(state): State<AppState>,
    Path(arn): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let tags = with_tags(&state, &arn, |tags| Ok(tags.clone()))?;
    Ok(Json(json!({ "tags": tags })))
}
