//! Admission control: at most `max_concurrency` generations run at once, at
//! most `max_queue` more wait for a slot, and anything beyond is turned away at
//! once (429) instead of piling up.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::ApiError;
use super::metrics::Metrics;

/// Generation slots plus a bounded waiting line.
#[derive(Debug)]
pub(crate) struct Admission {
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
    max_concurrency: usize,
    max_queue: usize,
    metrics: Arc<Metrics>,
}

/// A running generation's slot; dropping it frees the slot.
#[derive(Debug)]
pub(crate) struct Slot {
    _permit: OwnedSemaphorePermit,
    metrics: Arc<Metrics>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.metrics.add_in_flight(-1);
    }
}

/// Leaves the waiting line when dropped (also when the client gives up while waiting).
struct Waiting<'a>(&'a Admission);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::SeqCst);
        self.0.metrics.add_queue_depth(-1);
    }
}

impl Admission {
    pub(crate) fn new(max_concurrency: usize, max_queue: usize, metrics: Arc<Metrics>) -> Self {
        let max_concurrency = max_concurrency.max(1);
        Self {
            slots: Arc::new(Semaphore::new(max_concurrency)),
            waiting: AtomicUsize::new(0),
            max_concurrency,
            max_queue,
            metrics,
        }
    }

    /// A slot now, or after waiting in line, or a 429 when the line is full.
    pub(crate) async fn enter(&self) -> Result<Slot, ApiError> {
        let permit = match Arc::clone(&self.slots).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                let joined = self
                    .waiting
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                        (n < self.max_queue).then_some(n + 1)
                    })
                    .is_ok();
                if !joined {
                    return Err(ApiError::overloaded(self.max_concurrency, self.max_queue));
                }
                self.metrics.add_queue_depth(1);
                let _waiting = Waiting(self);
                Arc::clone(&self.slots)
                    .acquire_owned()
                    .await
                    .map_err(|_| ApiError::internal("the server is shutting down"))?
            }
        };
        self.metrics.add_in_flight(1);
        Ok(Slot {
            _permit: permit,
            metrics: Arc::clone(&self.metrics),
        })
    }
}
