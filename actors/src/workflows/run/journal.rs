//! Journaling, then acting: a run's transitions reach the store writer before the run
//! acts on them (after the commit when the run is durable, at once when it is not).

use serde_json::{json, Map, Value};

use super::{RunDriver, RunMsg, UnitKey};
use crate::domain::workflow::{JournalEntry, JournalKind};
use crate::domain::EventKind;
use crate::ports::{StoreError, Write};
use crate::store_writer::{Retry, StoreWriterMsg};
use crate::workflows::ViewReply;

impl RunDriver {
    /// Journals `entries`, then acts on them (after the commit when the run is durable).
    pub(super) fn commit(&mut self, entries: Vec<JournalEntry>, replies: Vec<ViewReply>) {
        if entries.is_empty() {
            for reply in replies {
                let _ = reply.send(Ok(self.view()));
            }
            return;
        }
        let mut writes: Vec<Write> = Vec::with_capacity(entries.len() * 2 + 1);
        for entry in &entries {
            let event = self.env.events.emit(
                EventKind::for_journal(entry.kind),
                self.event_names.0.clone(),
                self.event_names.1.clone(),
                event_data(&self.record.workflow, entry).into(),
            );
            writes.push(Write::AppendJournal(Box::new(entry.clone())));
            if self.record.durable {
                writes.push(Write::AppendEvent(event));
            }
        }
        if self.refresh_record() {
            writes.push(Write::PutRun(Box::new(self.record.clone())));
        }
        if self.record.durable {
            self.unacked += entries.len();
            let me = self.myself.clone();
            let ack: crate::store_writer::Ack = Box::new(move |result| {
                let _ = me.cast(RunMsg::Journaled { entries, result, replies });
            });
            let message = StoreWriterMsg::Write { writes, ack: Some(ack), retry: Retry::UntilCommitted };
            if let Err(ractor::MessagingErr::SendErr(StoreWriterMsg::Write { ack: Some(ack), .. })) =
                self.env.writer.cast(message)
            {
                ack(Err(StoreError::Unavailable("the store writer is not running".into())));
            }
        } else {
            let message = StoreWriterMsg::Write { writes, ack: None, retry: Retry::UntilCommitted };
            if self.env.writer.cast(message).is_err() {
                tracing::error!(run = %self.record.id, "the store writer is not running; the run's journal is not kept");
            }
            self.act(&entries);
            for reply in replies {
                let _ = reply.send(Ok(self.view()));
            }
        }
    }

    /// Brings the record in line with the progress; `true` when it changed.
    fn refresh_record(&mut self) -> bool {
        let p = &self.progress;
        let state = p.record_state();
        let r = &mut self.record;
        if r.state == state && r.output == p.output && r.error == p.error {
            return false;
        }
        r.state = state;
        r.output = p.output.clone();
        r.error = p.error.clone();
        r.updated_at = self.env.clock.now();
        if state.is_final() {
            r.owner = None;
        }
        true
    }

    /// Acts on committed entries: starts units, drops those of ended steps, ends the run.
    pub(super) fn act(&mut self, entries: &[JournalEntry]) {
        for entry in entries {
            let step = entry.step.clone().unwrap_or_default();
            let attempt = entry.attempt.unwrap_or(0);
            match entry.kind {
                JournalKind::StepRunning if !self.is_fan_out(&step) => {
                    self.start_unit(UnitKey { step, item: None, attempt }, self.new_keys())
                }
                JournalKind::ItemRunning => {
                    let item = entry.data["index"].as_u64().map(|n| n as usize);
                    self.start_unit(UnitKey { step, item, attempt }, self.new_keys())
                }
                JournalKind::StepSucceeded | JournalKind::StepFailed | JournalKind::StepRetrying => {
                    self.drop_units(|unit| unit.step == step)
                }
                JournalKind::RunSucceeded | JournalKind::RunFailed | JournalKind::RunCancelled => {
                    self.drop_units(|_| true)
                }
                _ => {}
            }
        }
        if self.record.state.is_final() && self.unacked == 0 {
            self.finish();
        }
    }
}

/// What a run's event carries: where it is, never outputs or inputs.
fn event_data(workflow: &str, entry: &JournalEntry) -> Value {
    let mut data = Map::new();
    data.insert("workflow".into(), json!(workflow));
    if let Some(step) = &entry.step {
        data.insert("step".into(), json!(step));
    }
    if let Some(attempt) = entry.attempt {
        data.insert("attempt".into(), json!(attempt));
    }
    for key in ["index", "error", "state", "reason", "approved", "by", "retry_at", "model"] {
        if let Some(value) = entry.data.get(key).filter(|v| !v.is_null()) {
            data.insert(key.into(), value.clone());
        }
    }
    // A plan's size, not the plan: `runs get` shows the plan itself.
    if let Some(steps) = entry.data.get("steps").and_then(Value::as_array) {
        data.insert("planned_steps".into(), json!(steps.len()));
    }
    Value::Object(data)
}
