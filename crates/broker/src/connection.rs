//! One client connection: frames in, responses out, in request order.
//!
//! Requests on a connection are handled one at a time, in the order they
//! arrive, exactly as Kafka does (a connection is "muted" while its request
//! is in flight): this is what keeps a producer's pipelined batches to one
//! partition in order. Clients still pipeline: further requests wait in the
//! socket buffer while one is handled, and responses are written by a
//! separate task so writing a large fetch response overlaps reading and
//! handling the next request.
//!
//! Anything that leaves the byte stream unusable (a frame over
//! `socket.request.max.bytes`, an unknown API key, an undecodable header or
//! body) closes this connection only, with a log line saying why.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use millrace_protocol::frame::split_frame;
use millrace_protocol::header::parse_request_header;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::broker::Broker;
use crate::handlers::{self, DispatchError};
use crate::request_context::RequestContext;

/// Responses queued for the writer before the reader stops taking requests.
const RESPONSE_QUEUE: usize = 16;
const READ_BUFFER: usize = 64 * 1024;

/// Serves one accepted connection until the client leaves, the connection
/// idles out, a protocol error closes it, or the broker shuts down.
pub async fn serve(stream: TcpStream, peer: SocketAddr, listener: Arc<str>, broker: Arc<Broker>) {
    let shutdown = broker.shutdown_token();
    let (max_request, idle) = {
        let config = broker.config();
        (
            config.socket_request_max_bytes,
            Duration::from_millis(config.connections_max_idle_ms),
        )
    };
    let (mut reader, writer) = stream.into_split();
    let (tx, rx) = mpsc::channel::<Bytes>(RESPONSE_QUEUE);
    let writer_task = tokio::spawn(write_responses(writer, rx, peer));
    let mut buf = BytesMut::with_capacity(READ_BUFFER);
    'connection: loop {
        loop {
            let frame = match split_frame(&mut buf, max_request) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(%peer, listener = %listener, error = %e, "closing connection");
                    break 'connection;
                }
            };
            match handle_frame(frame, peer, &listener, &broker).await {
                Ok(Some(response)) => {
                    if tx.send(response).await.is_err() {
                        break 'connection;
                    }
                }
                Ok(None) => {}
                Err(reason) => {
                    tracing::warn!(%peer, listener = %listener, %reason, "closing connection");
                    break 'connection;
                }
            }
        }
        if buf.capacity() - buf.len() < READ_BUFFER / 4 {
            buf.reserve(READ_BUFFER);
        }
        tokio::select! {
            read = tokio::time::timeout(idle, reader.read_buf(&mut buf)) => match read {
                Ok(Ok(0)) => break,
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "connection read failed");
                    break;
                }
                Err(_) => {
                    tracing::debug!(%peer, "closing idle connection (connections.max.idle.ms)");
                    break;
                }
            },
            () = shutdown.cancelled() => break,
        }
    }
    drop(tx);
    let _ = writer_task.await;
}

/// Parses and dispatches one frame. `Err` carries why the connection must close.
async fn handle_frame(
    mut frame: Bytes,
    peer: SocketAddr,
    listener: &Arc<str>,
    broker: &Arc<Broker>,
) -> Result<Option<Bytes>, String> {
    let header = parse_request_header(&mut frame).map_err(|e| e.to_string())?;
    let ctx = RequestContext {
        broker: broker.clone(),
        header,
        listener: listener.clone(),
        peer,
    };
    match handlers::dispatch(&ctx, frame).await {
        Ok(response) => Ok(response),
        Err(e @ DispatchError::Encode { .. }) => {
            tracing::error!(error = %e, "response encoding failed");
            Err(e.to_string())
        }
        Err(e) => Err(e.to_string()),
    }
}

async fn write_responses(
    mut writer: OwnedWriteHalf,
    mut rx: mpsc::Receiver<Bytes>,
    peer: SocketAddr,
) {
    while let Some(first) = rx.recv().await {
        // Coalesce queued small responses into one write.
        let mut pending = vec![first];
        while let Ok(next) = rx.try_recv() {
            pending.push(next);
            if pending.len() >= 32 {
                break;
            }
        }
        for response in pending {
            if let Err(e) = writer.write_all(&response).await {
                tracing::debug!(%peer, error = %e, "connection write failed");
                return;
            }
        }
    }
    let _ = writer.shutdown().await;
}
