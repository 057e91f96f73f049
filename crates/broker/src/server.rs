//! Listeners: one accept loop per configured listener.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::task::TaskTracker;

use crate::broker::Broker;
use crate::connection;

/// A bound listener, before its accept loop starts.
pub struct BoundListener {
    /// Listener name (`PLAINTEXT`, …).
    pub name: Arc<str>,
    /// The socket.
    pub socket: TcpListener,
}

impl BoundListener {
    /// The address actually bound (port 0 resolves here).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.socket.local_addr()
    }
}

/// Binds `addr` for listener `name`.
pub async fn bind(name: &str, addr: SocketAddr) -> std::io::Result<BoundListener> {
    let socket = TcpListener::bind(addr).await?;
    Ok(BoundListener {
        name: Arc::from(name),
        socket,
    })
}

/// Accepts connections until shutdown, serving each on its own task
/// (tracked, so shutdown can wait for in-flight requests).
pub async fn accept_loop(listener: BoundListener, broker: Arc<Broker>, tasks: TaskTracker) {
    let shutdown = broker.shutdown_token();
    loop {
        tokio::select! {
            accepted = listener.socket.accept() => match accepted {
                Ok((stream, peer)) => {
                    configure(&stream, &broker);
                    tasks.spawn(connection::serve(stream, peer, listener.name.clone(), broker.clone()));
                }
                Err(e) => {
                    // EMFILE and friends: keep serving existing clients.
                    tracing::warn!(listener = %listener.name, error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            },
            () = shutdown.cancelled() => break,
        }
    }
}

/// Applies `socket.send.buffer.bytes` / `socket.receive.buffer.bytes`
/// (-1 keeps the OS default) and disables Nagle, as Kafka does.
fn configure(stream: &TcpStream, broker: &Broker) {
    let config = broker.config();
    let _ = stream.set_nodelay(true);
    let sock = socket2::SockRef::from(stream);
    if config.socket_send_buffer_bytes > 0 {
        let _ = sock.set_send_buffer_size(config.socket_send_buffer_bytes as usize);
    }
    if config.socket_receive_buffer_bytes > 0 {
        let _ = sock.set_recv_buffer_size(config.socket_receive_buffer_bytes as usize);
    }
}
