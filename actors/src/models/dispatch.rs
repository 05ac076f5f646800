//! One routed call, run in its own task so the router's mailbox never waits on a model:
//! tries the ordered candidates with retries and backoff, bounds every attempt by the
//! attempt timeout and the caller's deadline, stops when the caller goes away, and
//! reports usage (or the release of the reservation) back to the router.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use ractor::ActorRef;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::budget::{ReservationId, Spend};
use super::call::{CallContext, ModelCall, ModelOutput};
use super::provider::ProviderMsg;
use super::router::RouterMsg;
use super::select::Candidate;
use super::stats::{Admission, Outcome, ProviderStats};
use crate::domain::model::UsageRecord;
use crate::metrics::{ModelMetrics, ModelSeries};
use crate::ports::model::{ChatChunk, ChatStream, ModelError, Usage};

/// A candidate with what the call task needs to reach it.
pub struct Route {
    pub candidate: Candidate,
    pub stats: Arc<ProviderStats>,
    /// The provider actor's registry name (looked up per attempt: it may have restarted).
    pub actor: String,
    /// The model's metrics at this provider.
    pub series: Arc<ModelSeries>,
}

pub struct Plan {
    pub call: ModelCall,
    pub context: CallContext,
    pub routes: Vec<Route>,
    pub retries: u32,
    pub backoff: Duration,
    pub attempt_timeout: Duration,
    pub reservation: Option<ReservationId>,
    pub router: ActorRef<RouterMsg>,
    pub metrics: Arc<ModelMetrics>,
}

pub type Reply = oneshot::Sender<Result<ModelOutput, ModelError>>;

/// Runs the plan and answers `reply`. Cancelled when the caller drops its receiver.
pub async fn run(plan: Plan, mut reply: Reply) {
    let cancel = CancellationToken::new();
    let outcome = tokio::select! {
        outcome = attempts(&plan, &cancel) => outcome,
        () = reply.closed() => {
            cancel.cancel();
            plan.metrics.call_failed(&ModelError::Cancelled);
            return settle(&plan, None, None);
        }
    };
    match outcome {
        Ok((route, ModelOutput::Stream(stream), admission)) => {
            // Usage is known when the stream ends; the meter settles then.
            let meter = Meter { plan, route, admission: Some(admission), first_token: None };
            let _ = reply.send(Ok(ModelOutput::Stream(metered(stream, meter))));
        }
        Ok((route, mut output, admission)) => {
            let route = &plan.routes[route];
            let usage = match &output {
                ModelOutput::Chat(r) => r.usage,
                ModelOutput::Embed(r) => r.usage,
                ModelOutput::Stream(_) => unreachable!("handled above"),
            };
            let elapsed = admission.elapsed();
            admission.finish(&route.candidate.model.id, Outcome::Success(usage));
            route.series.answered(elapsed, None, usage);
            plan.metrics.call_succeeded();
            let record = usage_record(&plan.context, &route.candidate, usage, elapsed, None);
            let spend = usage_spend(route, usage);
            if let ModelOutput::Chat(response) = &mut output {
                response.cost = spend.cost;
            }
            settle(&plan, Some(spend), Some(record));
            let _ = reply.send(Ok(output));
        }
        Err(error) => {
            plan.metrics.call_failed(&error);
            settle(&plan, None, None);
            let _ = reply.send(Err(error));
        }
    }
}

/// Tries the routes in order, wrapping around for retries, until one answers, the
/// error is the request's own, or attempts run out.
async fn attempts(
    plan: &Plan,
    cancel: &CancellationToken,
) -> Result<(usize, ModelOutput, Admission), ModelError> {
    let mut last_error = None;
    let mut backoff = plan.backoff;
    let total = plan.retries as usize + 1;
    for attempt in 0..total {
        let index = attempt % plan.routes.len();
        let route = &plan.routes[index];
        if attempt >= plan.routes.len() {
            // Back to a provider already tried: give it a moment.
            sleep_or_deadline(backoff, plan.context.deadline).await;
            backoff = backoff.saturating_mul(2);
        }
        let Some(admission) = route.stats.admit() else {
            last_error.get_or_insert(ModelError::Unavailable {
                provider: route.candidate.provider.clone(),
                reason: "its circuit breaker is open after repeated failures; it is tried again after \
                         models.breaker.open_for"
                    .into(),
            });
            continue;
        };
        let error = match attempt_once(plan, route, cancel).await {
            Ok(output) => return Ok((index, output, admission)),
            Err(error) => error,
        };
        if error == ModelError::Cancelled {
            // Dropping the admission says nothing about the provider.
            return Err(error);
        }
        let message = error.to_string();
        admission.finish(&route.candidate.model.id, outcome_of(&error, &message));
        route.series.failed(&error);
        if !error.is_provider_fault() {
            return Err(error);
        }
        tracing::debug!(provider = %route.candidate.provider, %error, attempt, "model call attempt failed");
        last_error = Some(error);
        if plan.context.deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
            break;
        }
    }
    Err(last_error.unwrap_or(ModelError::Cancelled))
}

fn outcome_of<'m>(error: &ModelError, message: &'m str) -> Outcome<'m> {
    if error.is_provider_fault() {
        Outcome::ProviderFault(message)
    } else {
        Outcome::RequestFault(message)
    }
}

/// One attempt at one provider, bounded by the attempt timeout and the deadline.
async fn attempt_once(
    plan: &Plan,
    route: &Route,
    cancel: &CancellationToken,
) -> Result<ModelOutput, ModelError> {
    let Some(actor) = ractor::registry::where_is(route.actor.clone()) else {
        return Err(ModelError::Unavailable {
            provider: route.candidate.provider.clone(),
            reason: "its actor is restarting".into(),
        });
    };
    let limit = match plan.context.deadline {
        Some(deadline) => {
            plan.attempt_timeout.min(deadline.saturating_duration_since(tokio::time::Instant::now()))
        }
        None => plan.attempt_timeout,
    };
    let attempt = cancel.child_token();
    let (tx, rx) = oneshot::channel();
    let message = ProviderMsg::Call {
        call: Box::new(plan.call.for_model(&route.candidate.model.id)),
        cancel: attempt.clone(),
        reply: tx,
    };
    let unavailable = |reason: &str| ModelError::Unavailable {
        provider: route.candidate.provider.clone(),
        reason: reason.to_string(),
    };
    if ActorRef::<ProviderMsg>::from(actor).send_message(message).is_err() {
        return Err(unavailable("its actor stopped"));
    }
    match tokio::time::timeout(limit, rx).await {
        Ok(Ok(result)) => result,
        Ok(Err(_)) => Err(unavailable("its actor stopped during the call")),
        Err(_) => {
            attempt.cancel();
            Err(ModelError::Timeout { provider: route.candidate.provider.clone(), after: limit })
        }
    }
}

async fn sleep_or_deadline(delay: Duration, deadline: Option<tokio::time::Instant>) {
    let until = tokio::time::Instant::now() + delay;
    tokio::time::sleep_until(deadline.map_or(until, |d| d.min(until))).await;
}

fn usage_spend(route: &Route, usage: Usage) -> Spend {
    Spend { tokens: usage.total(), cost: route.candidate.model.price.cost(&usage) }
}

fn usage_record(
    context: &CallContext,
    candidate: &Candidate,
    usage: Usage,
    elapsed: Duration,
    first_token: Option<Duration>,
) -> UsageRecord {
    let at_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    UsageRecord {
        id: uuid::Uuid::now_v7(),
        at_ms,
        namespace: context.namespace.clone(),
        task: context.task,
        run: context.run,
        agent: context.agent.clone(),
        provider: candidate.provider.clone(),
        model: candidate.model.id.clone(),
        prompt_tokens: usage.prompt_tokens,
        completion_tokens: usage.completion_tokens,
        cost: candidate.model.price.cost(&usage),
        latency_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
        first_token_ms: first_token.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
    }
}

/// Tells the router how the call ended: `spend` settles the reservation (or records
/// usage), `None` releases it.
fn settle(plan: &Plan, spend: Option<Spend>, record: Option<UsageRecord>) {
    let _ = plan.router.send_message(RouterMsg::Settled {
        reservation: plan.reservation,
        namespace: plan.context.namespace.clone(),
        spend,
        record,
    });
}

/// Follows a streamed answer to its end to record its latency, time to first token and
/// usage; a stream dropped before its end releases the reservation.
struct Meter {
    plan: Plan,
    route: usize,
    /// Taken when the stream ends (its `Done` or an error).
    admission: Option<Admission>,
    first_token: Option<Duration>,
}

impl Meter {
    fn observe(&mut self, item: &Result<ChatChunk, ModelError>) {
        let Some(admission) = self.admission.take() else { return };
        let route = &self.plan.routes[self.route];
        match item {
            Ok(ChatChunk::Delta { .. }) => {
                self.first_token.get_or_insert_with(|| admission.elapsed());
                self.admission = Some(admission);
            }
            Ok(ChatChunk::Done { usage, .. }) => {
                let elapsed = admission.elapsed();
                admission.finish(&route.candidate.model.id, Outcome::Success(*usage));
                route.series.answered(elapsed, self.first_token, *usage);
                self.plan.metrics.call_succeeded();
                let record =
                    usage_record(&self.plan.context, &route.candidate, *usage, elapsed, self.first_token);
                settle(&self.plan, Some(usage_spend(route, *usage)), Some(record));
            }
            Err(error) => {
                let message = error.to_string();
                admission.finish(&route.candidate.model.id, outcome_of(error, &message));
                route.series.failed(error);
                self.plan.metrics.call_failed(error);
                settle(&self.plan, None, None);
            }
        }
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        // Dropped before its end: the admission goes with it, the reservation is released.
        if self.admission.take().is_some() {
            self.plan.metrics.call_failed(&ModelError::Cancelled);
            settle(&self.plan, None, None);
        }
    }
}

fn metered(stream: ChatStream, mut meter: Meter) -> ChatStream {
    stream
        .map(move |item| {
            meter.observe(&item);
            item
        })
        .boxed()
}
