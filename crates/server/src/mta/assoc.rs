//! A tokio driver for one [`mtalab_osi::Association`] over a TCP stream: it moves bytes and
//! time, and hands the association's events to the MTA.
//!
//! Reading, writing and the association's timers run side by side: a write that cannot
//! proceed (a peer that stopped reading, a dead link whose send buffer filled up) never holds
//! up the Recovery timeout that detects it. On the local lab backend the connection follows
//! its emulated link ([`crate::links`]): while the link is cut nothing is read or written,
//! and what this side sends over it is paced at the link's rate.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mtalab_osi::association::{Association, Event, ReceiveProgress, SendProgress, TransferId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::time::{Instant, Sleep};

use crate::links::{LinkPath, PARK_MAX};

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
    /// Nothing came from the peer for too long.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    /// The association ended abnormally (by the peer, or by us: a confirmation overdue).
    #[error("association aborted: {0}")]
    Aborted(mtalab_osi::AbortReason),
    /// The association was released.
    #[error("association released")]
    Released,
}

/// How far the transfers of one association have got, as the admin API shows them
/// (`GET /mta`, per connector `transfers`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// The transfer being sent, if any.
    pub sending: Option<SendProgress>,
    /// The activity being received, if any.
    pub receiving: Option<ReceiveProgress>,
}

struct Io {
    rd: OwnedReadHalf,
    wr: OwnedWriteHalf,
}

/// An association with its connection.
pub struct Conn {
    io: Option<Io>,
    /// The state machine.
    pub assoc: Association,
    buf: Vec<u8>,
    /// Bytes the association produced that are not written yet (from `out_pos`).
    out: Vec<u8>,
    out_pos: usize,
    /// The peer's address.
    pub peer: SocketAddr,
    link: Option<LinkPath>,
    progress: Option<Arc<Mutex<Progress>>>,
    /// What was last written into `progress`.
    reported: Progress,
    /// The one timer of [`Conn::next_event`]: the association's timer or the end of the
    /// silence allowed, whichever comes first. Reset only when that moment moves earlier or
    /// the timer has fired, not on every read and write: each reset takes the runtime's
    /// timer lock, which the tasks of every association share.
    sleep: Pin<Box<Sleep>>,
}

impl Conn {
    /// Wrap a connected stream and a fresh association.
    pub fn new(stream: TcpStream, assoc: Association, peer: SocketAddr) -> Conn {
        let _ = stream.set_nodelay(true);
        let (rd, wr) = stream.into_split();
        Conn {
            io: Some(Io { rd, wr }),
            assoc,
            buf: vec![0; 64 * 1024],
            out: Vec::new(),
            out_pos: 0,
            peer,
            link: None,
            progress: None,
            reported: Progress::default(),
            sleep: Box::pin(tokio::time::sleep_until(Instant::now() + Duration::from_secs(3600))),
        }
    }

    /// Let the connection follow an emulated link (local lab backend, [`crate::links`]).
    pub fn with_link(mut self, link: Option<LinkPath>) -> Conn {
        self.link = link;
        self
    }

    /// Publish the association's transfer progress into `p` as it changes (None: stop).
    pub fn set_progress(&mut self, p: Option<Arc<Mutex<Progress>>>) {
        // A new record starts empty (as `Transfers::list` makes it).
        if let Some(p) = &p {
            self.reported = *p.lock().expect("progress");
        }
        self.progress = p;
        self.report();
    }

    fn link_up(&self) -> bool {
        self.link.as_ref().is_none_or(|l| l.state().up)
    }

    fn pull(&mut self) {
        if self.out_pos > 0 && self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        }
        self.assoc.transmit_into(&mut self.out);
    }

    fn report(&mut self) {
        if let Some(p) = &self.progress {
            let now = Progress {
                sending: self.assoc.sending_progress(),
                receiving: self.assoc.receiving_progress(),
            };
            // Most inputs and events change nothing the admin API shows: no lock for those.
            if now != self.reported {
                *p.lock().expect("progress") = now;
                self.reported = now;
            }
        }
    }

    /// Write what can be written now without waiting (pacing and a cut link respected).
    fn push_ready(&mut self) {
        if !self.link_up() {
            return;
        }
        let Some(io) = self.io.as_mut() else { return };
        while self.out_pos < self.out.len() {
            let want = self.out.len() - self.out_pos;
            let (at, chunk) = match &self.link {
                Some(l) => l.pace(want),
                None => (None, want),
            };
            if at.is_some() {
                return;
            }
            match io
                .wr
                .try_write(&self.out[self.out_pos..self.out_pos + chunk])
            {
                Ok(n) => {
                    self.out_pos += n;
                    if let Some(l) = &self.link {
                        l.sent(n);
                    }
                }
                Err(_) => return,
            }
        }
    }

    /// Drive until the next event. `wait` bounds the silence: the time without any input
    /// from the peer (a transfer in progress keeps it alive).
    pub async fn next_event(
        &mut self,
        wait: Duration,
        what: &'static str,
    ) -> Result<Event, DriveError> {
        let mut last_input = Instant::now();
        loop {
            self.pull();
            if let Some(ev) = self.assoc.poll_event() {
                self.pull();
                self.push_ready();
                self.report();
                return Ok(ev);
            }
            if self.assoc.is_closed() {
                self.push_ready();
                return Err(DriveError::Eof);
            }
            let up = self.link_up();
            let pending = self.out.len() - self.out_pos;
            let (pace_at, chunk) = match &self.link {
                Some(l) if pending > 0 => l.pace(pending),
                _ => (None, pending),
            };
            let timer = self.assoc.poll_timeout().map(Instant::from_std);
            let idle_at = last_input + wait;
            let due = timer.map_or(idle_at, |t| t.min(idle_at));
            if self.sleep.is_elapsed() || due < self.sleep.deadline() {
                self.sleep.as_mut().reset(due);
            }
            let Conn {
                io,
                buf,
                out,
                out_pos,
                link,
                sleep,
                ..
            } = self;
            let Some(Io { rd, wr }) = io.as_mut() else {
                return Err(DriveError::Eof);
            };
            let to_write = &out[*out_pos..*out_pos + chunk];
            let has_link = link.is_some();
            tokio::select! {
                r = rd.read(buf), if up => {
                    let n = r?;
                    if n == 0 {
                        // Let the association see the end (it may have a pending event).
                        if let Some(ev) = self.assoc.poll_event() {
                            return Ok(ev);
                        }
                        return Err(DriveError::Eof);
                    }
                    last_input = Instant::now();
                    let r = self.assoc.handle_input(&self.buf[..n], std::time::Instant::now());
                    self.report();
                    if let Err(e) = r {
                        self.pull();
                        self.push_ready();
                        // An abort event may explain it better.
                        if let Some(Event::Aborted { reason }) = self.assoc.poll_event() {
                            return Err(DriveError::Aborted(reason));
                        }
                        return Err(e.into());
                    }
                }
                r = async {
                    if let Some(t) = pace_at {
                        tokio::time::sleep_until(t).await;
                    }
                    wr.write(to_write).await
                }, if up && pending > 0 => {
                    let n = r?;
                    self.out_pos += n;
                    if let Some(l) = &self.link {
                        l.sent(n);
                    }
                }
                _ = async { match link.as_mut() { Some(l) => l.changed().await, None => std::future::pending().await } }, if has_link => {}
                _ = sleep.as_mut() => {
                    // Fired at `due`, or later than the moment it was set for: look again.
                    let now = Instant::now();
                    if timer.is_some_and(|t| now >= t) {
                        self.assoc.handle_timeout(now.into_std());
                        self.report();
                    }
                    if now >= idle_at {
                        return Err(DriveError::Timeout(what));
                    }
                }
            }
        }
    }

    /// Transfer one MTS-APDU and wait for its confirmation. Other events (turn handling)
    /// are absorbed; an APDU the peer sends meanwhile is returned in `received`. A
    /// confirmation that does not come within the Recovery timeout (a minor sync or the
    /// activity end unacknowledged) aborts the association: [`DriveError::Aborted`].
    pub async fn transfer(
        &mut self,
        apdu: impl AsRef<[u8]>,
        wait: Duration,
        received: &mut Vec<Vec<u8>>,
    ) -> Result<(), DriveError> {
        // The association measures its timers from the last time it was given: give it now,
        // so that a transfer on an association that sat idle in the pool is not timed from
        // its last input.
        self.assoc.handle_timeout(std::time::Instant::now());
        let id: TransferId = self.assoc.transfer(apdu)?;
        self.confirmation(id, wait, received).await
    }

    /// Wait for the confirmation of transfer `id` (one queued already, or the transfer a
    /// recovering association resumes), as [`Conn::transfer`] does.
    pub async fn confirmation(
        &mut self,
        id: TransferId,
        wait: Duration,
        received: &mut Vec<Vec<u8>>,
    ) -> Result<(), DriveError> {
        self.report();
        loop {
            match self.next_event(wait, "transfer confirmation").await? {
                Event::TransferConfirm { id: done } if done == id => return Ok(()),
                Event::TransferIndication { apdu } => received.push(apdu),
                Event::Aborted { reason } => return Err(DriveError::Aborted(reason)),
                Event::Released => return Err(DriveError::Released),
                _ => {}
            }
        }
    }

    /// Release the association (RLRQ/RLRE, then DN) and close; errors ignored.
    pub async fn release(mut self, wait: Duration) {
        self.assoc.handle_timeout(std::time::Instant::now());
        if self.assoc.release().is_ok() {
            loop {
                match self.next_event(wait, "release").await {
                    Ok(Event::Released) | Ok(Event::Aborted { .. }) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        }
        self.close(wait).await;
    }

    /// Abort (session AB) and close.
    pub async fn abort(mut self) {
        self.assoc.abort();
        self.close(Duration::from_secs(2)).await;
    }

    /// After a release or refusal: let the peer close first (its DR and FIN), reading until
    /// EOF for at most `wait`, so the connection ends without a reset.
    pub async fn finish(mut self, wait: Duration) {
        let deadline = Instant::now() + wait;
        if self.link_up() {
            let _ = tokio::time::timeout_at(deadline, async {
                loop {
                    self.pull();
                    self.push_ready();
                    let Some(io) = self.io.as_mut() else { break };
                    if self.out_pos < self.out.len() {
                        // Not all written yet: wait until the socket takes more.
                        if io.wr.writable().await.is_err() {
                            break;
                        }
                        continue;
                    }
                    match io.rd.read(&mut self.buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            let _ = self
                                .assoc
                                .handle_input(&self.buf[..n], std::time::Instant::now());
                        }
                    }
                }
            })
            .await;
        }
        self.close(deadline.saturating_duration_since(Instant::now()))
            .await;
    }

    /// Close the TCP connection without a word.
    pub async fn drop_connection(mut self) {
        self.pull();
        self.out.clear();
        self.out_pos = 0;
        self.close(Duration::ZERO).await;
    }

    /// Write what is left (for at most `wait`) and close. Over a cut link the connection is
    /// parked instead (see [`crate::links`]): its bytes and its FIN wait for the link.
    async fn close(&mut self, wait: Duration) {
        self.pull();
        let Some(mut io) = self.io.take() else { return };
        let rest = self.out.split_off(self.out_pos);
        self.out.clear();
        self.out_pos = 0;
        if !self.link_up() {
            if let Some(link) = self.link.take() {
                park(io, rest, link);
            }
            return;
        }
        let link = self.link.take();
        let _ = tokio::time::timeout(wait, write_paced(&mut io.wr, &rest, link.as_ref())).await;
        let _ = io.wr.shutdown().await;
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        let Some(io) = self.io.take() else { return };
        self.assoc.transmit_into(&mut self.out);
        let rest = self.out.split_off(self.out_pos);
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        match self.link.take() {
            Some(link) if !link.state().up => park(io, rest, link),
            link if !rest.is_empty() => {
                rt.spawn(async move {
                    let mut io = io;
                    let _ = tokio::time::timeout(
                        Duration::from_secs(2),
                        write_paced(&mut io.wr, &rest, link.as_ref()),
                    )
                    .await;
                    let _ = io.wr.shutdown().await;
                });
            }
            _ => {}
        }
    }
}

async fn write_paced(
    wr: &mut OwnedWriteHalf,
    mut data: &[u8],
    link: Option<&LinkPath>,
) -> std::io::Result<()> {
    while !data.is_empty() {
        let (at, chunk) = match link {
            Some(l) => l.pace(data.len()),
            None => (None, data.len()),
        };
        if let Some(t) = at {
            tokio::time::sleep_until(t).await;
        }
        let n = wr.write(&data[..chunk]).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        if let Some(l) = link {
            l.sent(n);
        }
        data = &data[n..];
    }
    Ok(())
}

/// A connection closed while its link is cut: keep it — unread, unwritten, not closed —
/// until the link is back (then write its last bytes and close it, as TCP's retransmissions
/// would deliver them) or for [`PARK_MAX`].
fn park(io: Io, rest: Vec<u8>, mut link: LinkPath) {
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return;
    };
    if !link.try_park() {
        tracing::warn!(link = %link.interface, "too many connections parked on cut links; dropping one");
        return;
    }
    rt.spawn(async move {
        let mut io = io;
        if link.wait_up(PARK_MAX).await {
            let _ = tokio::time::timeout(
                Duration::from_secs(5),
                write_paced(&mut io.wr, &rest, Some(&link)),
            )
            .await;
            let _ = io.wr.shutdown().await;
        }
        link.unpark();
        drop(io);
    });
}
