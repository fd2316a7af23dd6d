//! Sender: a client that keeps the README's resend rule, for the fault tests. It numbers
//! messages gaplessly, sends them in pipelined rounds, and after any error or reconnect resends
//! everything unacknowledged, in order, with the same seqs, starting from the session frame's
//! `last_seq`. It records what each reply claimed, so a test can check the claims.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::client::{Stream, url};

/// How long one reply may take (a store call is bounded by REDIS_TIMEOUT_MS, well below this).
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause before resending after an error reply.
const RESEND_DELAY: Duration = Duration::from_millis(50);

/// What the replies to one seq said, across all its attempts.
#[derive(Debug, Default, Clone)]
pub(crate) struct SeqHistory {
    /// Attempts answered `store_unavailable` (a claim: this attempt was not applied).
    pub(crate) not_applied: u32,
    /// Attempts that may have been applied without a `count` reply saying so
    /// (`outcome_unknown`, or the connection ended before the reply).
    pub(crate) uncertain: u32,
}

/// A claim that was broken, or a count that does not add up.
pub(crate) type Violation = String;

/// What a sender saw; the test checks it against Redis.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    /// Each error code seen, with how many times.
    pub(crate) errors: BTreeMap<String, u64>,
    pub(crate) reconnects: u64,
    pub(crate) violations: Vec<Violation>,
    /// Longest wait for the first reply of a round.
    pub(crate) slowest_reply: Duration,
}

pub(crate) struct Sender {
    addr: SocketAddr,
    pub(crate) session_id: String,
    stream: Option<Stream>,
    /// The last seq the server acknowledged (gapless: every seq up to it was counted once).
    pub(crate) acked: i64,
    /// The last seq numbered.
    pub(crate) numbered: i64,
    history: BTreeMap<i64, SeqHistory>,
    pub(crate) tally: Tally,
}

/// One reply, or the connection's end.
enum Reply {
    Frame(Value),
    Ended,
}

impl Sender {
    /// Opens a new session.
    pub(crate) async fn open(addr: SocketAddr) -> Result<Self, String> {
        let mut sender = Sender {
            addr,
            session_id: String::new(),
            stream: None,
            acked: 0,
            numbered: 0,
            history: BTreeMap::new(),
            tally: Tally::default(),
        };
        let session = sender.connect(None).await?;
        sender.session_id = session["session_id"]
            .as_str()
            .ok_or("session frame without session_id")?
            .to_owned();
        Ok(sender)
    }

    /// Connects (resuming `session_id` if given) and reads the session frame.
    async fn connect(&mut self, session_id: Option<&str>) -> Result<Value, String> {
        let (mut stream, _) = tokio::time::timeout(
            REPLY_TIMEOUT,
            tokio_tungstenite::connect_async(url(self.addr, session_id)),
        )
        .await
        .map_err(|_| "handshake timed out".to_owned())?
        .map_err(|e| format!("connect: {e}"))?;
        let session = match next_reply(&mut stream).await {
            Reply::Frame(frame) if frame["type"] == "session" => frame,
            Reply::Frame(frame) => return Err(format!("first frame is not the session: {frame}")),
            Reply::Ended => return Err("ended before the session frame".to_owned()),
        };
        self.stream = Some(stream);
        Ok(session)
    }

    /// Reconnects with the session id until it is resumed or `deadline` passes; everything up
    /// to the session frame's `last_seq` is acknowledged. Returns the session frame.
    pub(crate) async fn resume(&mut self, deadline: Instant) -> Result<Value, String> {
        self.stream = None;
        self.tally.reconnects += 1;
        let id = self.session_id.clone();
        loop {
            match self.connect(Some(&id)).await {
                Ok(session) => {
                    if session["resumed"] != true || session["session_id"] != id.as_str() {
                        return Err(format!("session {id} was not resumed: {session}"));
                    }
                    let last_seq = session["last_seq"].as_i64().ok_or("no last_seq")?;
                    if last_seq < self.acked || last_seq > self.numbered {
                        return Err(format!(
                            "resumed with last_seq {last_seq}, acknowledged {} of {} sent",
                            self.acked, self.numbered
                        ));
                    }
                    if session["count"] != last_seq {
                        self.tally
                            .violations
                            .push(format!("resumed with {session}"));
                    }
                    self.ack_through(last_seq, true);
                    return Ok(session);
                }
                Err(error) if Instant::now() >= deadline => {
                    return Err(format!("no resume by the deadline: {error}"));
                }
                Err(_) => tokio::time::sleep(RESEND_DELAY).await,
            }
        }
    }

    /// Numbers `n` more messages.
    pub(crate) fn queue(&mut self, n: i64) {
        self.numbered += n;
    }

    /// Drops the connection without a close handshake (a client that vanishes mid-round).
    fn drop_connection(&mut self) {
        self.stream = None;
    }

    /// Sends everything pending, at most `window` per round, until all are acknowledged or
    /// `deadline` passes; reconnects whenever the connection ends. `drop_after` makes the
    /// sender drop its own connection after that many replies of the first round.
    pub(crate) async fn flush(
        &mut self,
        window: i64,
        deadline: Instant,
        mut drop_after: Option<usize>,
    ) -> Result<(), String> {
        while self.acked < self.numbered {
            if Instant::now() >= deadline {
                return Err(format!(
                    "{}: {} of {} acknowledged at the deadline",
                    self.session_id, self.acked, self.numbered
                ));
            }
            if self.stream.is_none() {
                self.resume(deadline).await?;
                continue;
            }
            let first = self.acked + 1;
            let last = self.numbered.min(self.acked + window);
            if !self.send_round(first, last, drop_after.take()).await {
                tokio::time::sleep(RESEND_DELAY).await;
            }
        }
        Ok(())
    }

    /// Sends seqs `first..=last`, reads one reply each; true when all were acknowledged.
    async fn send_round(&mut self, first: i64, last: i64, drop_after: Option<usize>) -> bool {
        let Some(stream) = self.stream.as_mut() else {
            return false;
        };
        for seq in first..=last {
            if stream
                .send(Message::text(json!({ "seq": seq }).to_string()))
                .await
                .is_err()
            {
                return self.lost(first, last);
            }
        }
        let started = Instant::now();
        let mut clean = true;
        for (i, seq) in (first..=last).enumerate() {
            if drop_after == Some(i) {
                self.drop_connection();
                return self.lost(seq, last);
            }
            let Some(stream) = self.stream.as_mut() else {
                return false;
            };
            let reply = match next_reply(stream).await {
                Reply::Frame(frame) => frame,
                Reply::Ended => return self.lost(seq, last),
            };
            if i == 0 {
                self.tally.slowest_reply = self.tally.slowest_reply.max(started.elapsed());
            }
            clean &= self.on_reply(seq, &reply);
        }
        clean
    }

    /// The connection ended with replies for `first..=last` unread: those may have been applied.
    fn lost(&mut self, first: i64, last: i64) -> bool {
        for seq in first..=last {
            self.history.entry(seq).or_default().uncertain += 1;
        }
        self.stream = None;
        false
    }

    /// Records the reply to `seq`; true when it acknowledged it.
    fn on_reply(&mut self, seq: i64, reply: &Value) -> bool {
        if reply["seq"] != seq {
            self.tally
                .violations
                .push(format!("reply to seq {seq} names another seq: {reply}"));
            return false;
        }
        match reply["type"].as_str() {
            Some("count") => {
                let duplicate = reply["duplicate"] == true;
                // A duplicate answers the session's count now, which includes later seqs an
                // earlier round applied without a `count` reply saying so.
                let count = reply["count"].as_i64().unwrap_or(-1);
                let consistent = if duplicate {
                    (seq..=self.numbered).contains(&count)
                } else {
                    count == seq
                };
                if !consistent {
                    self.tally.violations.push(format!(
                        "seq {seq} answered {reply}: the count must equal the seq \
                         (a duplicate's: at least the seq, at most the last sent)"
                    ));
                }
                self.ack_through(seq, duplicate);
                true
            }
            Some("error") => {
                let code = reply["code"].as_str().unwrap_or("?").to_owned();
                let entry = self.history.entry(seq).or_default();
                match code.as_str() {
                    "store_unavailable" => entry.not_applied += 1,
                    "outcome_unknown" => entry.uncertain += 1,
                    "seq_gap" => {
                        // Gapless: everything before `expected` was applied.
                        if let Some(expected) = reply["expected"].as_i64() {
                            self.ack_through(expected - 1, true);
                        }
                    }
                    _ => self
                        .tally
                        .violations
                        .push(format!("unexpected error for seq {seq}: {reply}")),
                }
                *self.tally.errors.entry(code).or_default() += 1;
                false
            }
            _ => {
                self.tally
                    .violations
                    .push(format!("unexpected reply to seq {seq}: {reply}"));
                false
            }
        }
    }

    /// Every seq up to `seq` is applied. `already` says it was applied by an earlier attempt:
    /// then one of that seq's attempts must have been uncertain, or a "not applied" lied.
    fn ack_through(&mut self, seq: i64, already: bool) {
        if seq <= self.acked {
            return;
        }
        for s in self.acked + 1..=seq {
            let history = self.history.remove(&s).unwrap_or_default();
            let applied_silently = already || s < seq;
            if applied_silently && history.uncertain == 0 {
                self.tally.violations.push(format!(
                    "seq {s} was applied by an attempt answered as not applied \
                     ({} store_unavailable, no uncertain attempt)",
                    history.not_applied
                ));
            }
        }
        self.acked = seq;
    }
}

/// The next non-heartbeat frame, bounded.
async fn next_reply(stream: &mut Stream) -> Reply {
    loop {
        match tokio::time::timeout(REPLY_TIMEOUT, stream.next()).await {
            Err(_) | Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => {
                return Reply::Ended;
            }
            Ok(Some(Ok(Message::Text(text)))) => {
                let Ok(frame) = serde_json::from_str::<Value>(&text) else {
                    return Reply::Ended;
                };
                if frame["type"] != "heartbeat" {
                    return Reply::Frame(frame);
                }
            }
            Ok(Some(Ok(_))) => {}
        }
    }
}
