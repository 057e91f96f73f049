//! The broker health check: a Kafka ApiVersions (v0) request over TCP,
//! answered with error code 0. It proves the process accepts connections
//! and serves the Kafka protocol, which is what clients need.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const API_VERSIONS_KEY: i16 = 18;
const CORRELATION_ID: i32 = 0x4d52_4350; // "MRCP"
const CLIENT_ID: &str = "millrace-control-plane";

/// Sends ApiVersions v0 to `addr` and checks the answer, within `timeout`.
pub async fn check_api_versions(addr: &str, timeout: Duration) -> Result<(), String> {
    tokio::time::timeout(timeout, exchange(addr))
        .await
        .map_err(|_| format!("no ApiVersions answer from {addr} within {timeout:?}"))?
}

async fn exchange(addr: &str) -> Result<(), String> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let mut body = Vec::new();
    body.extend_from_slice(&API_VERSIONS_KEY.to_be_bytes());
    body.extend_from_slice(&0i16.to_be_bytes());
    body.extend_from_slice(&CORRELATION_ID.to_be_bytes());
    body.extend_from_slice(&(CLIENT_ID.len() as i16).to_be_bytes());
    body.extend_from_slice(CLIENT_ID.as_bytes());
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    stream
        .write_all(&frame)
        .await
        .map_err(|e| format!("send to {addr}: {e}"))?;
    let size = stream
        .read_i32()
        .await
        .map_err(|e| format!("read from {addr}: {e}"))?;
    if !(6..=1 << 20).contains(&size) {
        return Err(format!("{addr} answered a frame of {size} bytes"));
    }
    let mut response = vec![0u8; size as usize];
    stream
        .read_exact(&mut response)
        .await
        .map_err(|e| format!("read from {addr}: {e}"))?;
    let correlation = i32::from_be_bytes([response[0], response[1], response[2], response[3]]);
    let error_code = i16::from_be_bytes([response[4], response[5]]);
    if correlation != CORRELATION_ID {
        return Err(format!("{addr} answered correlation id {correlation}"));
    }
    if error_code != 0 {
        return Err(format!(
            "{addr} answered ApiVersions with error {error_code}"
        ));
    }
    Ok(())
}
