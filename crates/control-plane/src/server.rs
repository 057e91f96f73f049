//! Starting and stopping a control plane: [`Server::start`] opens the
//! store, makes sure a root access key exists, reconciles clusters with the
//! engine, and serves the API until [`RunningServer::shutdown`].

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::api::{router, AppState};
use crate::config::ControlPlaneConfig;
use crate::engine::Engine;
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
        let app = router(AppState::new(self.config, store.clone(), engine.clone()));
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
