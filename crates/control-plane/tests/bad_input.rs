//! Refusals: every validation rule of the guide for cluster creation and
//! each update gives the documented status, error type (the
//! `x-amzn-ErrorType` header botocore reads) and `invalidParameter`;
//! unsigned, malformed, wrongly signed, unknown-key and expired requests get
//! AWS's 403s; and the state database is byte-for-byte unchanged after every
//! refusal. Requests the CLI would not send are signed by botocore itself
//! (`support/signed_request.py`).

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::{enc, RawResponse, TestControlPlane};

const WAIT: Duration = Duration::from_secs(60);

/// One refusal to check: request, status, error type, invalidParameter.
struct Case {
    name: String,
    request: Value,
    status: u16,
    error: &'static str,
    parameter: Option<&'static str>,
}

fn case(
    name: impl Into<String>,
    request: Value,
    status: u16,
    error: &'static str,
    parameter: Option<&'static str>,
) -> Case {
    Case {
        name: name.into(),
        request,
        status,
        error,
        parameter,
    }
}

/// Sends every case in one batch and checks each answer, and that the
/// state database did not change.
async fn check_refusals(cp: &TestControlPlane, cases: Vec<Case>) {
    let before = cp.db_snapshot();
    check_answers(cp, cases).await;
    assert_unchanged(&before, &cp.db_snapshot());
}

/// Fails with the rows that differ, if any.
fn assert_unchanged(before: &[String], after: &[String]) {
    let short = |s: &String| s.chars().take(300).collect::<String>();
    let removed: Vec<String> = before
        .iter()
        .filter(|r| !after.contains(r))
        .map(short)
        .collect();
    let added: Vec<String> = after
        .iter()
        .filter(|r| !before.contains(r))
        .map(short)
        .collect();
    assert!(
        removed.is_empty() && added.is_empty(),
        "a refused request changed the state database:\nbefore: {removed:#?}\nafter: {added:#?}"
    );
}

/// Sends every case in one batch and checks each answer.
async fn check_answers(cp: &TestControlPlane, cases: Vec<Case>) {
    let requests: Vec<Value> = cases.iter().map(|c| c.request.clone()).collect();
    let answers: Vec<RawResponse> = cp.send_all(&requests).await;
    let mut failures = Vec::new();
    for (c, a) in cases.iter().zip(&answers) {
        let ok = a.status == c.status
            && a.error_type.as_deref() == Some(c.error)
            && (c.parameter.is_none() || a.invalid_parameter() == c.parameter)
            && a.body
                .get("message")
                .and_then(Value::as_str)
                .is_some_and(|m| !m.is_empty());
        if !ok {
            failures.push(format!(
                "{}: expected {} {} {:?}, got {} {:?} {}",
                c.name, c.status, c.error, c.parameter, a.status, a.error_type, a.body
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} wrong refusals:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn base_cluster(name: &str) -> Value {
    json!({
        "clusterName": name,
        "kafkaVersion": "3.5.1",
        "numberOfBrokerNodes": 3,
        "brokerNodeGroupInfo": {
            "instanceType": "kafka.m5.large",
            "clientSubnets": ["subnet-00000000000000001", "subnet-00000000000000002", "subnet-00000000000000003"]
        }
    })
}

/// `base` with the member at `path` (dot-separated) set to `value`, or
/// removed when `value` is null.
fn with(base: &Value, path: &str, value: Value) -> Value {
    let mut out = base.clone();
    let parts: Vec<&str> = path.split('.').collect();
    let mut node = &mut out;
    for p in &parts[..parts.len() - 1] {
        if node.get(*p).is_none() {
            node[*p] = json!({});
        }
        node = node.get_mut(*p).expect("member");
    }
    let last = parts[parts.len() - 1];
    match value {
        Value::Null => {
            if let Some(o) = node.as_object_mut() {
                o.remove(last);
            }
        }
        v => node[last] = v,
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rule_refuses_with_the_documented_error() {
    let started = std::time::Instant::now();
    // Rolling restarts pause between brokers so that the cluster stays
    // UPDATING long enough to be seen refusing updates.
    let cp =
        TestControlPlane::start(|c| c.timings.rolling_restart_pause = Duration::from_secs(3)).await;

    // An ACTIVE cluster to aim updates at (two zones, plaintext).
    let created = cp
        .send(cp.request(
            "POST",
            "/v1/clusters",
            &json!({
                "clusterName": "target",
                "kafkaVersion": "3.5.1",
                "numberOfBrokerNodes": 2,
                "brokerNodeGroupInfo": {"instanceType": "kafka.m5.large",
                    "clientSubnets": ["subnet-00000000000000001", "subnet-00000000000000002"]},
                "encryptionInfo": {"encryptionInTransit": {"clientBroker": "PLAINTEXT", "inCluster": true}}
            })
            .to_string(),
        ))
        .await;
    assert_eq!(created.status, 200, "{:?}", created.body);
    let arn = created.body["clusterArn"]
        .as_str()
        .expect("clusterArn")
        .to_string();
    let info = cp.wait_cluster_state(&arn, "ACTIVE", WAIT).await;
    let version = info["CurrentVersion"]
        .as_str()
        .expect("CurrentVersion")
        .to_string();
    let cfg = cp
        .send(cp.request(
            "POST",
            "/v1/configurations",
            &json!({"name": "used", "kafkaVersions": ["3.5.1"], "serverProperties": "YXV0by5jcmVhdGUudG9waWNzLmVuYWJsZT10cnVlCg=="}).to_string(),
        ))
        .await;
    assert_eq!(cfg.status, 200, "{:?}", cfg.body);
    let cfg_arn = cfg.body["arn"].as_str().expect("arn").to_string();

    let base = base_cluster("fresh");
    let post = |body: Value| cp.request("POST", "/v1/clusters", &body.to_string());
    let bad = |name: &str, body: Value, parameter: &'static str| {
        case(
            name,
            post(body),
            400,
            "BadRequestException",
            Some(parameter),
        )
    };
    let m5_4x = with(
        &base,
        "brokerNodeGroupInfo.instanceType",
        json!("kafka.m5.4xlarge"),
    );
    let mut cases = vec![
        bad("missing name", with(&base, "clusterName", Value::Null), "clusterName"),
        bad("long name", with(&base, "clusterName", json!("x".repeat(65))), "clusterName"),
        bad("name with spaces", with(&base, "clusterName", json!("bad name!")), "clusterName"),
        case("duplicate name", post(with(&base, "clusterName", json!("target"))), 409, "ConflictException", Some("clusterName")),
        bad("missing version", with(&base, "kafkaVersion", Value::Null), "kafkaVersion"),
        bad("unknown version", with(&base, "kafkaVersion", json!("9.9.9")), "kafkaVersion"),
        bad("creation disabled (2.4.1)", with(&base, "kafkaVersion", json!("2.4.1")), "kafkaVersion"),
        bad("missing broker count", with(&base, "numberOfBrokerNodes", Value::Null), "numberOfBrokerNodes"),
        bad("broker count not a multiple of the zones", with(&base, "numberOfBrokerNodes", json!(4)), "numberOfBrokerNodes"),
        bad("zero brokers", with(&base, "numberOfBrokerNodes", json!(0)), "numberOfBrokerNodes"),
        bad("33 brokers in ZooKeeper mode", with(&base, "numberOfBrokerNodes", json!(33)), "numberOfBrokerNodes"),
        bad("broker count of the wrong type", with(&base, "numberOfBrokerNodes", json!("three")), "numberOfBrokerNodes"),
        bad("missing broker node group", with(&base, "brokerNodeGroupInfo", Value::Null), "brokerNodeGroupInfo"),
        bad("missing instance type", with(&base, "brokerNodeGroupInfo.instanceType", Value::Null), "instanceType"),
        bad("unknown instance type", with(&base, "brokerNodeGroupInfo.instanceType", json!("kafka.m9.huge")), "instanceType"),
        bad("M7g on 2.8.1", with(&with(&base, "brokerNodeGroupInfo.instanceType", json!("kafka.m7g.large")), "kafkaVersion", json!("2.8.1")), "instanceType"),
        bad("one subnet", with(&with(&base, "brokerNodeGroupInfo.clientSubnets", json!(["subnet-00000000000000001"])), "numberOfBrokerNodes", json!(1)), "clientSubnets"),
        bad("four subnets", with(&base, "brokerNodeGroupInfo.clientSubnets", json!(["subnet-00000000000000001", "subnet-00000000000000002", "subnet-00000000000000003", "subnet-00000000000000004"])), "clientSubnets"),
        bad("unknown subnet", with(&base, "brokerNodeGroupInfo.clientSubnets", json!(["subnet-00000000000000001", "subnet-00000000000000002", "subnet-nope"])), "clientSubnets"),
        bad("two subnets in one zone", with(&base, "brokerNodeGroupInfo.clientSubnets", json!(["subnet-00000000000000001", "subnet-00000000000000002", "subnet-00000000000000004"])), "clientSubnets"),
        bad("AZ distribution", with(&base, "brokerNodeGroupInfo.brokerAZDistribution", json!("SPREAD")), "brokerAZDistribution"),
        bad("zero volume", with(&base, "brokerNodeGroupInfo.storageInfo.ebsStorageInfo.volumeSize", json!(0)), "volumeSize"),
        bad("huge volume", with(&base, "brokerNodeGroupInfo.storageInfo.ebsStorageInfo.volumeSize", json!(16385)), "volumeSize"),
        bad("throughput on m5.large", with(&base, "brokerNodeGroupInfo.storageInfo.ebsStorageInfo.provisionedThroughput", json!({"enabled": true, "volumeThroughput": 250})), "provisionedThroughput"),
        bad("throughput with a 5 GiB volume", with(&with(&m5_4x, "brokerNodeGroupInfo.storageInfo.ebsStorageInfo.volumeSize", json!(5)), "brokerNodeGroupInfo.storageInfo.ebsStorageInfo.provisionedThroughput", json!({"enabled": true, "volumeThroughput": 250})), "volumeSize"),
        bad("throughput above the size's maximum", with(&m5_4x, "brokerNodeGroupInfo.storageInfo.ebsStorageInfo.provisionedThroughput", json!({"enabled": true, "volumeThroughput": 594})), "volumeThroughput"),
        bad("throughput below 250", with(&m5_4x, "brokerNodeGroupInfo.storageInfo.ebsStorageInfo.provisionedThroughput", json!({"enabled": true, "volumeThroughput": 100})), "volumeThroughput"),
        bad("tiered on 2.8.1", with(&with(&base, "storageMode", json!("TIERED")), "kafkaVersion", json!("2.8.1")), "storageMode"),
        bad("tiered on t3.small", with(&with(&with(&base, "storageMode", json!("TIERED")), "kafkaVersion", json!("3.6.0")), "brokerNodeGroupInfo.instanceType", json!("kafka.t3.small")), "storageMode"),
        bad("unknown storage mode", with(&base, "storageMode", json!("CLOUD")), "storageMode"),
        bad("monitoring level", with(&base, "enhancedMonitoring", json!("LOTS")), "enhancedMonitoring"),
        bad("both exporters off", with(&base, "openMonitoring", json!({"prometheus": {"jmxExporter": {"enabledInBroker": false}, "nodeExporter": {"enabledInBroker": false}}})), "openMonitoring"),
        bad("exporter without enabledInBroker", with(&base, "openMonitoring", json!({"prometheus": {"jmxExporter": {}}})), "enabledInBroker"),
        bad("CloudWatch logs without a group", with(&base, "loggingInfo", json!({"brokerLogs": {"cloudWatchLogs": {"enabled": true}}})), "logGroup"),
        bad("S3 logs without a bucket", with(&base, "loggingInfo", json!({"brokerLogs": {"s3": {"enabled": true}}})), "bucket"),
        bad("IAM over plaintext", with(&with(&base, "clientAuthentication", json!({"sasl": {"iam": {"enabled": true}}})), "encryptionInfo", json!({"encryptionInTransit": {"clientBroker": "PLAINTEXT"}})), "clientBroker"),
        bad("SCRAM over TLS_PLAINTEXT", with(&with(&base, "clientAuthentication", json!({"sasl": {"scram": {"enabled": true}}})), "encryptionInfo", json!({"encryptionInTransit": {"clientBroker": "TLS_PLAINTEXT"}})), "clientBroker"),
        bad("IAM without in-cluster encryption", with(&with(&base, "clientAuthentication", json!({"sasl": {"iam": {"enabled": true}}})), "encryptionInfo", json!({"encryptionInTransit": {"clientBroker": "TLS", "inCluster": false}})), "inCluster"),
        bad("mTLS without a CA", with(&base, "clientAuthentication", json!({"tls": {"enabled": true}})), "certificateAuthorityArnList"),
        bad("mTLS over plaintext", with(&with(&base, "clientAuthentication", json!({"tls": {"enabled": true, "certificateAuthorityArnList": ["arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/x"]}})), "encryptionInfo", json!({"encryptionInTransit": {"clientBroker": "PLAINTEXT"}})), "clientBroker"),
        bad("no authentication at all", with(&base, "clientAuthentication", json!({"unauthenticated": {"enabled": false}})), "clientAuthentication"),
        bad("unknown client-broker encryption", with(&base, "encryptionInfo", json!({"encryptionInTransit": {"clientBroker": "ROT13"}})), "clientBroker"),
        bad("at-rest key that is not KMS", with(&base, "encryptionInfo", json!({"encryptionAtRest": {"dataVolumeKMSKeyId": "arn:aws:s3:::bucket"}})), "dataVolumeKMSKeyId"),
        bad("unknown configuration", with(&base, "configurationInfo", json!({"arn": "arn:aws:kafka:us-east-1:123456789012:configuration/none/00000000-0000-0000-0000-000000000000-1", "revision": 1})), "configurationInfo"),
        bad("unknown revision", with(&base, "configurationInfo", json!({"arn": cfg_arn, "revision": 7})), "revision"),
        bad("configuration for another version", with(&with(&base, "configurationInfo", json!({"arn": cfg_arn, "revision": 1})), "kafkaVersion", json!("3.6.0")), "configurationInfo"),
        bad("reserved tag prefix", with(&base, "tags", json!({"aws:owner": "me"})), "tags"),
        bad("tag key too long", with(&base, "tags", json!({"k".repeat(129): "v"})), "tags"),
        bad("51 tags", with(&base, "tags", Value::Object((0..51).map(|i| (format!("k{i}"), json!("v"))).collect())), "tags"),
        case("malformed JSON", cp.request("POST", "/v1/clusters", "{\"clusterName\": "), 400, "BadRequestException", None),
        case("v2 serverless", cp.request("POST", "/api/v2/clusters", &json!({"clusterName": "s", "serverless": {"vpcConfigs": [{"subnetIds": ["subnet-1"]}]}}).to_string()), 400, "BadRequestException", Some("serverless")),
        case("v2 without provisioned", cp.request("POST", "/api/v2/clusters", &json!({"clusterName": "p"}).to_string()), 400, "BadRequestException", Some("provisioned")),
    ];

    // Updates on the ACTIVE cluster.
    let a = enc(&arn);
    let put = |path: &str, body: Value| {
        cp.request("PUT", &format!("/v1/clusters/{a}{path}"), &body.to_string())
    };
    let v = version.as_str();
    let upd = |name: &str, req: Value, parameter: &'static str| {
        case(name, req, 400, "BadRequestException", Some(parameter))
    };
    cases.extend([
        upd("stale currentVersion", put("/nodes/count", json!({"currentVersion": "KSTALE", "targetNumberOfBrokerNodes": 4})), "currentVersion"),
        upd("missing currentVersion", put("/nodes/count", json!({"targetNumberOfBrokerNodes": 4})), "currentVersion"),
        upd("count not a multiple of the zones", put("/nodes/count", json!({"currentVersion": v, "targetNumberOfBrokerNodes": 3})), "targetNumberOfBrokerNodes"),
        upd("same count", put("/nodes/count", json!({"currentVersion": v, "targetNumberOfBrokerNodes": 2})), "targetNumberOfBrokerNodes"),
        upd("same broker type", put("/nodes/type", json!({"currentVersion": v, "targetInstanceType": "kafka.m5.large"})), "targetInstanceType"),
        upd("unknown broker type", put("/nodes/type", json!({"currentVersion": v, "targetInstanceType": "kafka.c5.large"})), "targetInstanceType"),
        upd("storage for one broker", put("/nodes/storage", json!({"currentVersion": v, "targetBrokerEBSVolumeInfo": [{"kafkaBrokerNodeId": "1", "volumeSizeGB": 1100}]})), "kafkaBrokerNodeId"),
        upd("smaller storage", put("/nodes/storage", json!({"currentVersion": v, "targetBrokerEBSVolumeInfo": [{"kafkaBrokerNodeId": "All", "volumeSizeGB": 500}]})), "volumeSizeGB"),
        upd("too much storage", put("/nodes/storage", json!({"currentVersion": v, "targetBrokerEBSVolumeInfo": [{"kafkaBrokerNodeId": "All", "volumeSizeGB": 20000}]})), "volumeSizeGB"),
        upd("tiered on 3.5.1", put("/storage", json!({"currentVersion": v, "storageMode": "TIERED"})), "storageMode"),
        upd("storage update with nothing", put("/storage", json!({"currentVersion": v})), "storageMode"),
        upd("kafka downgrade", put("/version", json!({"currentVersion": v, "targetKafkaVersion": "2.8.1"})), "targetKafkaVersion"),
        upd("ZooKeeper to KRaft", put("/version", json!({"currentVersion": v, "targetKafkaVersion": "3.7.x.kraft"})), "targetKafkaVersion"),
        upd("monitoring with nothing", put("/monitoring", json!({"currentVersion": v})), "enhancedMonitoring"),
        upd("monitoring with both exporters off", put("/monitoring", json!({"currentVersion": v, "openMonitoring": {"prometheus": {"jmxExporter": {"enabledInBroker": false}, "nodeExporter": {"enabledInBroker": false}}}})), "openMonitoring"),
        upd("configuration that does not exist", put("/configuration", json!({"currentVersion": v, "configurationInfo": {"arn": "arn:aws:kafka:us-east-1:123456789012:configuration/none/x-1", "revision": 1}})), "configurationInfo"),
        upd("reboot two brokers", put("/reboot-broker", json!({"brokerIds": ["1", "2"]})), "brokerIds"),
        upd("reboot an unknown broker", put("/reboot-broker", json!({"brokerIds": ["9"]})), "brokerIds"),
        upd("security: in-cluster change", cp.request("PATCH", &format!("/v1/clusters/{a}/security"), &json!({"currentVersion": v, "encryptionInfo": {"encryptionInTransit": {"inCluster": false}}}).to_string()), "inCluster"),
        upd("security: IAM over plaintext", cp.request("PATCH", &format!("/v1/clusters/{a}/security"), &json!({"currentVersion": v, "clientAuthentication": {"sasl": {"iam": {"enabled": true}}}}).to_string()), "clientBroker"),
        case("update of an unknown cluster", cp.request("PUT", &format!("/v1/clusters/{}/nodes/count", enc(&arn.replace("target/", "nothere/"))), &json!({"currentVersion": v, "targetNumberOfBrokerNodes": 4}).to_string()), 404, "NotFoundException", Some("clusterArn")),
        case("describe unknown cluster", cp.request("GET", &format!("/v1/clusters/{}", enc("arn:aws:kafka:us-east-1:123456789012:cluster/x/y-1")), ""), 404, "NotFoundException", Some("clusterArn")),
        case("describe malformed ARN", cp.request("GET", "/v1/clusters/not-an-arn", ""), 400, "BadRequestException", Some("clusterArn")),
        case("maxResults 0", cp.request("GET", "/v1/clusters?maxResults=0", ""), 400, "BadRequestException", Some("maxResults")),
        case("maxResults 101", cp.request("GET", "/api/v2/clusters?maxResults=101", ""), 400, "BadRequestException", Some("maxResults")),
        case("bad nextToken", cp.request("GET", "/v1/clusters?nextToken=garbage", ""), 400, "BadRequestException", Some("nextToken")),
        case("bad cluster type filter", cp.request("GET", "/api/v2/clusters?clusterTypeFilter=BIG", ""), 400, "BadRequestException", Some("clusterTypeFilter")),
        // Tags.
        case("tag an operation", cp.request("POST", &format!("/v1/tags/{}", enc(&format!("arn:aws:kafka:us-east-1:123456789012:cluster-operation/target/{}/x", arn.rsplit('/').next().unwrap_or_default()))), &json!({"tags": {"a": "b"}}).to_string()), 400, "BadRequestException", Some("resourceArn")),
        case("tag with aws: prefix", cp.request("POST", &format!("/v1/tags/{a}"), &json!({"tags": {"aws:x": "b"}}).to_string()), 400, "BadRequestException", Some("tags")),
        case("untag aws: key", cp.request("DELETE", &format!("/v1/tags/{a}?tagKeys=aws%3Ax"), ""), 400, "BadRequestException", Some("tagKeys")),
        case("untag without keys", cp.request("DELETE", &format!("/v1/tags/{a}"), ""), 400, "BadRequestException", Some("tagKeys")),
        case("tag a missing cluster", cp.request("POST", &format!("/v1/tags/{}", enc("arn:aws:kafka:us-east-1:123456789012:cluster/x/y-1")), &json!({"tags": {"a": "b"}}).to_string()), 404, "NotFoundException", Some("resourceArn")),
        case("too many tags in total", cp.request("POST", &format!("/v1/tags/{a}"), &json!({"tags": Value::Object((0..51).map(|i| (format!("k{i}"), json!("v"))).collect())}).to_string()), 400, "BadRequestException", Some("tags")),
        // Configurations.
        case("configuration name", cp.request("POST", "/v1/configurations", &json!({"name": "bad name", "serverProperties": "YQ=="}).to_string()), 400, "BadRequestException", Some("name")),
        case("duplicate configuration", cp.request("POST", "/v1/configurations", &json!({"name": "used", "serverProperties": "YXV0by5jcmVhdGUudG9waWNzLmVuYWJsZT10cnVlCg=="}).to_string()), 409, "ConflictException", Some("name")),
        case("properties not base64", cp.request("POST", "/v1/configurations", &json!({"name": "c1", "serverProperties": "not base64!!"}).to_string()), 400, "BadRequestException", Some("serverProperties")),
        case("property outside the allow-list", cp.request("POST", "/v1/configurations", &json!({"name": "c1", "serverProperties": "bGlzdGVuZXJzPVBMQUlOVEVYVDovLzo5MDky"}).to_string()), 400, "BadRequestException", Some("serverProperties")),
        case("replica.lag.time.max.ms below 10000", cp.request("POST", "/v1/configurations", &json!({"name": "c1", "serverProperties": "cmVwbGljYS5sYWcudGltZS5tYXgubXM9NTAwMA=="}).to_string()), 400, "BadRequestException", Some("serverProperties")),
        case("zookeeper.session.timeout.ms above 18000", cp.request("POST", "/v1/configurations", &json!({"name": "c1", "serverProperties": "em9va2VlcGVyLnNlc3Npb24udGltZW91dC5tcz0yMDAwMA=="}).to_string()), 400, "BadRequestException", Some("serverProperties")),
        case("configuration for an unknown version", cp.request("POST", "/v1/configurations", &json!({"name": "c1", "kafkaVersions": ["0.9"], "serverProperties": "YXV0by5jcmVhdGUudG9waWNzLmVuYWJsZT10cnVlCg=="}).to_string()), 400, "BadRequestException", Some("kafkaVersions")),
        case("missing serverProperties", cp.request("POST", "/v1/configurations", &json!({"name": "c1"}).to_string()), 400, "BadRequestException", Some("serverProperties")),
        case("revision not a number", cp.request("GET", &format!("/v1/configurations/{}/revisions/abc", enc(&cfg_arn)), ""), 400, "BadRequestException", Some("revision")),
        case("revision that does not exist", cp.request("GET", &format!("/v1/configurations/{}/revisions/99", enc(&cfg_arn)), ""), 404, "NotFoundException", Some("revision")),
    ]);
    check_refusals(&cp, cases).await;

    // The guide's own create-cluster example: two subnets and three brokers
    // is refused (brokers must be spread evenly over the zones).
    let bngi = cp.dir.join("brokernodegroupinfo.json");
    std::fs::write(&bngi, r#"{"InstanceType": "kafka.m5.large", "ClientSubnets": ["subnet-00000000000000001", "subnet-00000000000000002"], "SecurityGroups": ["sg-1"]}"#).expect("write");
    let before = cp.db_snapshot();
    let guide = cp
        .aws(&[
            "create-cluster",
            "--cluster-name",
            "Your-Cluster-Name",
            "--broker-node-group-info",
            &format!("file://{}", bngi.display()),
            "--kafka-version",
            "2.8.1",
            "--number-of-broker-nodes",
            "3",
            "--enhanced-monitoring",
            "PER_BROKER",
        ])
        .await;
    assert_eq!(guide.error_code(), "BadRequestException");
    assert!(
        guide
            .stderr
            .contains("multiple of the number of Availability Zones"),
        "{}",
        guide.stderr
    );
    assert_unchanged(&before, &cp.db_snapshot());

    // Limits: 50 revisions per configuration, 100 configurations.
    let revisions: Vec<Value> = (0..49)
        .map(|_| {
            cp.request(
                "PUT",
                &format!("/v1/configurations/{}", enc(&cfg_arn)),
                &json!({"serverProperties": "bnVtLnBhcnRpdGlvbnM9Mgo="}).to_string(),
            )
        })
        .collect();
    assert!(cp
        .send_all(&revisions)
        .await
        .iter()
        .all(|r| r.status == 200));
    let configs: Vec<Value> = (0..99)
        .map(|i| cp.request("POST", "/v1/configurations", &json!({"name": format!("cfg-{i}"), "serverProperties": "bnVtLnBhcnRpdGlvbnM9Mgo="}).to_string()))
        .collect();
    assert!(cp.send_all(&configs).await.iter().all(|r| r.status == 200));
    check_refusals(&cp, vec![
        case("51st revision", cp.request("PUT", &format!("/v1/configurations/{}", enc(&cfg_arn)), &json!({"serverProperties": "bnVtLnBhcnRpdGlvbnM9Mgo="}).to_string()), 400, "BadRequestException", Some("arn")),
        case("101st configuration", cp.request("POST", "/v1/configurations", &json!({"name": "one-too-many", "serverProperties": "bnVtLnBhcnRpdGlvbnM9Mgo="}).to_string()), 400, "BadRequestException", Some("name")),
    ])
    .await;

    // State gating: while a rolling update runs the cluster is UPDATING and
    // every other update is refused; the storage cool-down refuses a second
    // scaling.
    let op = cp
        .send(put(
            "/nodes/type",
            json!({"currentVersion": v, "targetInstanceType": "kafka.m5.xlarge"}),
        ))
        .await;
    assert_eq!(op.status, 200, "{:?}", op.body);
    let op_arn = op.body["clusterOperationArn"]
        .as_str()
        .expect("op")
        .to_string();
    let operations_before = cp
        .db_snapshot()
        .iter()
        .filter(|r| r.starts_with("operations:"))
        .count();
    check_answers(
        &cp,
        vec![
            case(
                "update while UPDATING",
                put(
                    "/monitoring",
                    json!({"currentVersion": v, "enhancedMonitoring": "PER_BROKER"}),
                ),
                400,
                "BadRequestException",
                Some("clusterArn"),
            ),
            case(
                "reboot while UPDATING",
                put("/reboot-broker", json!({"brokerIds": ["1"]})),
                400,
                "BadRequestException",
                Some("clusterArn"),
            ),
        ],
    )
    .await;
    // (The running operation writes its progress meanwhile; the refusals
    // added no operation.)
    let operations_after = cp
        .db_snapshot()
        .iter()
        .filter(|r| r.starts_with("operations:"))
        .count();
    assert_eq!(operations_before, operations_after);
    let done = cp.wait_operation(&op_arn, WAIT).await;
    assert_eq!(done["OperationState"], "UPDATE_COMPLETE", "{done}");
    assert_eq!(done["SourceClusterInfo"]["InstanceType"], "kafka.m5.large");
    assert_eq!(done["TargetClusterInfo"]["InstanceType"], "kafka.m5.xlarge");
    let info = cp.wait_cluster_state(&arn, "ACTIVE", WAIT).await;
    let v2 = info["CurrentVersion"]
        .as_str()
        .expect("version")
        .to_string();
    let scaled = cp
        .aws(&[
            "update-broker-storage",
            "--cluster-arn",
            &arn,
            "--current-version",
            &v2,
            "--target-broker-ebs-volume-info",
            "KafkaBrokerNodeId=All,VolumeSizeGB=1100",
        ])
        .await
        .ok();
    let scaled_op = cp
        .wait_operation(scaled["ClusterOperationArn"].as_str().expect("op"), WAIT)
        .await;
    assert_eq!(scaled_op["OperationState"], "UPDATE_COMPLETE");
    let info = cp.wait_cluster_state(&arn, "ACTIVE", WAIT).await;
    assert_eq!(
        info["BrokerNodeGroupInfo"]["StorageInfo"]["EbsStorageInfo"]["VolumeSize"],
        1100
    );
    let v3 = info["CurrentVersion"]
        .as_str()
        .expect("version")
        .to_string();
    check_refusals(&cp, vec![case(
        "storage scaling within the cool-down",
        put("/nodes/storage", json!({"currentVersion": v3, "targetBrokerEBSVolumeInfo": [{"kafkaBrokerNodeId": "All", "volumeSizeGB": 1200}]})),
        400,
        "BadRequestException",
        Some("volumeSizeGB"),
    )])
    .await;
    eprintln!("bad-input checks took {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_and_wrongly_signed_requests_are_refused() {
    let cp = TestControlPlane::start(|_| {}).await;
    let list = cp.request("GET", "/v1/clusters", "");
    let create = cp.request(
        "POST",
        "/v1/configurations",
        &json!({"name": "x", "serverProperties": "bnVtLnBhcnRpdGlvbnM9Mgo="}).to_string(),
    );
    let mut unsigned = create.clone();
    unsigned["sign"] = json!("none");
    let mut wrong_secret = create.clone();
    wrong_secret["secret"] = json!("not-the-secret");
    let mut unknown_key = create.clone();
    unknown_key["access_key"] = json!("AKIAUNKNOWNKEY000000");
    let mut expired = create.clone();
    let old = time::OffsetDateTime::now_utc() - time::Duration::minutes(20);
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    expired["amz_date"] = json!(old.format(&fmt).expect("format"));
    let mut future = create.clone();
    future["amz_date"] = json!(
        (time::OffsetDateTime::now_utc() + time::Duration::minutes(20))
            .format(&fmt)
            .expect("format")
    );
    let mut tampered = create.clone();
    tampered["tamper_body"] =
        json!(json!({"name": "y", "serverProperties": "bnVtLnBhcnRpdGlvbnM9Mgo="}).to_string());
    let mut other_region = create.clone();
    other_region["region"] = json!("eu-west-1");
    let mut malformed = list.clone();
    malformed["sign"] = json!("none");
    malformed["headers"] = json!({"Authorization": "AWS4-HMAC-SHA256 Credential=AKIA/20260101/us-east-1/kafka/aws4_request", "X-Amz-Date": "20260101T000000Z"});
    let mut unsigned_get = list.clone();
    unsigned_get["sign"] = json!("none");
    let forbidden =
        |name: &str, request: Value, error: &'static str| case(name, request, 403, error, None);
    check_refusals(
        &cp,
        vec![
            forbidden(
                "unsigned POST",
                unsigned,
                "MissingAuthenticationTokenException",
            ),
            forbidden(
                "unsigned GET",
                unsigned_get,
                "MissingAuthenticationTokenException",
            ),
            forbidden(
                "malformed Authorization",
                malformed,
                "IncompleteSignatureException",
            ),
            forbidden("wrong secret", wrong_secret, "InvalidSignatureException"),
            forbidden(
                "unknown access key",
                unknown_key,
                "UnrecognizedClientException",
            ),
            forbidden(
                "signed 20 minutes ago",
                expired,
                "InvalidSignatureException",
            ),
            forbidden(
                "signed 20 minutes ahead",
                future,
                "InvalidSignatureException",
            ),
            forbidden(
                "body changed after signing",
                tampered,
                "InvalidSignatureException",
            ),
            forbidden(
                "signed for another region",
                other_region,
                "InvalidSignatureException",
            ),
        ],
    )
    .await;
    // The same request signed properly works, ARN paths included (the
    // CLI double-encodes them in the canonical URI).
    let before = cp.db_snapshot();
    let ok = cp.send(list).await;
    assert_eq!(ok.status, 200);
    assert_unchanged(&before, &cp.db_snapshot());
    let missing = cp.aws(&["describe-cluster", "--cluster-arn", "arn:aws:kafka:us-east-1:123456789012:cluster/demo/6e9b5ba4-1b1c-4a9e-a9f5-2f0c0a0e1a11-1"]).await;
    assert_eq!(missing.error_code(), "NotFoundException");
    // The AWS CLI with a wrong secret or an unknown key.
    let wrong = cp
        .aws_as(
            &cp.credential.access_key_id,
            "wrong-secret",
            &["list-clusters"],
        )
        .await;
    assert_eq!(wrong.error_code(), "InvalidSignatureException");
    let unknown = cp
        .aws_as("AKIAUNKNOWNKEY000000", "whatever", &["list-clusters"])
        .await;
    assert_eq!(unknown.error_code(), "UnrecognizedClientException");
    // A second key added to the store works.
    let added = cp
        .server
        .as_ref()
        .expect("running")
        .add_credential()
        .expect("add key");
    let listed = cp
        .aws_as(
            &added.access_key_id,
            &added.secret_access_key,
            &["list-clusters"],
        )
        .await
        .ok();
    assert_eq!(listed["ClusterInfoList"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_whose_brokers_cannot_start_fails_and_can_be_deleted() {
    let cp = TestControlPlane::start(|c| {
        c.broker_binary = "/bin/false".into();
        c.timings.broker_ready_timeout = Duration::from_secs(3);
    })
    .await;
    let created = cp
        .send(cp.request("POST", "/v1/clusters", &base_cluster("doomed").to_string()))
        .await;
    assert_eq!(created.status, 200);
    let arn = created.body["clusterArn"]
        .as_str()
        .expect("arn")
        .to_string();
    let info = cp.wait_cluster_state(&arn, "FAILED", WAIT).await;
    assert!(
        info["StateInfo"]["Message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{info}"
    );
    let a = enc(&arn);
    let version = info["CurrentVersion"]
        .as_str()
        .expect("version")
        .to_string();
    check_refusals(
        &cp,
        vec![
            case(
                "bootstrap brokers of a FAILED cluster",
                cp.request("GET", &format!("/v1/clusters/{a}/bootstrap-brokers"), ""),
                409,
                "ConflictException",
                Some("clusterArn"),
            ),
            case(
                "update of a FAILED cluster",
                cp.request(
                    "PUT",
                    &format!("/v1/clusters/{a}/monitoring"),
                    &json!({"currentVersion": version, "enhancedMonitoring": "PER_BROKER"})
                        .to_string(),
                ),
                400,
                "BadRequestException",
                Some("clusterArn"),
            ),
            case(
                "delete with a stale version",
                cp.request(
                    "DELETE",
                    &format!("/v1/clusters/{a}?currentVersion=KSTALE"),
                    "",
                ),
                400,
                "BadRequestException",
                Some("currentVersion"),
            ),
        ],
    )
    .await;
    let deleted = cp
        .aws(&[
            "delete-cluster",
            "--cluster-arn",
            &arn,
            "--current-version",
            &version,
        ])
        .await
        .ok();
    assert_eq!(deleted["State"], "DELETING");
    let deadline = std::time::Instant::now() + WAIT;
    while cp.stored_state(&arn).is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "FAILED cluster not deleted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
