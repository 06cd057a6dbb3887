//! Which deadline a call gets: slot-bounded (a block produced in this slot) or the method's
//! full configured timeout (a block imported from elsewhere).

use std::future::Future;

tokio::task_local! {
    static UNBOUNDED_BY_SLOT: ();
}

/// Run `work` with every call's full configured timeout instead of the slot bound: for blocks
/// that are imported (node sync, catch-up of a whole run), not produced in a slot, where
/// missing the slot is not the failure and giving up on a slow but healthy client is. Calls
/// made inside `work` on the same task (including futures it joins) see it.
pub async fn with_import_deadlines<F: Future>(work: F) -> F::Output {
    UNBOUNDED_BY_SLOT.scope((), work).await
}

/// Whether the current task runs under [`with_import_deadlines`].
pub(crate) fn import_deadlines() -> bool {
    UNBOUNDED_BY_SLOT.try_with(|()| ()).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_work_inside_the_scope_sees_it() {
        assert!(!import_deadlines());
        let joined = async {
            tokio::join!(async { import_deadlines() }, async {
                tokio::task::yield_now().await;
                import_deadlines()
            })
        };
        assert_eq!(with_import_deadlines(joined).await, (true, true));
        assert!(!import_deadlines());
        let spawned =
            with_import_deadlines(async { tokio::spawn(async { import_deadlines() }).await });
        assert!(
            !spawned.await.unwrap_or(true),
            "a spawned task is outside the scope"
        );
    }
}
