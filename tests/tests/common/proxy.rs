//! A small TCP proxy (std threads) between clients and one broker, which a
//! test can use to break connections on demand: [`Proxy::cut_all`] shuts
//! every open connection down, and [`Proxy::lose_responses`] makes the
//! proxy swallow the broker's next answers and close those connections
//! instead of delivering them (so requests are applied by the broker but
//! the client never hears back and must retry).
//!
//! For clients to stay behind the proxy after bootstrapping, the broker must
//! advertise the proxy's address: bind the proxy first, start the broker
//! with [`Proxy::advertised_listeners`], then [`Proxy::set_upstream`].

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

#[derive(Default)]
struct Shared {
    upstream: Mutex<Option<SocketAddr>>,
    /// Open connection pairs by id: (client side, broker side).
    conns: Mutex<HashMap<u64, (TcpStream, TcpStream)>>,
    next_id: AtomicU64,
    stop: AtomicBool,
    lose_responses: AtomicBool,
    accepted: AtomicUsize,
    cut: AtomicUsize,
    lost_responses: AtomicUsize,
}

impl Shared {
    fn close(&self, id: u64) {
        if let Some((a, b)) = self.conns.lock().expect("conns").remove(&id) {
            let _ = a.shutdown(Shutdown::Both);
            let _ = b.shutdown(Shutdown::Both);
        }
    }
}

/// A running proxy; stops (and closes every connection) on drop.
pub struct Proxy {
    port: u16,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Binds a free loopback port; connections are accepted once
    /// [`Proxy::set_upstream`] was called (earlier ones are refused by
    /// closing them).
    pub fn bind() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("proxy addr").port();
        let shared = Arc::new(Shared::default());
        let acceptor = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("proxy-{port}"))
                .spawn(move || accept_loop(listener, shared))
                .expect("spawn proxy")
        };
        Proxy {
            port,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The proxy's address, `127.0.0.1:port`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The `advertised.listeners` value that sends clients through the proxy.
    pub fn advertised_listeners(&self) -> String {
        format!("PLAINTEXT://127.0.0.1:{}", self.port)
    }

    /// Where accepted connections are forwarded to.
    pub fn set_upstream(&self, addr: SocketAddr) {
        *self.shared.upstream.lock().expect("upstream") = Some(addr);
    }

    /// Closes every open connection (both directions); returns how many.
    pub fn cut_all(&self) -> usize {
        let conns: Vec<(u64, (TcpStream, TcpStream))> =
            self.shared.conns.lock().expect("conns").drain().collect();
        for (_, (a, b)) in &conns {
            let _ = a.shutdown(Shutdown::Both);
            let _ = b.shutdown(Shutdown::Both);
        }
        self.shared.cut.fetch_add(conns.len(), Ordering::Relaxed);
        conns.len()
    }

    /// While on, any bytes the broker sends are dropped and their connection
    /// closed: the requests they answer were handled, the client never
    /// learns it.
    pub fn lose_responses(&self, on: bool) {
        self.shared.lose_responses.store(on, Ordering::SeqCst);
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::Relaxed)
    }

    /// Connections closed by [`Proxy::cut_all`] so far.
    pub fn cut_count(&self) -> usize {
        self.shared.cut.load(Ordering::Relaxed)
    }

    /// Connections closed because a response was swallowed.
    pub fn lost_response_count(&self) -> usize {
        self.shared.lost_responses.load(Ordering::Relaxed)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.cut_all();
        if let Some(h) = self.acceptor.take() {
            let _ = h.join();
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((client, _)) => {
                let _ = client.set_nonblocking(false);
                let upstream = *shared.upstream.lock().expect("upstream");
                let Some(upstream) = upstream else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                let Ok(server) = TcpStream::connect_timeout(&upstream, Duration::from_secs(5))
                else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                shared.accepted.fetch_add(1, Ordering::Relaxed);
                let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
                let pair = (
                    client.try_clone().expect("clone"),
                    server.try_clone().expect("clone"),
                );
                shared.conns.lock().expect("conns").insert(id, pair);
                let (c2, s2) = (
                    client.try_clone().expect("clone"),
                    server.try_clone().expect("clone"),
                );
                let sh = shared.clone();
                std::thread::spawn(move || pump(client, server, id, &sh, false));
                let sh = shared.clone();
                std::thread::spawn(move || pump(s2, c2, id, &sh, true));
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// Copies `from` to `to` until either side closes; `responses` marks the
/// broker-to-client direction (subject to [`Proxy::lose_responses`]).
fn pump(mut from: TcpStream, mut to: TcpStream, id: u64, shared: &Shared, responses: bool) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if responses && shared.lose_responses.load(Ordering::SeqCst) {
            shared.lost_responses.fetch_add(1, Ordering::Relaxed);
            break;
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    shared.close(id);
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
