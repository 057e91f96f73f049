//! Amazon Resource Names in MSK's shapes (MSK Developer Guide,
//! "Identifiers"): clusters `cluster/{name}/{uuid}-{n}`, configurations
//! `configuration/{name}/{uuid}-{n}`, cluster operations
//! `cluster-operation/{clusterName}/{clusterUuid-n}/{opUuid}` and brokers
//! `broker/{clusterName}/{clusterUuid-n}/{nodeUuid}`.

use crate::error::ApiError;

/// Region and account every ARN of this control plane is minted in.
#[derive(Debug, Clone)]
pub struct ArnScope {
    /// The region, e.g. `us-east-1`.
    pub region: String,
    /// The 12-digit account id.
    pub account: String,
}

/// A new resource id in MSK's `{uuid}-{n}` form (`n` is the cell number MSK
/// appends; always 1 here, as one control plane is one cell).
pub fn new_resource_id() -> String {
    format!("{}-1", uuid::Uuid::new_v4())
}

impl ArnScope {
    fn prefix(&self) -> String {
        format!("arn:aws:kafka:{}:{}", self.region, self.account)
    }

    /// A cluster ARN.
    pub fn cluster(&self, name: &str, id: &str) -> String {
        format!("{}:cluster/{name}/{id}", self.prefix())
    }

    /// A configuration ARN.
    pub fn configuration(&self, name: &str, id: &str) -> String {
        format!("{}:configuration/{name}/{id}", self.prefix())
    }

    /// A cluster-operation ARN.
    pub fn cluster_operation(&self, cluster_name: &str, cluster_id: &str) -> String {
        format!(
            "{}:cluster-operation/{cluster_name}/{cluster_id}/{}",
            self.prefix(),
            uuid::Uuid::new_v4()
        )
    }

    /// A broker node ARN (ListNodes `nodeARN`).
    pub fn broker(&self, cluster_name: &str, cluster_id: &str, node_id: &str) -> String {
        format!(
            "{}:broker/{cluster_name}/{cluster_id}/{node_id}",
            self.prefix()
        )
    }

    /// A default AWS-managed KMS key ARN, for clusters created without one.
    pub fn default_kms_key(&self) -> String {
        format!(
            "arn:aws:kms:{}:{}:key/{}",
            self.region,
            self.account,
            uuid::Builder::from_random_bytes(account_key_bytes(&self.account)).into_uuid()
        )
    }
}

/// Sixteen bytes derived from the account id, so that the default key ARN
/// is stable across restarts.
fn account_key_bytes(account: &str) -> [u8; 16] {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("aws/kafka:{account}").as_bytes());
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

/// The kind of MSK resource an ARN names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    /// `cluster/…`
    Cluster,
    /// `configuration/…`
    Configuration,
    /// `cluster-operation/…`
    ClusterOperation,
}

/// Checks that `arn` is an MSK ARN of this region and account and says what
/// it names; a malformed ARN is a 400 naming `parameter`.
pub fn classify(scope: &ArnScope, arn: &str, parameter: &str) -> Result<ResourceKind, ApiError> {
    let invalid =
        || ApiError::bad_request(parameter, format!("The provided ARN is not valid: {arn}"));
    let rest = arn.strip_prefix(&format!("{}:", scope.prefix()));
    let Some(rest) = rest else {
        if arn.starts_with("arn:aws:kafka:") {
            // A well-formed ARN of another region or account: not here.
            return Err(ApiError::not_found(
                parameter,
                "The requested resource doesn't exist.",
            ));
        }
        return Err(invalid());
    };
    let (kind, path) = rest.split_once('/').ok_or_else(invalid)?;
    let parts: Vec<&str> = path.split('/').collect();
    let kind = match (kind, parts.len()) {
        ("cluster", 2) => ResourceKind::Cluster,
        ("configuration", 2) => ResourceKind::Configuration,
        ("cluster-operation", 3) => ResourceKind::ClusterOperation,
        _ => return Err(invalid()),
    };
    if parts.iter().any(|p| p.is_empty()) {
        return Err(invalid());
    }
    Ok(kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> ArnScope {
        ArnScope {
            region: "us-east-1".into(),
            account: "123456789012".into(),
        }
    }

    #[test]
    fn shapes_and_classification() {
        let s = scope();
        let c = s.cluster("demo", "abc-1");
        assert_eq!(c, "arn:aws:kafka:us-east-1:123456789012:cluster/demo/abc-1");
        assert_eq!(classify(&s, &c, "clusterArn"), Ok(ResourceKind::Cluster));
        let op = s.cluster_operation("demo", "abc-1");
        assert_eq!(classify(&s, &op, "x"), Ok(ResourceKind::ClusterOperation));
        assert_eq!(
            classify(&s, "nonsense", "x").map_err(|e| e.kind),
            Err(crate::error::ErrorKind::BadRequest)
        );
        assert_eq!(
            classify(
                &s,
                "arn:aws:kafka:eu-west-1:123456789012:cluster/a/b-1",
                "x"
            )
            .map_err(|e| e.kind),
            Err(crate::error::ErrorKind::NotFound)
        );
    }
}
