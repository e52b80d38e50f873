//! The protocol: one node of a Raft-style replicated log.
//!
//! A node is a follower, a candidate or the leader of a term. Followers
//! that hear nothing from a leader for a random election timeout (drawn
//! from the runtime's generator) become candidates and ask for votes; a
//! candidate with a majority leads. The leader appends a client entry every
//! so often, replicates its log with `Append` messages (which double as
//! heartbeats), and commits an entry of its own term once a majority holds
//! it durably. Everything is written against the runtime traits, so the
//! same code would run on the Tokio runtime over TCP and files.
//!
//! Tasks: [`run`] is the node (its event loop owns the listener, every
//! inbound connection and the durable state); it spawns one sender task per
//! peer, which dials the peer and writes frames. Dropping the [`run`]
//! future (aborting the task that polls it) aborts the senders too, and
//! drops every open blob without syncing it: that is a crash.
//!
//! # Invariants
//! * The hard state (term, vote) is durable before any message that
//!   depends on it is sent: votes are granted, terms adopted and elections
//!   started only after [`Vote::store`] returned.
//! * An `Append` is acknowledged only after its entries are durable, and
//!   the leader counts itself only for entries it has made durable
//!   (both unless `skip_fsync` plants the bug).
//! * The commit index only moves forward within one run of [`run`], and
//!   every entry it passes is reported once to the [`Observer`].
//! * Nothing a peer sends can make the node panic: frames are validated by
//!   [`wire`], indices are bounds-checked against the log.

use crate::{
    log::{HardState, Log, Vote},
    wire::{self, Entry, Message, MAX_ENTRIES},
};
use commonware_runtime::{
    Assertions, Blob, Clock, Error, Handle, Listener, Network, Sink, Spawner, Storage, Stream,
};
use futures::{
    channel::mpsc,
    select_biased,
    stream::{self, BoxStream, SelectAll},
    FutureExt, StreamExt,
};
use rand::{Rng, RngCore};
use std::{
    collections::BTreeSet,
    convert::Infallible,
    net::SocketAddr,
    ops::Range,
    sync::Arc,
    time::{Duration, SystemTime},
};
use thiserror::Error;

/// How a node behaves.
#[derive(Clone, Debug)]
pub struct Config {
    /// This node's index in `peers`.
    pub id: u64,
    /// Every node's listening address, this node's included, by id.
    pub peers: Vec<SocketAddr>,
    /// How often the leader sends `Append` when it has nothing new.
    pub heartbeat: Duration,
    /// Range of the random election timeout.
    pub election: Range<Duration>,
    /// Range of the random pause between two client entries at the leader.
    pub propose: Range<Duration>,
    /// The planted bug: acknowledge appends before they are synced, and
    /// sync the log only every `flush` instead.
    pub skip_fsync: Option<Duration>,
}

/// Who watches the protocol from outside (the simulation's checker).
pub trait Observer: Send + Sync + 'static {
    /// Node `node` (re)started with an empty commit index.
    fn started(&self, node: u64);
    /// Node `node` stands as a candidate in `term`.
    fn campaigning(&self, _node: u64, _term: u64) {}
    /// Node `node` became leader of `term`.
    fn elected(&self, node: u64, term: u64);
    /// Node `node` learned that `entry` is committed at `index`.
    fn committed(&self, node: u64, index: u64, entry: Entry);
}

/// Why a node stopped: a process would crash here and be restarted.
#[derive(Debug, Error)]
pub enum Crash {
    #[error("storage failed: {0}")]
    Storage(#[from] Error),
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, Error),
    #[error("listener failed: {0}")]
    Accept(Error),
}

/// Runs node `config.id` until a fault stops it. It loads its durable state
/// from partition `node<id>`, listens on its address and starts as a
/// follower.
pub async fn run<E, B, L, Si, St>(
    context: E,
    config: Config,
    observer: Arc<dyn Observer>,
) -> Result<Infallible, Crash>
where
    E: Spawner + Clock + RngCore + Storage<B> + Network<L, Si, St> + Assertions,
    B: Blob,
    L: Listener<Si, St>,
    Si: Sink,
    St: Stream,
{
    let partition = format!("node{}", config.id);
    let log = Log::open(&context, &partition).await?;
    // A reachability point: sweeps report how many seeds got a node to
    // restart from a log whose tail a crash had torn.
    context.sometimes("recovery after a torn write", log.repaired());
    let vote = Vote::open(&context, &partition).await?;
    let address = config.peers[config.id as usize];
    let mut listener = context
        .bind(address)
        .await
        .map_err(|err| Crash::Bind(address, err))?;
    observer.started(config.id);

    let mut senders = Tasks(Vec::with_capacity(config.peers.len()));
    let mut outbox = Vec::with_capacity(config.peers.len());
    for (peer, &address) in config.peers.iter().enumerate() {
        if peer as u64 == config.id {
            outbox.push(None);
            continue;
        }
        let (tx, rx) = mpsc::unbounded();
        let sender = sender(context.clone(), address, rx);
        senders
            .0
            .push(context.spawn(&format!("send{peer}"), sender));
        outbox.push(Some(tx));
    }

    let now = context.current();
    let mut node = Node {
        election: now,
        heartbeat: now,
        propose: now,
        flush: now,
        context: context.clone(),
        config,
        observer,
        log,
        vote,
        role: Role::Follower,
        commit: 0,
        unsynced: false,
        outbox,
    };
    node.reset_election();

    let mut inbound: SelectAll<BoxStream<'static, Message>> = SelectAll::new();
    loop {
        let wake = node.deadline();
        // Not `select!`: it picks among ready branches with a thread-local
        // generator outside the runtime's seed, which breaks determinism.
        // A fixed order does not; the timer goes first so a flood of
        // messages cannot starve it.
        let event = select_biased! {
            () = context.sleep_until(wake).fuse() => Event::Timer,
            accepted = listener.accept().fuse() => Event::Accepted(accepted),
            message = inbound.select_next_some() => Event::Message(message),
        };
        match event {
            Event::Accepted(Ok((_, _, stream))) => inbound.push(receiver(stream)),
            Event::Accepted(Err(err)) => return Err(Crash::Accept(err)),
            Event::Message(message) => node.handle(message).await?,
            Event::Timer => node.tick().await?,
        }
    }
}

/// What woke the event loop.
enum Event<Si, St> {
    Accepted(Result<(SocketAddr, Si, St), Error>),
    Message(Message),
    Timer,
}

/// Tasks that must not outlive the node: aborted when it is dropped.
struct Tasks(Vec<Handle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// The messages arriving on one accepted connection, until it fails.
fn receiver<St: Stream>(stream: St) -> BoxStream<'static, Message> {
    stream::unfold((stream, Vec::new()), |(mut stream, mut buf)| async move {
        let message = wire::recv(&mut stream, &mut buf).await.ok()?;
        Some((message, (stream, buf)))
    })
    .boxed()
}

/// Sends what the node queues for one peer, dialing it when needed. A
/// message that cannot be delivered is dropped, as a real network would:
/// the protocol retransmits what matters.
async fn sender<E, L, Si, St>(
    context: E,
    address: SocketAddr,
    mut outbox: mpsc::UnboundedReceiver<Message>,
) where
    E: Network<L, Si, St>,
    L: Listener<Si, St>,
    Si: Sink,
    St: Stream,
{
    let mut connection: Option<Si> = None;
    let mut buf = Vec::new();
    while let Some(message) = outbox.next().await {
        let sink = match &mut connection {
            Some(sink) => sink,
            None => match context.dial(address).await {
                // Only this side sends: the dialer's stream is not needed.
                Ok((sink, _)) => connection.insert(sink),
                Err(_) => {
                    // The peer is unreachable: what was queued for it is lost.
                    while outbox.try_recv().is_ok() {}
                    continue;
                }
            },
        };
        if wire::send(sink, &message, &mut buf).await.is_err() {
            connection = None;
        }
    }
}

/// The node's role in the current term.
enum Role {
    Follower,
    Candidate {
        votes: BTreeSet<u64>,
    },
    Leader {
        /// Next index to send to each peer.
        next: Vec<u64>,
        /// Highest index known to be durable on each node (self included).
        matched: Vec<u64>,
    },
}

/// The state of one running node.
struct Node<E, B: Blob> {
    context: E,
    config: Config,
    observer: Arc<dyn Observer>,
    log: Log<B>,
    vote: Vote<B>,
    role: Role,
    commit: u64,
    /// With `skip_fsync`: the log has writes the next flush must sync.
    unsynced: bool,
    outbox: Vec<Option<mpsc::UnboundedSender<Message>>>,
    election: SystemTime,
    heartbeat: SystemTime,
    propose: SystemTime,
    flush: SystemTime,
}

impl<E, B> Node<E, B>
where
    E: Clock + RngCore,
    B: Blob,
{
    fn id(&self) -> u64 {
        self.config.id
    }

    fn term(&self) -> u64 {
        self.vote.state().term
    }

    fn majority(&self) -> usize {
        self.config.peers.len() / 2 + 1
    }

    /// Whether log appends are synced before they are acknowledged.
    fn durable(&self) -> bool {
        self.config.skip_fsync.is_none()
    }

    /// When the event loop must wake up next if no message arrives.
    fn deadline(&self) -> SystemTime {
        let role = match self.role {
            Role::Leader { .. } => self.heartbeat.min(self.propose),
            _ => self.election,
        };
        match self.unsynced {
            true => role.min(self.flush),
            false => role,
        }
    }

    fn reset_election(&mut self) {
        let timeout = self.context.gen_range(self.config.election.clone());
        self.election = self.context.current() + timeout;
    }

    fn send(&self, peer: u64, message: Message) {
        if let Some(Some(outbox)) = self.outbox.get(peer as usize) {
            // Fails only while the sender task is being torn down.
            let _ = outbox.unbounded_send(message);
        }
    }

    fn peers(&self) -> impl Iterator<Item = u64> {
        let id = self.id();
        (0..self.config.peers.len() as u64).filter(move |&peer| peer != id)
    }

    /// Adopts a newer term seen in a message, stepping down to follower.
    async fn observe(&mut self, term: u64) -> Result<(), Crash> {
        if term > self.term() {
            self.vote.store(HardState { term, vote: None }).await?;
            if !matches!(self.role, Role::Follower) {
                self.role = Role::Follower;
                self.reset_election();
            }
        }
        Ok(())
    }

    /// Reports newly committed entries up to `index` (never moves back).
    fn advance_commit(&mut self, index: u64) {
        let index = index.min(self.log.last_index());
        while self.commit < index {
            self.commit += 1;
            if let Some(entry) = self.log.get(self.commit) {
                self.observer.committed(self.id(), self.commit, entry);
            }
        }
    }

    /// Marks log writes made without sync (with the planted bug).
    fn wrote_unsynced(&mut self) {
        if !self.durable() && !self.unsynced {
            self.unsynced = true;
            self.flush = self.context.current() + self.config.skip_fsync.unwrap_or_default();
        }
    }

    async fn tick(&mut self) -> Result<(), Crash> {
        let now = self.context.current();
        if self.unsynced && now >= self.flush {
            self.log.sync().await?;
            self.unsynced = false;
        }
        match self.role {
            Role::Leader { .. } => {
                if now >= self.propose {
                    self.propose().await?;
                }
                if now >= self.heartbeat {
                    self.broadcast();
                }
            }
            _ if now >= self.election => self.campaign().await?,
            _ => {}
        }
        Ok(())
    }

    async fn campaign(&mut self) -> Result<(), Crash> {
        let id = self.id();
        let term = self.term() + 1;
        self.vote
            .store(HardState {
                term,
                vote: Some(id),
            })
            .await?;
        self.role = Role::Candidate {
            votes: BTreeSet::from([id]),
        };
        self.observer.campaigning(id, term);
        self.reset_election();
        if self.majority() == 1 {
            return self.lead().await;
        }
        for peer in self.peers() {
            self.send(
                peer,
                Message::RequestVote {
                    term,
                    candidate: id,
                    last_index: self.log.last_index(),
                    last_term: self.log.last_term(),
                },
            );
        }
        Ok(())
    }

    async fn lead(&mut self) -> Result<(), Crash> {
        let nodes = self.config.peers.len();
        let last = self.log.last_index();
        let mut matched = vec![0; nodes];
        matched[self.id() as usize] = last;
        self.role = Role::Leader {
            next: vec![last + 1; nodes],
            matched,
        };
        self.observer.elected(self.id(), self.term());
        // An entry of the new term right away: it commits everything before it.
        self.propose().await
    }

    /// Appends a client entry to the leader's log and replicates it.
    async fn propose(&mut self) -> Result<(), Crash> {
        let entry = Entry {
            term: self.term(),
            value: self.context.next_u64(),
        };
        let index = self
            .log
            .append(self.log.last_index(), &[entry], self.durable())
            .await?;
        self.wrote_unsynced();
        if let Role::Leader { matched, .. } = &mut self.role {
            matched[self.config.id as usize] = index;
        }
        self.propose = self.context.current() + self.context.gen_range(self.config.propose.clone());
        self.leader_commit();
        self.broadcast();
        Ok(())
    }

    /// Sends every peer what it is missing (or a heartbeat).
    fn broadcast(&mut self) {
        self.heartbeat = self.context.current() + self.config.heartbeat;
        for peer in self.peers() {
            self.replicate(peer);
        }
    }

    fn replicate(&self, peer: u64) {
        let Role::Leader { next, .. } = &self.role else {
            return;
        };
        let next = next[peer as usize].clamp(1, self.log.last_index() + 1);
        let prev_index = next - 1;
        self.send(
            peer,
            Message::Append {
                term: self.term(),
                leader: self.id(),
                prev_index,
                prev_term: self.log.term(prev_index).unwrap_or(0),
                commit: self.commit,
                entries: self.log.from(next, MAX_ENTRIES).to_vec(),
            },
        );
    }

    /// Commits the highest index a majority holds, if it is of this term.
    fn leader_commit(&mut self) {
        let Role::Leader { matched, .. } = &self.role else {
            return;
        };
        let mut sorted = matched.clone();
        sorted.sort_unstable();
        let candidate = sorted[sorted.len() - self.majority()];
        if candidate > self.commit && self.log.term(candidate) == Some(self.term()) {
            self.advance_commit(candidate);
        }
    }

    async fn handle(&mut self, message: Message) -> Result<(), Crash> {
        match message {
            Message::RequestVote {
                term,
                candidate,
                last_index,
                last_term,
            } => {
                self.observe(term).await?;
                let state = self.vote.state();
                let up_to_date =
                    (last_term, last_index) >= (self.log.last_term(), self.log.last_index());
                let granted = term == state.term
                    && up_to_date
                    && state.vote.is_none_or(|vote| vote == candidate);
                if granted {
                    if state.vote.is_none() {
                        let vote = Some(candidate);
                        self.vote.store(HardState { term, vote }).await?;
                    }
                    self.reset_election();
                }
                let (term, voter) = (self.term(), self.id());
                self.send(
                    candidate,
                    Message::Vote {
                        term,
                        voter,
                        granted,
                    },
                );
            }
            Message::Vote {
                term,
                voter,
                granted,
            } => {
                self.observe(term).await?;
                let majority = self.majority();
                if let Role::Candidate { votes } = &mut self.role {
                    if granted && term == self.vote.state().term {
                        votes.insert(voter);
                        if votes.len() >= majority {
                            self.lead().await?;
                        }
                    }
                }
            }
            Message::Append {
                term,
                leader,
                prev_index,
                prev_term,
                commit,
                entries,
            } => {
                self.observe(term).await?;
                let current = self.term();
                let (success, index) = if term < current {
                    (false, self.log.last_index())
                } else {
                    // A leader of this term exists: not us (one leader per
                    // term), so follow it.
                    self.role = Role::Follower;
                    self.reset_election();
                    if self.log.term(prev_index) == Some(prev_term) {
                        let last = self
                            .log
                            .append(prev_index, &entries, self.durable())
                            .await?;
                        if !entries.is_empty() {
                            self.wrote_unsynced();
                        }
                        self.advance_commit(commit.min(last));
                        (true, last)
                    } else {
                        let hint = self.log.last_index().min(prev_index.saturating_sub(1));
                        (false, hint)
                    }
                };
                self.send(
                    leader,
                    Message::Appended {
                        term: current,
                        follower: self.id(),
                        success,
                        index,
                    },
                );
            }
            Message::Appended {
                term,
                follower,
                success,
                index,
            } => {
                self.observe(term).await?;
                if term != self.term() {
                    return Ok(());
                }
                let last = self.log.last_index();
                let Role::Leader { next, matched } = &mut self.role else {
                    return Ok(());
                };
                let Some(slot) = usize::try_from(follower).ok().filter(|&f| f < next.len()) else {
                    return Ok(());
                };
                if success {
                    let index = index.min(last);
                    matched[slot] = matched[slot].max(index);
                    next[slot] = next[slot].max(index + 1);
                    let behind = next[slot] <= last;
                    self.leader_commit();
                    if behind {
                        self.replicate(follower);
                    }
                } else {
                    // The follower lacks what it once acknowledged only if
                    // it lost acknowledged writes; believing it keeps the
                    // cluster live (a lower `matched` never commits more).
                    matched[slot] = matched[slot].min(index);
                    let retry = index + 1;
                    if retry < next[slot] {
                        next[slot] = retry;
                        self.replicate(follower);
                    }
                }
            }
        }
        Ok(())
    }
}
