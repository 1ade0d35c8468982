//! Ports. A server under test binds port 0 and reports the address it got (in-process: the
//! address the library returns; `switchboard run`: its `listening` log lines). There is no
//! "free port" helper here on purpose: binding a port, releasing it and handing the number to
//! another process races every other test on the machine.

use std::net::SocketAddr;

/// A loopback port that refuses connections and that nobody else can bind while this value
/// lives: a TCP socket bound to `127.0.0.1:0` that never listens (connecting to it gets a
/// reset, "connection refused"). For tests of an upstream that is down.
#[derive(Debug)]
pub struct ClosedPort {
    _socket: tokio::net::TcpSocket,
    addr: SocketAddr,
}

impl ClosedPort {
    /// Binds a fresh one.
    pub fn new() -> ClosedPort {
        let socket = tokio::net::TcpSocket::new_v4().expect("tcp socket");
        socket
            .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .expect("bind 127.0.0.1:0");
        let addr = socket.local_addr().expect("local addr");
        ClosedPort {
            _socket: socket,
            addr,
        }
    }

    /// Its address (`127.0.0.1:PORT`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Default for ClosedPort {
    fn default() -> Self {
        ClosedPort::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_closed_port_refuses_and_cannot_be_taken() {
        let closed = ClosedPort::new();
        let err = tokio::net::TcpStream::connect(closed.addr())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
        assert!(tokio::net::TcpListener::bind(closed.addr()).await.is_err());
    }
}
