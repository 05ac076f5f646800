//! Waiting for tasks: waiters answered when their task finishes, bounded ones when their
//! bound passes (filed in the wait slots), and tasks no longer held read from the store.

use std::time::{Duration, Instant};

use super::tasks::{WaitReply, Waiter, Waiters};
use super::{OrchestratorMsg, OrchestratorState, TaskError};
use crate::domain::{TaskId, TaskRecord};
use crate::store_writer::{Ack, Retry};

impl OrchestratorState {
    /// Replies when the task is final, and for a durable task once its final state is
    /// committed: a task that finished moments ago may still have its final write in the
    /// store writer, so the reply goes through a barrier there (acked once everything
    /// sent before it is committed).
    pub(super) fn wait(&mut self, id: TaskId, reply: WaitReply, wait: Option<Duration>) {
        if self.tasks.get(&id).is_some_and(|e| !e.record.state.is_final()) {
            let waiter = self.waiter(id, reply, wait);
            return self.tasks.get_mut(&id).expect("just seen").waiters.push(waiter);
        }
        let Some(entry) = self.tasks.get_mut(&id) else {
            // Not held here: finished long ago (or unknown); the store has the last word.
            return self.read_from_store(id, reply);
        };
        if !entry.record.durable {
            return reply.send(Ok(TaskRecord::clone(&entry.record)));
        }
        let record = entry.record.clone();
        let ack: Ack = Box::new(move |result| {
            let answer = result
                .map(|()| TaskRecord::clone(&record))
                .map_err(|e| TaskError::Unavailable(format!("the final state was not stored: {e}")));
            reply.send(answer);
        });
        self.write_now(Vec::new(), ack, Retry::UntilCommitted);
    }

    /// Answers from the store for a task no longer held in memory; the read runs outside
    /// the mailbox.
    pub(super) fn read_from_store(&self, id: TaskId, reply: WaitReply) {
        let store = self.args.store.clone();
        tokio::spawn(async move {
            let result = match store.task(id).await {
                Ok(Some(record)) => Ok(record),
                Ok(None) => Err(TaskError::NotFound(id)),
                Err(error) => Err(TaskError::Unavailable(error.to_string())),
            };
            reply.send(result);
        });
    }

    /// A waiter of task `id`; a bounded one is filed in the wait slots (a new slot gets a
    /// timer message).
    pub(super) fn waiter(&mut self, id: TaskId, reply: WaitReply, wait: Option<Duration>) -> Waiter {
        let Some(wait) = wait else { return Waiter { reply, until: None, slot: None } };
        let until = Instant::now() + wait;
        let (slot, timer) = self.wait_slots.add(id, until);
        if let Some(delay) = timer {
            let timer = self.myself.send_after(delay, move || OrchestratorMsg::WaitElapsed { slot });
            self.wait_slots.timer(slot, timer.abort_handle());
        }
        Waiter { reply, until: Some(until), slot: Some(slot) }
    }

    /// Answers the bounded waiters whose bound has passed, with their task as it is now.
    /// (A finished task's waiters were answered, and its ids taken out, when it finished.)
    pub(super) fn wait_elapsed(&mut self, slot: u64) {
        let now = Instant::now();
        for id in self.wait_slots.take(slot) {
            let Some(entry) = self.tasks.get_mut(&id) else { continue };
            if entry.record.state.is_final() {
                continue;
            }
            let (due, waiting): (Waiters, Waiters) = std::mem::take(&mut entry.waiters)
                .into_iter()
                .partition(|w| w.until.is_some_and(|u| u <= now));
            entry.waiters = waiting;
            for waiter in due {
                waiter.send(Ok(TaskRecord::clone(&entry.record)));
            }
        }
    }
}
