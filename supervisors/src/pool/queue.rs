//! The pool's waiting jobs: highest priority first, first-in first-out within a priority.

use std::cmp::Reverse;
use std::collections::{BTreeMap, VecDeque};

use super::Job;

pub(super) struct JobQueue<J> {
    levels: BTreeMap<Reverse<u8>, VecDeque<J>>,
    len: usize,
}

impl<J: Job> JobQueue<J> {
    pub(super) fn new() -> Self {
        JobQueue { levels: BTreeMap::new(), len: 0 }
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(super) fn push(&mut self, job: J) {
        self.levels.entry(Reverse(job.priority())).or_default().push_back(job);
        self.len += 1;
    }

    /// The oldest job of the highest priority.
    pub(super) fn pop(&mut self) -> Option<J> {
        let mut level = self.levels.first_entry()?;
        let job = level.get_mut().pop_front();
        if level.get().is_empty() {
            level.remove();
        }
        self.len -= 1;
        job
    }

    pub(super) fn drain(&mut self) -> impl Iterator<Item = J> + '_ {
        self.len = 0;
        std::mem::take(&mut self.levels).into_values().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PoolError;

    struct P(u8, u32);

    impl Job for P {
        fn reject(self, _: PoolError) {}
        fn priority(&self) -> u8 {
            self.0
        }
    }

    #[test]
    fn highest_priority_first_then_fifo() {
        let mut q = JobQueue::new();
        for (p, n) in [(5, 1), (9, 2), (5, 3), (0, 4), (9, 5)] {
            q.push(P(p, n));
        }
        assert_eq!(q.len(), 5);
        let order: Vec<u32> = std::iter::from_fn(|| q.pop()).map(|j| j.1).collect();
        assert_eq!(order, [2, 5, 1, 3, 4]);
        assert!(q.is_empty());
    }
}
