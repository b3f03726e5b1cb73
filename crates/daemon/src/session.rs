//! Sessions: the owners of processes. A session outlives its connection for a TTL.
//!
//! A session is *attached* to at most one connection at a time; notifications of its
//! processes go to that connection. When the connection ends the session is *detached* and
//! a timer expires it after the TTL, killing every process tree it owns. `initialize` with
//! `resumeSessionId` re-attaches a detached session; teardown wins at the TTL boundary.

use exec_server_environment::local::{ProcessConfig, ProcessTable};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// Where the registry reads the time: tokio's clock in the server, a hand-set one in tests
/// of the TTL boundary.
pub(crate) trait Clock: Send + Sync {
    fn now(&self) -> Instant;
}

pub(crate) struct TokioClock;

impl Clock for TokioClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// Identifies one connection for attachment checks.
pub(crate) type ConnectionId = u64;

/// Outbound queue of one connection: serialized messages for its writer task.
pub(crate) type Outbound = mpsc::Sender<String>;

pub(crate) struct Session {
    pub id: String,
    pub processes: ProcessTable,
    attachment: Mutex<Attachment>,
    /// Bumped whenever the attachment changes (attach, detach, expiry).
    changes: watch::Sender<()>,
}

enum Attachment {
    Attached {
        connection: ConnectionId,
        outbound: Outbound,
    },
    Detached {
        expires_at: Instant,
    },
    /// Torn down: its processes were killed and it cannot be resumed.
    Expired,
}

impl Session {
    fn attachment(&self) -> MutexGuard<'_, Attachment> {
        self.attachment.lock().expect("session lock poisoned")
    }

    /// Where notifications go now, if the session is attached.
    pub fn outbound(&self) -> Option<Outbound> {
        match &*self.attachment() {
            Attachment::Attached { outbound, .. } => Some(outbound.clone()),
            Attachment::Detached { .. } | Attachment::Expired => None,
        }
    }

    /// Completes once `connection` has lost the session for good: another connection
    /// resumed it, or it expired. (A plain disconnect does not count: the connection's
    /// in-flight requests may still finish.)
    pub async fn displaced_from(&self, connection: ConnectionId) {
        let mut changes = self.changes.subscribe();
        loop {
            changes.borrow_and_update();
            let displaced = match &*self.attachment() {
                Attachment::Attached { connection: c, .. } => *c != connection,
                Attachment::Detached { .. } => false,
                Attachment::Expired => true,
            };
            if displaced || changes.changed().await.is_err() {
                return;
            }
        }
    }

    fn set_attachment(&self, attachment: Attachment) {
        *self.attachment() = attachment;
        self.changes.send_replace(());
    }

    /// Tears the session down: kills every process tree it owns.
    fn expire(&self) {
        self.set_attachment(Attachment::Expired);
        self.processes.kill_all();
    }

    /// Whether `connection` is the one this session is attached to.
    pub fn is_attached_to(&self, connection: ConnectionId) -> bool {
        matches!(&*self.attachment(), Attachment::Attached { connection: c, .. } if *c == connection)
    }
}

/// Why `initialize` could not attach a session.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AttachError {
    #[error("unknown session id {0}")]
    Unknown(String),
    #[error("session {0} is already attached to another connection")]
    AlreadyAttached(String),
    #[error(
        "too many sessions: the limit (maxSessions) is {0}; close unused sessions or raise \
         --max-sessions"
    )]
    TooManySessions(usize),
}

impl AttachError {
    pub fn to_error_object(&self) -> exec_server_protocol::ErrorObject {
        let error = exec_server_protocol::ErrorObject::new(
            exec_server_protocol::error_codes::INVALID_REQUEST,
            self.to_string(),
        );
        match self {
            AttachError::TooManySessions(n) => {
                error.with_data(serde_json::json!({"limit": "maxSessions", "max": n}))
            }
            _ => error,
        }
    }
}

pub(crate) struct SessionRegistry {
    ttl: Duration,
    max_sessions: usize,
    clock: Arc<dyn Clock>,
    process_config: ProcessConfig,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
}

impl SessionRegistry {
    pub fn new(ttl: Duration, process_config: ProcessConfig) -> Self {
        Self::with_clock(ttl, process_config, Arc::new(TokioClock))
    }

    /// At most `max` live sessions at once.
    pub fn with_max_sessions(mut self, max: usize) -> Self {
        self.max_sessions = max;
        self
    }

    pub fn with_clock(ttl: Duration, process_config: ProcessConfig, clock: Arc<dyn Clock>) -> Self {
        SessionRegistry {
            ttl,
            max_sessions: usize::MAX,
            clock,
            process_config,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    fn sessions(&self) -> MutexGuard<'_, HashMap<String, Arc<Session>>> {
        self.sessions
            .lock()
            .expect("session registry lock poisoned")
    }

    /// Creates a new session attached to `connection`, within the session limit.
    pub fn create(
        &self,
        connection: ConnectionId,
        outbound: Outbound,
    ) -> Result<Arc<Session>, AttachError> {
        if self.sessions().len() >= self.max_sessions {
            return Err(AttachError::TooManySessions(self.max_sessions));
        }
        let session = Arc::new(Session {
            id: uuid::Uuid::new_v4().to_string(),
            processes: ProcessTable::new(self.process_config.clone()),
            attachment: Mutex::new(Attachment::Attached {
                connection,
                outbound,
            }),
            changes: watch::Sender::new(()),
        });
        self.sessions().insert(session.id.clone(), session.clone());
        Ok(session)
    }

    /// Re-attaches a detached session to `connection`.
    pub fn resume(
        &self,
        id: &str,
        connection: ConnectionId,
        outbound: Outbound,
    ) -> Result<Arc<Session>, AttachError> {
        let mut sessions = self.sessions();
        let session = sessions
            .get(id)
            .cloned()
            .ok_or_else(|| AttachError::Unknown(id.to_owned()))?;
        let attachment = session.attachment();
        match &*attachment {
            Attachment::Attached { .. } => Err(AttachError::AlreadyAttached(id.to_owned())),
            Attachment::Expired => Err(AttachError::Unknown(id.to_owned())),
            Attachment::Detached { expires_at, .. } if self.clock.now() >= *expires_at => {
                // Teardown wins at the boundary, even if the timer has not fired yet.
                drop(attachment);
                sessions.remove(id);
                drop(sessions);
                session.expire();
                Err(AttachError::Unknown(id.to_owned()))
            }
            Attachment::Detached { .. } => {
                drop(attachment);
                session.set_attachment(Attachment::Attached {
                    connection,
                    outbound,
                });
                Ok(session)
            }
        }
    }

    /// Detaches `session` from `connection` (if still attached to it) and arms its expiry.
    pub fn detach(self: &Arc<Self>, session: &Arc<Session>, connection: ConnectionId) {
        let expires_at = self.clock.now() + self.ttl;
        if !session.is_attached_to(connection) {
            return;
        }
        session.set_attachment(Attachment::Detached { expires_at });
        let registry = Arc::downgrade(self);
        let session = Arc::downgrade(session);
        tokio::spawn(async move {
            tokio::time::sleep_until(expires_at).await;
            let (Some(registry), Some(session)) = (registry.upgrade(), session.upgrade()) else {
                return;
            };
            registry.expire_if_due(&session);
        });
    }

    fn expire_if_due(&self, session: &Arc<Session>) {
        let mut sessions = self.sessions();
        let due = matches!(&*session.attachment(),
            Attachment::Detached { expires_at, .. } if self.clock.now() >= *expires_at);
        if due {
            sessions.remove(&session.id);
            drop(sessions);
            tracing::info!(session = %session.id, "session expired; killing its processes");
            session.expire();
        }
    }

    /// Live sessions, attached or detached.
    pub fn len(&self) -> usize {
        self.sessions().len()
    }

    /// Processes that have not exited, over every session.
    pub fn running_processes(&self) -> usize {
        self.sessions()
            .values()
            .map(|s| s.processes.running_count())
            .sum()
    }

    /// Kills every process of every session (server shutdown).
    pub fn kill_all(&self) {
        for session in self.sessions().values() {
            session.processes.kill_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use exec_server_environment::ProcessBackend;
    use exec_server_protocol::process::{ReadParams, StartParams};
    use exec_server_protocol::AbsolutePath;

    /// A clock that moves only when told to.
    struct ManualClock(Mutex<Instant>);

    impl Clock for ManualClock {
        fn now(&self) -> Instant {
            *self.0.lock().unwrap()
        }
    }

    fn sleeper(id: &str) -> StartParams {
        StartParams {
            process_id: id.to_owned(),
            argv: vec!["/bin/sleep".into(), "1000".into()],
            cwd: AbsolutePath::parse("/").unwrap(),
            env_policy: None,
            env: Default::default(),
            tty: false,
            pipe_stdin: false,
            arg0: None,
            timeout_ms: None,
            sandbox: None,
            enforce_managed_network: false,
            managed_network: None,
            network_proxy: None,
            tty_size: None,
        }
    }

    #[tokio::test]
    async fn teardown_wins_at_the_ttl_boundary() {
        const TTL: Duration = Duration::from_secs(30);
        let start = Instant::now();
        let clock = Arc::new(ManualClock(Mutex::new(start)));
        let registry = Arc::new(SessionRegistry::with_clock(
            TTL,
            ProcessConfig::default(),
            clock.clone(),
        ));
        let (outbound, _queue) = mpsc::channel(8);

        // Just before the deadline, resume works.
        let session = registry.create(1, outbound.clone()).unwrap();
        registry.detach(&session, 1);
        *clock.0.lock().unwrap() = start + TTL - Duration::from_nanos(1);
        let resumed = registry.resume(&session.id, 2, outbound.clone()).unwrap();
        assert!(resumed.is_attached_to(2));

        // At the deadline exactly, and before the (real-time) expiry timer has fired, the
        // session is torn down and its processes killed.
        let mut started = resumed.processes.start(sleeper("s")).await.unwrap();
        registry.detach(&resumed, 2);
        *clock.0.lock().unwrap() = start + TTL - Duration::from_nanos(1) + TTL;
        let err = registry
            .resume(&session.id, 3, outbound.clone())
            .err()
            .unwrap();
        assert!(matches!(err, AttachError::Unknown(_)), "{err}");
        let mut last = None;
        while let Some(event) = tokio::time::timeout(Duration::from_secs(10), started.events.next())
            .await
            .expect("the killed process reports its exit")
        {
            last = Some(event);
        }
        assert!(matches!(
            last,
            Some(exec_server_environment::ProcessEvent::Closed { .. })
        ));
        let r = resumed
            .processes
            .read(ReadParams {
                process_id: "s".into(),
                ..ReadParams::default()
            })
            .await
            .unwrap();
        assert_eq!((r.exit_code, r.signal), (Some(-1), Some(libc::SIGKILL)));
        // And it stays gone.
        assert!(registry.resume(&session.id, 4, outbound).is_err());
    }

    #[tokio::test]
    async fn an_attached_session_cannot_be_taken_over() {
        let registry = Arc::new(SessionRegistry::new(
            Duration::from_secs(30),
            ProcessConfig::default(),
        ));
        let (outbound, _queue) = mpsc::channel(8);
        let session = registry.create(1, outbound.clone()).unwrap();
        let err = registry
            .resume(&session.id, 2, outbound.clone())
            .err()
            .unwrap();
        assert!(matches!(err, AttachError::AlreadyAttached(_)));
        assert!(session.is_attached_to(1));
        // Detaching from a connection it is not attached to changes nothing.
        registry.detach(&session, 2);
        assert!(session.is_attached_to(1));
    }
}
