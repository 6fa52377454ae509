//! A tokio driver for one [`mtalab_osi::Association`] over a TCP stream: it moves bytes and
//! time, and hands the association's events to the MTA.

use std::net::SocketAddr;
use std::time::Duration;

use mtalab_osi::association::{Association, Event, TransferId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Why driving an association stopped.
#[derive(Debug, thiserror::Error)]
pub enum DriveError {
    /// Socket error.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The peer closed the TCP connection without a release.
    #[error("connection closed by the peer")]
    Eof,
    /// The peer's input broke the protocol (the association sent its wire reaction).
    #[error("{0}")]
    Osi(#[from] mtalab_osi::OsiError),
    /// Nothing happened for too long.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    /// The association ended abnormally.
    #[error("association aborted: {0}")]
    Aborted(String),
    /// The association was released.
    #[error("association released")]
    Released,
}

/// An association with its connection.
pub struct Conn {
    stream: TcpStream,
    /// The state machine.
    pub assoc: Association,
    buf: Vec<u8>,
    /// The peer's address.
    pub peer: SocketAddr,
}

impl Conn {
    /// Wrap a connected stream and a fresh association.
    pub fn new(stream: TcpStream, assoc: Association, peer: SocketAddr) -> Conn {
        let _ = stream.set_nodelay(true);
        Conn { stream, assoc, buf: vec![0; 64 * 1024], peer }
    }

    /// Write every frame the association has queued.
    pub async fn flush(&mut self) -> std::io::Result<()> {
        let mut out = Vec::new();
        while let Some(f) = self.assoc.poll_transmit() {
            out.extend_from_slice(&f);
        }
        if !out.is_empty() {
            self.stream.write_all(&out).await?;
        }
        Ok(())
    }

    /// Drive until the next event; `wait` bounds the time without one.
    pub async fn next_event(&mut self, wait: Duration, what: &'static str) -> Result<Event, DriveError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            self.flush().await?;
            if let Some(ev) = self.assoc.poll_event() {
                self.flush().await?;
                return Ok(ev);
            }
            if self.assoc.is_closed() {
                return Err(DriveError::Eof);
            }
            let timer = self.assoc.poll_timeout().map(tokio::time::Instant::from_std);
            tokio::select! {
                r = self.stream.read(&mut self.buf) => {
                    let n = r?;
                    if n == 0 {
                        // Let the association see the end (it may have a pending event).
                        if let Some(ev) = self.assoc.poll_event() {
                            return Ok(ev);
                        }
                        return Err(DriveError::Eof);
                    }
                    if let Err(e) = self.assoc.handle_input(&self.buf[..n], std::time::Instant::now()) {
                        let _ = self.flush().await;
                        // An abort event may explain it better.
                        if let Some(Event::Aborted { reason }) = self.assoc.poll_event() {
                            return Err(DriveError::Aborted(reason.to_string()));
                        }
                        return Err(e.into());
                    }
                }
                _ = async { match timer { Some(t) => tokio::time::sleep_until(t).await, None => std::future::pending().await } } => {
                    self.assoc.handle_timeout(std::time::Instant::now());
                }
                _ = tokio::time::sleep_until(deadline) => return Err(DriveError::Timeout(what)),
            }
        }
    }

    /// Transfer one MTS-APDU and wait for its confirmation. Other events (turn handling)
    /// are absorbed; an APDU the peer sends meanwhile is returned in `received`.
    pub async fn transfer(&mut self, apdu: Vec<u8>, wait: Duration, received: &mut Vec<Vec<u8>>) -> Result<(), DriveError> {
        let id: TransferId = self.assoc.transfer(apdu)?;
        loop {
            match self.next_event(wait, "transfer confirmation").await? {
                Event::TransferConfirm { id: done } if done == id => return Ok(()),
                Event::TransferIndication { apdu } => received.push(apdu),
                Event::Aborted { reason } => return Err(DriveError::Aborted(reason.to_string())),
                Event::Released => return Err(DriveError::Released),
                _ => {}
            }
        }
    }

    /// Release the association (RLRQ/RLRE, then DN) and close; errors ignored.
    pub async fn release(mut self, wait: Duration) {
        if self.assoc.release().is_ok() {
            loop {
                match self.next_event(wait, "release").await {
                    Ok(Event::Released) | Ok(Event::Aborted { .. }) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        }
        let _ = self.flush().await;
        let _ = self.stream.shutdown().await;
    }

    /// Abort (session AB) and close.
    pub async fn abort(mut self) {
        self.assoc.abort();
        let _ = self.flush().await;
        let _ = self.stream.shutdown().await;
    }

    /// After a release or refusal: let the peer close first (its DR and FIN), reading until
    /// EOF for at most `wait`, so the connection ends without a reset.
    pub async fn finish(mut self, wait: Duration) {
        let _ = self.flush().await;
        let _ = tokio::time::timeout(wait, async {
            loop {
                match self.stream.read(&mut self.buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let _ = self.assoc.handle_input(&self.buf[..n], std::time::Instant::now());
                        let _ = self.flush().await;
                    }
                }
            }
        })
        .await;
        let _ = self.stream.shutdown().await;
    }

    /// Close the TCP connection without a word.
    pub async fn drop_connection(mut self) {
        let _ = self.stream.shutdown().await;
    }
}
