//! Everything a handler may touch, passed as one value (Redpanda's
//! `request_context`): the broker, the decoded header and where the request
//! came from.

use std::net::SocketAddr;
use std::sync::Arc;

use millrace_protocol::header::RequestHeader;

use crate::broker::Broker;

/// The context of one request.
pub struct RequestContext {
    /// The broker serving the request.
    pub broker: Arc<Broker>,
    /// The request header.
    pub header: RequestHeader,
    /// Name of the listener the connection arrived on; Metadata answers with
    /// that listener's endpoints.
    pub listener: Arc<str>,
    /// The client's address.
    pub peer: SocketAddr,
}
