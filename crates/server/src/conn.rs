//! An outbound SMTP connection: a tokio TCP stream driving the sans-IO
//! [`mtalab_smtp::ClientSession`]. Used by the IMS to relay and by the lab to send mail.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use mtalab_smtp::{ClientConfig, ClientEvent, ClientSession, Reply, Transaction, TransactionResult};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Why an outbound connection or transaction failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    /// TCP connect failed (host down, refused, unreachable).
    #[error("connect to {addr} failed: {source}")]
    Connect {
        /// Target.
        addr: SocketAddr,
        /// OS error.
        source: std::io::Error,
    },
    /// Binding the source address failed.
    #[error("cannot bind source address {addr}: {source}")]
    Bind {
        /// Source address.
        addr: IpAddr,
        /// OS error.
        source: std::io::Error,
    },
    /// Read or write failed mid-session.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// No reply in time (RFC 5321 §4.5.3.2).
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    /// The greeting or EHLO/HELO was refused, or the server said 421.
    #[error("server refused the session: {0}")]
    Rejected(Reply),
    /// The server broke the protocol.
    #[error("protocol error: {0}")]
    Protocol(#[from] mtalab_smtp::client::ClientError),
    /// The server closed the connection.
    #[error("connection closed by the server")]
    Closed,
}

impl ConnError {
    /// True for failures that mean the host is dead (try the next one).
    pub fn is_connect(&self) -> bool {
        matches!(self, ConnError::Connect { .. } | ConnError::Timeout("connect"))
    }
}

/// What the server offered in its EHLO reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offered {
    /// EHLO accepted.
    pub esmtp: bool,
    /// PIPELINING advertised.
    pub pipelining: bool,
    /// SIZE limit, if advertised.
    pub size: Option<u64>,
}

/// An open, greeted SMTP connection.
pub struct SmtpConnection {
    stream: TcpStream,
    session: ClientSession,
    out: Vec<u8>,
    buf: Vec<u8>,
    /// What the server offered.
    pub offered: Offered,
    /// The server's address.
    pub peer: SocketAddr,
    /// Transactions run on this connection so far, whatever their outcome.
    pub transactions: usize,
    timeout: Duration,
}

impl SmtpConnection {
    /// Connect (from `source` when given), wait for the greeting and do EHLO/HELO.
    /// `timeout` bounds the connect and each reply.
    pub async fn connect(addr: SocketAddr, source: Option<IpAddr>, helo: &str, timeout: Duration) -> Result<SmtpConnection, ConnError> {
        let socket = if addr.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() }
            .map_err(|source| ConnError::Connect { addr, source })?;
        if let Some(src) = source {
            socket
                .bind(SocketAddr::new(src, 0))
                .map_err(|source| ConnError::Bind { addr: src, source })?;
        }
        let stream = tokio::time::timeout(timeout, socket.connect(addr))
            .await
            .map_err(|_| ConnError::Timeout("connect"))?
            .map_err(|source| ConnError::Connect { addr, source })?;
        stream.set_nodelay(true)?;
        let mut conn = SmtpConnection {
            stream,
            session: ClientSession::new(ClientConfig { helo: helo.to_string() }),
            out: Vec::with_capacity(4096),
            buf: vec![0; 16 * 1024],
            offered: Offered { esmtp: false, pipelining: false, size: None },
            peer: addr,
            transactions: 0,
            timeout,
        };
        let offered = conn
            .drive("greeting", |ev| match ev {
                ClientEvent::Ready { esmtp, pipelining, size, .. } => Some(Ok(Offered { esmtp, pipelining, size })),
                ClientEvent::Rejected(r) => Some(Err(ConnError::Rejected(r))),
                ClientEvent::Closed => Some(Err(ConnError::Closed)),
                ClientEvent::Done(_) => None,
            })
            .await??;
        conn.offered = offered;
        Ok(conn)
    }

    /// Run one mail transaction; per-recipient replies come back in the result.
    pub async fn send(&mut self, txn: Transaction) -> Result<TransactionResult, ConnError> {
        self.transactions += 1;
        self.session.send(txn);
        self.drive("transaction reply", |ev| match ev {
            ClientEvent::Done(r) => Some(Ok(r)),
            ClientEvent::Rejected(r) => Some(Err(ConnError::Rejected(r))),
            ClientEvent::Closed => Some(Err(ConnError::Closed)),
            ClientEvent::Ready { .. } => None,
        })
        .await?
    }

    /// QUIT and close (errors ignored: the transaction outcomes are already known).
    pub async fn quit(mut self) {
        self.session.quit();
        let _ = tokio::time::timeout(
            self.timeout,
            self.drive("quit", |ev| matches!(ev, ClientEvent::Closed | ClientEvent::Rejected(_)).then_some(())),
        )
        .await;
        let _ = self.stream.shutdown().await;
    }

    async fn drive<T>(&mut self, what: &'static str, mut on_event: impl FnMut(ClientEvent) -> Option<T>) -> Result<T, ConnError> {
        loop {
            self.session.poll_transmit(&mut self.out);
            if !self.out.is_empty() {
                self.stream.write_all(&self.out).await?;
                self.out.clear();
            }
            while let Some(ev) = self.session.poll_event() {
                if let Some(t) = on_event(ev) {
                    self.session.poll_transmit(&mut self.out);
                    if !self.out.is_empty() {
                        self.stream.write_all(&self.out).await?;
                        self.out.clear();
                    }
                    return Ok(t);
                }
            }
            let n = tokio::time::timeout(self.timeout, self.stream.read(&mut self.buf))
                .await
                .map_err(|_| ConnError::Timeout(what))??;
            if n == 0 {
                return Err(ConnError::Closed);
            }
            self.session.handle_input(&self.buf[..n])?;
        }
    }
}
