//! Test-only faults of the metadata store: a commit or a WAL sync that fails with an
//! OS error, built as SurrealKV reports one (`Error::Io`), so the errno typing
//! (`MetaError::NoSpace`) and everything above it see what a real disk fault gives.
//! SurrealKV's own file-system seam is private, so faults enter at our boundary.

use std::sync::{Arc, Mutex};

use super::MetaError;

/// Which metadata operations fail, and with which errno.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct MetaFaultPlan {
    /// Every commit fails with this errno (nothing of the transaction is applied).
    pub commit_errno: Option<i32>,
    /// Every WAL sync fails with this errno.
    pub sync_errno: Option<i32>,
}

/// The switchboard a test flips while the store runs.
#[derive(Debug, Default)]
pub(crate) struct MetaFaults {
    plan: Mutex<MetaFaultPlan>,
}

impl MetaFaults {
    /// Replaces the plan.
    pub(crate) fn set(&self, plan: MetaFaultPlan) {
        *self.plan.lock().unwrap_or_else(|p| p.into_inner()) = plan;
    }

    /// No faults from now on.
    pub(crate) fn clear(&self) {
        self.set(MetaFaultPlan::default());
    }

    fn plan(&self) -> MetaFaultPlan {
        *self.plan.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The error a commit meets now, if any.
    pub(super) fn commit(&self) -> Option<MetaError> {
        self.plan().commit_errno.map(|e| injected(e, "commit"))
    }

    /// The error a WAL sync meets now, if any.
    pub(super) fn sync(&self) -> Option<MetaError> {
        self.plan()
            .sync_errno
            .map(|e| injected(e, "sync metadata WAL"))
    }
}

fn injected(errno: i32, what: &str) -> MetaError {
    let io = std::io::Error::from_raw_os_error(errno);
    MetaError::kv(what, surrealkv::Error::Io(Arc::new(io)))
}
