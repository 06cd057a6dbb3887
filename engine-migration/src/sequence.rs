//! How the two paths of a migration take turns on one execution client.

use engine_types::EngineError;

/// The baseline's call, then the candidate's — only when the baseline's succeeded. The two
/// never overlap (EthereumJS, asked for the same payload twice at once, returned two blocks
/// with different state roots), and a candidate never changes the EL's state after the caller
/// has been told the call failed.
pub(crate) async fn candidate_after_baseline<T>(
    baseline: impl Future<Output = Result<T, EngineError>>,
    candidate: impl Future<Output = Result<T, EngineError>>,
) -> (Result<T, EngineError>, Option<Result<T, EngineError>>) {
    let first = baseline.await;
    if first.is_err() {
        return (first, None);
    }
    let second = candidate.await;
    (first, Some(second))
}
