//! What the proxy needs to know about an A2A JSON-RPC exchange, for both protocol generations:
//! the method, the task (and conversation) a request names, the push-notification URLs it
//! registers, and the tasks and states a result or stream event reveals.
//!
//! A2A 0.3 names methods `message/send`, `tasks/get`, ... and writes `kind`-tagged objects with
//! lowercase states (`input-required`); 1.0 names them `SendMessage`, `GetTask`, ... and wraps
//! results (`{"task": {...}}`, `{"statusUpdate": {...}}`) with `TASK_STATE_*` states. Both are
//! read here, without caring which one a request declares in `A2A-Version`.

use serde_json::Value;

/// The A2A methods the proxy knows, as metric label values (a bounded set).
pub const METHODS: &[&str] = &[
    // 0.3
    "message/send",
    "message/stream",
    "tasks/get",
    "tasks/cancel",
    "tasks/resubscribe",
    "tasks/pushNotificationConfig/set",
    "tasks/pushNotificationConfig/get",
    "tasks/pushNotificationConfig/list",
    "tasks/pushNotificationConfig/delete",
    "agent/getAuthenticatedExtendedCard",
    // 1.0
    "SendMessage",
    "SendStreamingMessage",
    "GetTask",
    "CancelTask",
    "SubscribeToTask",
    "ListTasks",
    "CreateTaskPushNotificationConfig",
    "GetTaskPushNotificationConfig",
    "ListTaskPushNotificationConfigs",
    "DeleteTaskPushNotificationConfig",
    "GetExtendedAgentCard",
];

/// What a request asks for.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Call {
    /// The method as a label: one of [`METHODS`], or `unknown`.
    pub method: &'static str,
    /// The task the request is about (continuing, reading, cancelling, subscribing, push config).
    pub task_id: Option<String>,
    /// The conversation a new message belongs to.
    pub context_id: Option<String>,
    /// Push-notification URLs the request would register with the agent.
    pub push_urls: Vec<String>,
    /// The result is an agent card (the extended card methods) and must be rewritten.
    pub returns_card: bool,
    /// Reads or cancels an existing task: safe to try on another replica when one answers
    /// "task not found" (the pinning was lost).
    pub probe_safe: bool,
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for k in path {
        cur = cur.get(*k)?;
    }
    cur.as_str().filter(|s| !s.is_empty())
}

/// Reads a request's method and params.
pub fn classify(method: &str, params: &Value) -> Call {
    let label = METHODS
        .iter()
        .copied()
        .find(|m| *m == method)
        .unwrap_or("unknown");
    let mut call = Call {
        method: label,
        ..Call::default()
    };
    let own = |k: &str| str_at(params, &[k]).map(str::to_owned);
    match label {
        "message/send" | "message/stream" | "SendMessage" | "SendStreamingMessage" => {
            call.task_id = str_at(params, &["message", "taskId"]).map(str::to_owned);
            call.context_id = str_at(params, &["message", "contextId"]).map(str::to_owned);
            // 0.3: configuration.pushNotificationConfig.url; 1.0:
            // configuration.taskPushNotificationConfig.url (older drafts: pushNotificationConfig).
            for key in ["pushNotificationConfig", "taskPushNotificationConfig"] {
                if let Some(u) = params
                    .get("configuration")
                    .and_then(|c| c.get(key))
                    .and_then(|c| c.get("url"))
                {
                    call.push_urls.push(u.as_str().unwrap_or("").to_owned());
                }
            }
        }
        "tasks/get" | "tasks/cancel" | "tasks/resubscribe" | "GetTask" | "CancelTask"
        | "SubscribeToTask" => {
            call.task_id = own("id");
            call.probe_safe = true;
        }
        // 0.3: {taskId, pushNotificationConfig: {url}}; 1.0: {taskId, url}.
        "tasks/pushNotificationConfig/set" | "CreateTaskPushNotificationConfig" => {
            call.task_id = own("taskId");
            for u in [
                params.get("url"),
                params
                    .get("pushNotificationConfig")
                    .and_then(|c| c.get("url")),
            ]
            .into_iter()
            .flatten()
            {
                call.push_urls.push(u.as_str().unwrap_or("").to_owned());
            }
        }
        // 0.3 names the task `id`; 1.0 `taskId` (and `id` is the config's).
        "tasks/pushNotificationConfig/get"
        | "tasks/pushNotificationConfig/list"
        | "tasks/pushNotificationConfig/delete" => {
            call.task_id = own("taskId").or_else(|| own("id"));
            call.probe_safe = true;
        }
        "GetTaskPushNotificationConfig"
        | "ListTaskPushNotificationConfigs"
        | "DeleteTaskPushNotificationConfig" => {
            call.task_id = own("taskId");
            call.probe_safe = true;
        }
        "ListTasks" => call.context_id = own("contextId"),
        "agent/getAuthenticatedExtendedCard" | "GetExtendedAgentCard" => call.returns_card = true,
        _ => {}
    }
    call
}

/// A task seen in a result or stream event.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Seen {
    /// Task id.
    pub task_id: Option<String>,
    /// Conversation id.
    pub context_id: Option<String>,
    /// Normalized state (see [`normalize_state`]), when the object carries a status.
    pub state: Option<&'static str>,
}

/// The tasks a JSON-RPC `result` (or one stream event's `result`) reveals: one for a task,
/// message or update, several for a task list.
pub fn observe(result: &Value, out: &mut Vec<Seen>) {
    let Some(obj) = result.as_object() else {
        return;
    };
    // 1.0 wrappers: SendMessageResponse / StreamResponse.
    for key in ["task", "message", "statusUpdate", "artifactUpdate"] {
        if let Some(inner) = obj.get(key)
            && inner.is_object()
        {
            observe(inner, out);
            return;
        }
    }
    if let Some(tasks) = obj.get("tasks").and_then(Value::as_array) {
        for t in tasks {
            observe(t, out);
        }
        return;
    }
    let kind = obj.get("kind").and_then(Value::as_str);
    let is_task = kind == Some("task")
        || (obj.contains_key("status") && obj.contains_key("id") && !obj.contains_key("taskId"));
    let task_id = if is_task {
        str_at(result, &["id"])
    } else {
        str_at(result, &["taskId"])
    };
    let context_id = str_at(result, &["contextId"]);
    if task_id.is_none() && context_id.is_none() {
        return;
    }
    out.push(Seen {
        task_id: task_id.map(str::to_owned),
        context_id: context_id.map(str::to_owned),
        state: str_at(result, &["status", "state"]).map(normalize_state),
    });
}

/// Task states as metric label values: 1.0's `TASK_STATE_INPUT_REQUIRED` and 0.3's
/// `input-required` both become `input_required`; anything else is `unknown`.
pub fn normalize_state(s: &str) -> &'static str {
    let s = s.strip_prefix("TASK_STATE_").unwrap_or(s);
    const STATES: &[&str] = &[
        "submitted",
        "working",
        "input_required",
        "completed",
        "canceled",
        "failed",
        "rejected",
        "auth_required",
    ];
    STATES
        .iter()
        .copied()
        .find(|known| {
            known.len() == s.len()
                && known
                    .bytes()
                    .zip(s.bytes())
                    .all(|(k, c)| k == c.to_ascii_lowercase() || (k == b'_' && c == b'-'))
        })
        .or_else(|| s.eq_ignore_ascii_case("cancelled").then_some("canceled"))
        .unwrap_or("unknown")
}

/// A2A's "task not found" error code (both generations).
pub const TASK_NOT_FOUND: i64 = -32001;

/// The JSON-RPC error code of a response body, if it is an error.
pub fn error_code(v: &Value) -> Option<i64> {
    v.get("error")?.get("code")?.as_i64()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn classifies_both_generations() {
        let c = classify("tasks/get", &json!({"id": "t1"}));
        assert_eq!(
            (c.method, c.task_id.as_deref(), c.probe_safe),
            ("tasks/get", Some("t1"), true)
        );
        let c = classify("GetTask", &json!({"id": "t1"}));
        assert_eq!(c.task_id.as_deref(), Some("t1"));
        let c = classify(
            "message/send",
            &json!({"message": {"taskId": "t2", "contextId": "c2"},
                    "configuration": {"pushNotificationConfig": {"url": "http://x/"}}}),
        );
        assert_eq!(c.task_id.as_deref(), Some("t2"));
        assert_eq!(c.context_id.as_deref(), Some("c2"));
        assert_eq!(c.push_urls, vec!["http://x/"]);
        let c = classify(
            "SendMessage",
            &json!({"message": {}, "configuration": {"taskPushNotificationConfig": {"url": "http://y/"}}}),
        );
        assert_eq!(c.push_urls, vec!["http://y/"]);
        let c = classify(
            "tasks/pushNotificationConfig/set",
            &json!({"taskId": "t3", "pushNotificationConfig": {"url": "http://z/"}}),
        );
        assert_eq!(
            (c.task_id.as_deref(), c.push_urls.clone()),
            (Some("t3"), vec!["http://z/".to_owned()])
        );
        let c = classify(
            "CreateTaskPushNotificationConfig",
            &json!({"taskId": "t4", "url": "http://w/"}),
        );
        assert_eq!(
            (c.task_id.as_deref(), c.push_urls.clone()),
            (Some("t4"), vec!["http://w/".to_owned()])
        );
        let c = classify("tasks/pushNotificationConfig/get", &json!({"id": "t5"}));
        assert_eq!(c.task_id.as_deref(), Some("t5"));
        let c = classify(
            "GetTaskPushNotificationConfig",
            &json!({"taskId": "t6", "id": "cfg"}),
        );
        assert_eq!(c.task_id.as_deref(), Some("t6"));
        assert!(classify("GetExtendedAgentCard", &json!({})).returns_card);
        assert_eq!(classify("bogus", &json!({})).method, "unknown");
    }

    #[test]
    fn observes_results_and_events() {
        let mut out = Vec::new();
        observe(
            &json!({"task": {"id": "t", "contextId": "c", "status": {"state": "TASK_STATE_WORKING"}}}),
            &mut out,
        );
        observe(
            &json!({"kind": "status-update", "taskId": "t", "contextId": "c", "status": {"state": "input-required"}}),
            &mut out,
        );
        observe(
            &json!({"artifactUpdate": {"taskId": "t", "artifact": {}}}),
            &mut out,
        );
        observe(
            &json!({"id": "t9", "kind": "task", "status": {"state": "completed"}}),
            &mut out,
        );
        observe(
            &json!({"tasks": [{"id": "a", "status": {"state": "TASK_STATE_CANCELED"}}, {"id": "b", "status": {}}]}),
            &mut out,
        );
        let states: Vec<_> = out
            .iter()
            .map(|s| (s.task_id.as_deref().unwrap(), s.state))
            .collect();
        assert_eq!(
            states,
            vec![
                ("t", Some("working")),
                ("t", Some("input_required")),
                ("t", None),
                ("t9", Some("completed")),
                ("a", Some("canceled")),
                ("b", None),
            ]
        );
        assert_eq!(normalize_state("TASK_STATE_AUTH_REQUIRED"), "auth_required");
        assert_eq!(normalize_state("weird"), "unknown");
    }
}
