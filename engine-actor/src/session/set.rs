//! [`SessionSet`]: every session's published status, in endpoint order, and the questions
//! the engine and the writer ask of it (which links are healthy, why none is).

use std::sync::Arc;

use tokio::sync::watch;

use super::{SessionLink, SessionStatus};

/// The sessions of one tree (the senders outlive the session actors). Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct SessionSet(Arc<[Arc<watch::Sender<SessionStatus>>]>);

impl SessionSet {
    /// One initial status per endpoint URL, in order (0 is the primary).
    pub(crate) fn new(endpoints: impl IntoIterator<Item = String>) -> Self {
        Self(
            endpoints
                .into_iter()
                .enumerate()
                .map(|(i, url)| Arc::new(watch::channel(SessionStatus::new(i, url)).0))
                .collect(),
        )
    }

    /// Where session `index` publishes its status.
    pub(crate) fn sender(&self, index: usize) -> Option<Arc<watch::Sender<SessionStatus>>> {
        self.0.get(index).cloned()
    }

    /// Every session's status channel.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Arc<watch::Sender<SessionStatus>>> {
        self.0.iter()
    }

    /// The healthy sessions' links in endpoint order (the first is the primary).
    pub(crate) fn healthy_links(&self) -> Vec<SessionLink> {
        self.0
            .iter()
            .filter_map(|s| s.borrow().healthy_link())
            .collect()
    }

    /// The writable sessions' links in endpoint order (the first is the primary).
    pub(crate) fn writable_links(&self) -> Vec<SessionLink> {
        self.0
            .iter()
            .filter_map(|s| s.borrow().writable_link())
            .collect()
    }

    /// Every session's status now.
    pub(crate) fn statuses(&self) -> Vec<SessionStatus> {
        self.0.iter().map(|s| s.borrow().clone()).collect()
    }

    /// Why no session can be used, for errors.
    pub(crate) fn no_session_reason(&self) -> String {
        let detail: Vec<String> = self.0.iter().map(|s| s.borrow().describe()).collect();
        format!("no healthy execution client session: {}", detail.join("; "))
    }
}
