//! One A2A exchange's record (its `a2a` log line and metrics, written when it ends), and an
//! SSE answer passed through frame by frame while its events are read on the side.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use http::Response;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::Value;

use super::pinning::Learner;
use super::rpc::{self, Seen};
use super::{A2aBackend, A2aMetrics, A2aRequestLabels, A2aStateLabels, stream};
use crate::forwarding::strip_response;

impl A2aBackend {
    /// Passes an SSE answer through frame by frame, reading its events on the side.
    pub(super) fn stream_through(
        &self,
        resp: Response<Incoming>,
        learner: Learner,
        mut ex: Exchange,
    ) -> Response<Body> {
        let (mut parts, body) = resp.into_parts();
        strip_response(&mut parts.headers);
        ex.outcome = "aborted";
        let state = StreamState {
            body,
            scanner: stream::SseScanner::default(),
            learner,
            ex,
            done: false,
        };
        let frames = futures::stream::unfold(state, |mut st| async move {
            if st.done {
                return None;
            }
            loop {
                match st.body.frame().await {
                    None => {
                        // The exchange is logged when `st` drops here.
                        st.ex.ended();
                        return None;
                    }
                    Some(Err(e)) => {
                        st.done = true;
                        st.ex.outcome = "upstream_error";
                        return Some((Err(e), st));
                    }
                    Some(Ok(frame)) => {
                        let Ok(data) = frame.into_data() else {
                            continue;
                        };
                        let mut seen = Vec::new();
                        let ex = &mut st.ex;
                        st.scanner.feed(&data, |event| ex.event(event, &mut seen));
                        // Pin before the client sees the event, so its next call (through
                        // any gateway) finds the replica.
                        st.learner.learn(&seen).await;
                        return Some((Ok(data), st));
                    }
                }
            }
        });
        Response::from_parts(parts, Body::from_stream(frames))
    }
}

struct StreamState {
    body: Incoming,
    scanner: stream::SseScanner,
    learner: Learner,
    ex: Exchange,
    done: bool,
}

/// One A2A exchange, for its log line and metrics (written when it is dropped: at the end of
/// a JSON call, or when a stream ends or the client leaves it).
pub(super) struct Exchange {
    metrics: A2aMetrics,
    route: Arc<str>,
    method: &'static str,
    task_id: Option<String>,
    state: Option<&'static str>,
    pub(super) replica: Arc<str>,
    pub(super) outcome: &'static str,
    events: u64,
    started: Instant,
}

impl Exchange {
    pub(super) fn new(b: &A2aBackend, method: &'static str, task_id: Option<String>) -> Self {
        Exchange {
            metrics: b.metrics.clone(),
            route: b.route.clone(),
            method,
            task_id,
            state: None,
            replica: Arc::from(""),
            outcome: "upstream_error",
            events: 0,
            started: Instant::now(),
        }
    }

    pub(super) fn saw(&mut self, s: &Seen) {
        if self.task_id.is_none() {
            self.task_id.clone_from(&s.task_id);
        }
        if let Some(state) = s.state {
            self.state = Some(state);
            self.metrics
                .task_states
                .get_or_create(&A2aStateLabels {
                    route: self.route.clone(),
                    state,
                })
                .inc();
        }
    }

    /// The stream ended cleanly (an error event in it keeps the outcome `error`).
    pub(super) fn ended(&mut self) {
        if self.outcome != "error" {
            self.outcome = "ok";
        }
    }

    /// One SSE event's data.
    pub(super) fn event(&mut self, data: &str, seen: &mut Vec<Seen>) {
        self.events += 1;
        let Ok(v) = serde_json::from_str::<Value>(data) else {
            return;
        };
        if v.get("error").is_some() {
            self.outcome = "error";
        }
        let before = seen.len();
        if let Some(result) = v.get("result") {
            rpc::observe(result, seen);
        }
        let new = seen.get(before..).unwrap_or_default();
        for s in new {
            self.saw(s);
        }
        let state = new.iter().rev().find_map(|s| s.state).unwrap_or("none");
        self.metrics
            .stream_events
            .get_or_create(&A2aStateLabels {
                route: self.route.clone(),
                state,
            })
            .inc();
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        self.metrics
            .requests
            .get_or_create(&A2aRequestLabels {
                route: self.route.clone(),
                method: self.method,
                outcome: self.outcome,
            })
            .inc();
        tracing::info!(
            target: "a2a",
            route = %self.route,
            method = self.method,
            task_id = self.task_id.as_deref().unwrap_or(""),
            task_state = self.state.unwrap_or(""),
            replica = %self.replica,
            outcome = self.outcome,
            events = self.events,
            duration_ms = self.started.elapsed().as_secs_f64() * 1000.0,
            "a2a call"
        );
    }
}
