//! Starting and stopping a control plane: [`Server::start`] opens the
//! store, makes sure a root access key exists, reconciles clusters with the
//! engine, and serves the API until [`RunningServer::shutdown`].

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::Json;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::api::{router, AppState};
use crate::clusters::ClusterRecord;
use crate::config::ControlPlaneConfig;
use crate::engine::Engine;
use crate::error::ApiError;
use crate::provisioner::{ProcessProvisioner, Provisioner};
use crate::store::{Credential, Store, StoreError};

/// Why the control plane could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The state database.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The listen address.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Anything the API layer reported.
    #[error("{0}")]
    Api(#[from] crate::error::ApiError),
}

/// A control plane ready to start.
pub struct Server {
    config: ControlPlaneConfig,
    provisioner: Arc<dyn Provisioner>,
}

/// A started control plane.
pub struct RunningServer {
    addr: SocketAddr,
    app: AppState,
    root: Credential,
    store: Arc<Store>,
    engine: Engine,
    region: String,
    stop: Option<oneshot::Sender<()>>,
    serving: JoinHandle<()>,
}

impl Server {
    /// A server whose brokers are `millrace broker` processes.
    pub fn new(config: ControlPlaneConfig) -> Self {
        let provisioner = Arc::new(ProcessProvisioner::new(
            config.broker_binary.clone(),
            config.timings.broker_stop_timeout,
        ));
        Server::with_provisioner(config, provisioner)
    }

    /// A server driving clusters through `provisioner`.
    pub fn with_provisioner(config: ControlPlaneConfig, provisioner: Arc<dyn Provisioner>) -> Self {
        Server {
            config,
            provisioner,
        }
    }

    /// Opens the state, reconciles clusters, binds and serves.
    pub async fn start(self) -> Result<RunningServer, StartError> {
        let store = Arc::new(Store::open(&self.config.state_path())?);
        let root = store.root_credential()?;
        let engine = Engine::new(store.clone(), self.provisioner.clone(), self.config.clone());
        engine.resume().await?;
        let listener = TcpListener::bind(self.config.listen)
            .await
            .map_err(|source| StartError::Listen {
                addr: self.config.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| StartError::Listen {
            addr: self.config.listen,
            source,
        })?;
        let region = self.config.region.clone();
        let state = AppState::new(self.config, store.clone(), engine.clone());
        let app = router(state.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = tokio::spawn(async move {
            let result = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
            if let Err(e) = result {
                tracing::error!(error = %e, "control plane API stopped");
            }
        });
        tracing::info!(%addr, "MSK control plane listening");
        Ok(RunningServer {
            addr,
            app: state,
            root,
            store,
            engine,
            region,
            stop: Some(stop),
            serving,
        })
    }
}

impl RunningServer {
    /// Where the API listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The root access key.
    pub fn root_credential(&self) -> &Credential {
        &self.root
    }

    /// Creates another access key pair.
    pub fn add_credential(&self) -> Result<Credential, crate::error::ApiError> {
        self.store.add_credential()
    }

    /// Starts routine maintenance of a cluster (MAINTENANCE while its
    /// brokers restart one by one); false unless the cluster is ACTIVE.
    pub fn start_maintenance(&self, cluster_arn: &str) -> Result<bool, crate::error::ApiError> {
        self.engine.start_maintenance(cluster_arn)
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &ControlPlaneConfig {
        &self.app.config
    }

    /// Every cluster as stored.
    pub fn clusters(&self) -> Result<Vec<ClusterRecord>, ApiError> {
        self.store.transaction(|tx| tx.clusters())
    }

    /// The cluster with this ARN, as stored.
    pub fn cluster(&self, arn: &str) -> Result<Option<ClusterRecord>, ApiError> {
        self.store.transaction(|tx| tx.cluster(arn))
    }

    /// CreateCluster from inside the process (the development cluster):
    /// the API's own handler with a JSON body, so the cluster gets exactly
    /// the validation, defaults and engine work of `aws kafka
    /// create-cluster`. Answers the handler's JSON.
    pub async fn create_cluster(&self, body: &Value) -> Result<Value, ApiError> {
        let body = Bytes::from(body.to_string());
        let Json(answer) = crate::clusters::create_cluster(State(self.app.clone()), body).await?;
        Ok(answer)
    }

    /// DeleteCluster from inside the process, through the API's handler.
    pub async fn delete_cluster(&self, arn: &str) -> Result<Value, ApiError> {
        let Json(answer) = crate::clusters::delete_cluster(
            State(self.app.clone()),
            Path(arn.to_string()),
            RawQuery(None),
        )
        .await?;
        Ok(answer)
    }

    /// GetBootstrapBrokers from inside the process, through the API's
    /// handler (lowerCamel members, as on the wire).
    pub async fn bootstrap_brokers(&self, arn: &str) -> Result<Value, ApiError> {
        let Json(answer) = crate::bootstrap_brokers::get_bootstrap_brokers(
            State(self.app.clone()),
            Path(arn.to_string()),
        )
        .await?;
        Ok(answer)
    }

    /// Waits until the brokers of cluster `arn` form one healthy Kafka
    /// cluster: every broker registered and unfenced, a controller known,
    /// no partition under-replicated.
    pub async fn wait_cluster_ready(&self, arn: &str) -> Result<(), String> {
        self.engine.wait_ready(arn).await
    }

    /// The `export …` lines that point the AWS CLI and SDKs here.
    pub fn env_exports(&self) -> String {
        env_exports(self.addr, &self.region, &self.root)
    }

    /// Stops serving, stops the engine and every broker; state is kept.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.serving).await;
        self.engine.shutdown().await;
    }
}

/// The shell lines that make the AWS CLI and SDKs talk to a control plane
/// at `addr` with `credential`.
pub fn env_exports(addr: SocketAddr, region: &str, credential: &Credential) -> String {
    format!(
        "export AWS_ENDPOINT_URL=http://{addr}\nexport AWS_REGION={region}\nexport AWS_DEFAULT_REGION={region}\nexport AWS_ACCESS_KEY_ID={}\nexport AWS_SECRET_ACCESS_KEY={}\n",
        credential.access_key_id, credential.secret_access_key
    )
}
