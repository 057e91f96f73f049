//! The MSK control plane: Amazon MSK's `kafka` REST API (the paths, JSON
//! shapes, errors and asynchronous operations the AWS CLI and SDKs speak),
//! authenticated with SigV4, its state kept in SQLite, and the broker
//! processes of each cluster provisioned and watched behind it.
