//! The control plane's state in SQLite: access keys, clusters, cluster
//! operations and configurations. Each resource is one row holding its
//! record as JSON (the records are small and always read whole), plus the
//! columns the API looks them up by. Every change runs in one transaction,
//! so a refused request leaves the database exactly as it was.

use std::path::Path;

use parking_lot::Mutex;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::clusters::ClusterRecord;
use crate::configurations::ConfigurationRecord;
use crate::error::ApiError;
use crate::operations::OperationRecord;

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite refused.
    #[error("state database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The data directory could not be created.
    #[error("state directory: {0}")]
    Io(#[from] std::io::Error),
}

/// One access key pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// `AKIA…`
    pub access_key_id: String,
    /// The secret.
    pub secret_access_key: String,
}

/// The SQLite state database, shared by the API and the engine.
pub struct Store {
    connection: Mutex<Connection>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS credentials (
    access_key_id TEXT PRIMARY KEY,
    secret_access_key TEXT NOT NULL,
    is_root INTEGER NOT NULL,
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS clusters (
    arn TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS operations (
    arn TEXT PRIMARY KEY,
    cluster_arn TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS operations_by_cluster ON operations (cluster_arn);
CREATE TABLE IF NOT EXISTS configurations (
    arn TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    record TEXT NOT NULL
);
";

fn db_error(e: rusqlite::Error) -> ApiError {
    ApiError::internal(format!("state database: {e}"))
}

fn to_json<T: Serialize>(record: &T) -> Result<String, ApiError> {
    serde_json::to_string(record).map_err(ApiError::internal)
}

fn from_json<T: DeserializeOwned>(text: &str) -> Result<T, ApiError> {
    serde_json::from_str(text).map_err(|e| ApiError::internal(format!("corrupt record: {e}")))
}

impl Store {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let connection = Connection::open(path)?;
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.pragma_update(None, "synchronous", "FULL")?;
        connection.busy_timeout(std::time::Duration::from_secs(5))?;
        connection.execute_batch(SCHEMA)?;
        Ok(Store {
            connection: Mutex::new(connection),
        })
    }

    /// Runs `f` in one transaction, committed only if `f` succeeds.
    pub fn transaction<T>(
        &self,
        f: impl FnOnce(&StoreTx<'_>) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let mut connection = self.connection.lock();
        let tx = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db_error)?;
        let out = f(&StoreTx { tx: &tx })?;
        tx.commit().map_err(db_error)?;
        Ok(out)
    }

    /// The root access key, created on first use and kept from then on.
    pub fn root_credential(&self) -> Result<Credential, ApiError> {
        self.transaction(|tx| {
            if let Some(c) = tx.root_credential()? {
                return Ok(c);
            }
            let c = generate_credential();
            tx.insert_credential(&c, true)?;
            Ok(c)
        })
    }

    /// Creates and stores a new access key pair.
    pub fn add_credential(&self) -> Result<Credential, ApiError> {
        let c = generate_credential();
        self.transaction(|tx| tx.insert_credential(&c, false))?;
        Ok(c)
    }

    /// The secret of `access_key_id`, if it is known.
    pub fn secret_of(&self, access_key_id: &str) -> Result<Option<String>, ApiError> {
        let connection = self.connection.lock();
        connection
            .query_row(
                "SELECT secret_access_key FROM credentials WHERE access_key_id = ?1",
                params![access_key_id],
                |row| row.get(0),
            )
            .optional()
            .map_err(db_error)
    }
}

fn generate_credential() -> Credential {
    use rand::Rng;
    const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    const SECRET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut rng = rand::rng();
    let id: String = (0..16)
        .map(|_| UPPER[rng.random_range(0..UPPER.len())] as char)
        .collect();
    let secret: String = (0..40)
        .map(|_| SECRET[rng.random_range(0..SECRET.len())] as char)
        .collect();
    Credential {
        access_key_id: format!("AKIA{id}"),
        secret_access_key: secret,
    }
}

/// The operations available inside [`Store::transaction`].
pub struct StoreTx<'a> {
    tx: &'a rusqlite::Transaction<'a>,
}

impl StoreTx<'_> {
    fn root_credential(&self) -> Result<Option<Credential>, ApiError> {
        self.tx
            .query_row(
                "SELECT access_key_id, secret_access_key FROM credentials WHERE is_root = 1 ORDER BY rowid LIMIT 1",
                [],
                |row| {
                    Ok(Credential {
                        access_key_id: row.get(0)?,
                        secret_access_key: row.get(1)?,
                    })
                },
            )
            .optional()
            .map_err(db_error)
    }

    fn insert_credential(&self, c: &Credential, root: bool) -> Result<(), ApiError> {
        self.tx
            .execute(
                "INSERT INTO credentials (access_key_id, secret_access_key, is_root, created) VALUES (?1, ?2, ?3, ?4)",
                params![c.access_key_id, c.secret_access_key, root as i64, crate::timestamps::now_iso()],
            )
            .map_err(db_error)?;
        Ok(())
    }

    fn one<T: DeserializeOwned>(&self, sql: &str, key: &str) -> Result<Option<T>, ApiError> {
        let text: Option<String> = self
            .tx
            .query_row(sql, params![key], |row| row.get(0))
            .optional()
            .map_err(db_error)?;
        text.as_deref().map(from_json).transpose()
    }

    fn all<T: DeserializeOwned>(&self, sql: &str, key: Option<&str>) -> Result<Vec<T>, ApiError> {
        let mut statement = self.tx.prepare(sql).map_err(db_error)?;
        let rows: Vec<String> = match key {
            Some(k) => statement
                .query_map(params![k], |row| row.get(0))
                .map_err(db_error)?
                .collect::<Result<_, _>>(),
            None => statement
                .query_map([], |row| row.get(0))
                .map_err(db_error)?
                .collect::<Result<_, _>>(),
        }
        .map_err(db_error)?;
        rows.iter().map(|t| from_json(t)).collect()
    }

    /// The cluster with this ARN.
    pub fn cluster(&self, arn: &str) -> Result<Option<ClusterRecord>, ApiError> {
        self.one("SELECT record FROM clusters WHERE arn = ?1", arn)
    }

    /// Whether a cluster is named `name`.
    pub fn cluster_name_taken(&self, name: &str) -> Result<bool, ApiError> {
        let n: i64 = self
            .tx
            .query_row(
                "SELECT COUNT(*) FROM clusters WHERE name = ?1",
                params![name],
                |row| row.get(0),
            )
            .map_err(db_error)?;
        Ok(n > 0)
    }

    /// Every cluster, oldest first.
    pub fn clusters(&self) -> Result<Vec<ClusterRecord>, ApiError> {
        self.all("SELECT record FROM clusters ORDER BY rowid", None)
    }

    /// Inserts or replaces a cluster.
    pub fn put_cluster(&self, c: &ClusterRecord) -> Result<(), ApiError> {
        let json = to_json(c)?;
        let updated = self
            .tx
            .execute(
                "UPDATE clusters SET record = ?2 WHERE arn = ?1",
                params![c.arn, json],
            )
            .map_err(db_error)?;
        if updated == 0 {
            self.tx
                .execute(
                    "INSERT INTO clusters (arn, name, record) VALUES (?1, ?2, ?3)",
                    params![c.arn, c.name, json],
                )
                .map_err(db_error)?;
        }
        Ok(())
    }

    /// Removes a cluster and its operations.
    pub fn delete_cluster(&self, arn: &str) -> Result<(), ApiError> {
        self.tx
            .execute(
                "DELETE FROM operations WHERE cluster_arn = ?1",
                params![arn],
            )
            .map_err(db_error)?;
        self.tx
            .execute("DELETE FROM clusters WHERE arn = ?1", params![arn])
            .map_err(db_error)?;
        Ok(())
    }

    /// The cluster operation with this ARN.
    pub fn operation(&self, arn: &str) -> Result<Option<OperationRecord>, ApiError> {
        self.one("SELECT record FROM operations WHERE arn = ?1", arn)
    }

    /// The operations of a cluster, newest first (as MSK lists them).
    pub fn operations_of(&self, cluster_arn: &str) -> Result<Vec<OperationRecord>, ApiError> {
        self.all(
            "SELECT record FROM operations WHERE cluster_arn = ?1 ORDER BY rowid DESC",
            Some(cluster_arn),
        )
    }

    /// Inserts or replaces an operation.
    pub fn put_operation(&self, op: &OperationRecord) -> Result<(), ApiError> {
        let json = to_json(op)?;
        let updated = self
            .tx
            .execute(
                "UPDATE operations SET record = ?2 WHERE arn = ?1",
                params![op.operation_arn, json],
            )
            .map_err(db_error)?;
        if updated == 0 {
            self.tx
                .execute(
                    "INSERT INTO operations (arn, cluster_arn, record) VALUES (?1, ?2, ?3)",
                    params![op.operation_arn, op.cluster_arn, json],
                )
                .map_err(db_error)?;
        }
        Ok(())
    }

    /// The configuration with this ARN.
    pub fn configuration(&self, arn: &str) -> Result<Option<ConfigurationRecord>, ApiError> {
        self.one("SELECT record FROM configurations WHERE arn = ?1", arn)
    }

    /// Whether a configuration is named `name`.
    pub fn configuration_name_taken(&self, name: &str) -> Result<bool, ApiError> {
        let n: i64 = self
            .tx
            .query_row(
                "SELECT COUNT(*) FROM configurations WHERE name = ?1",
                params![name],
                |row| row.get(0),
            )
            .map_err(db_error)?;
        Ok(n > 0)
    }

    /// Every configuration, oldest first.
    pub fn configurations(&self) -> Result<Vec<ConfigurationRecord>, ApiError> {
        self.all("SELECT record FROM configurations ORDER BY rowid", None)
    }

    /// Inserts or replaces a configuration.
    pub fn put_configuration(&self, c: &ConfigurationRecord) -> Result<(), ApiError> {
        let json = to_json(c)?;
        let updated = self
            .tx
            .execute(
                "UPDATE configurations SET record = ?2 WHERE arn = ?1",
                params![c.arn, json],
            )
            .map_err(db_error)?;
        if updated == 0 {
            self.tx
                .execute(
                    "INSERT INTO configurations (arn, name, record) VALUES (?1, ?2, ?3)",
                    params![c.arn, c.name, json],
                )
                .map_err(db_error)?;
        }
        Ok(())
    }

    /// Removes a configuration.
    pub fn delete_configuration(&self, arn: &str) -> Result<(), ApiError> {
        self.tx
            .execute("DELETE FROM configurations WHERE arn = ?1", params![arn])
            .map_err(db_error)?;
        Ok(())
    }
}
