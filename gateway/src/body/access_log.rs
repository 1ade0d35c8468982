//! The access log: one line per request, written off the serving threads.
//!
//! When a response body finishes, [`crate::body::Completion`] hands the request's record (the
//! completion itself, already boxed, plus its end) to a bounded channel with `try_send`. A
//! full channel drops the line and counts it in `switchboard_access_log_dropped_total`: a slow
//! disk or a stuck pipe never blocks a request. One writer thread takes the lines in batches
//! (every 10 ms while they come), formats them into a buffer and writes it when it holds 64 KiB, when its oldest line has waited
//! `flush_interval`, on [`AccessLog::flush`] (shutdown) and when the last handle goes.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::time::{Duration, Instant, SystemTime};

use prometheus_client::metrics::counter::Counter;

use super::Completion;
use crate::config::{AccessLogConfig, AccessLogField, AccessLogFormat};
use crate::metrics::Metrics;

/// The buffer is written out when it holds this much.
const WRITE_AT: usize = 64 * 1024;
/// How long the writer sleeps with nothing buffered.
const IDLE_WAIT: Duration = Duration::from_secs(3600);
/// After a line arrives, how long the writer lets more gather before it takes them all. The
/// channel holds `buffer` lines, so it takes `buffer` / `GATHER` lines a second (409,600 at
/// the default 4096) before it drops.
const GATHER: Duration = Duration::from_millis(10);

/// A finished request on its way to the writer.
pub struct Entry {
    pub(crate) completion: Box<Completion>,
    pub(crate) time: SystemTime,
    pub(crate) elapsed: Duration,
    pub(crate) bytes: u64,
    pub(crate) outcome: &'static str,
}

enum Msg {
    Line(Entry),
    Flush(SyncSender<()>),
}

/// A handle to the access log writer; cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct AccessLog {
    inner: Arc<Shared>,
}

struct Shared {
    tx: SyncSender<Msg>,
    dropped: Counter,
}

/// Where lines go.
enum Sink {
    Stderr,
    File(std::fs::File, PathBuf),
}

impl Sink {
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            // Holding the stderr lock keeps other log lines from landing inside a batch.
            Sink::Stderr => std::io::stderr().lock().write_all(buf),
            Sink::File(f, _) => f.write_all(buf),
        }
    }
}

impl AccessLog {
    /// Starts the writer for `cfg`, or returns `None` when the access log is off: `to: off`,
    /// or `to: stderr` with the `access` log target disabled by `RUST_LOG`. Registers
    /// `switchboard_access_log_dropped_total` in `metrics`. A relative file path is taken
    /// from `base_dir`; the file is created or appended to.
    pub fn start(
        cfg: &AccessLogConfig,
        base_dir: &Path,
        metrics: &Metrics,
    ) -> std::io::Result<Option<AccessLog>> {
        let dropped = Counter::default();
        metrics.with_registry(|r| {
            r.register(
                "access_log_dropped",
                "Access log lines dropped because the writer's buffer was full",
                dropped.clone(),
            )
        });
        let (sink, on_stderr) = match cfg.to.as_str() {
            "off" => return Ok(None),
            "stderr" => {
                if !tracing::enabled!(target: "access", tracing::Level::INFO) {
                    return Ok(None);
                }
                (Sink::Stderr, true)
            }
            path => {
                let path = base_dir.join(path);
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .map_err(|e| {
                        std::io::Error::new(e.kind(), format!("access log {}: {e}", path.display()))
                    })?;
                (Sink::File(file, path), false)
            }
        };
        let format = cfg.format.unwrap_or(match crate::telemetry::format() {
            crate::telemetry::LogFormat::Text => AccessLogFormat::Text,
            crate::telemetry::LogFormat::Json => AccessLogFormat::Json,
        });
        let fields = cfg
            .fields
            .clone()
            .unwrap_or_else(|| AccessLogField::ALL.to_vec());
        let (tx, rx) = std::sync::mpsc::sync_channel(cfg.buffer.max(1));
        let writer = Writer {
            sink,
            format,
            fields,
            on_stderr,
            interval: cfg.flush_interval.max(Duration::from_millis(1)),
            buf: Vec::with_capacity(WRITE_AT + 1024),
            failing: false,
        };
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || writer.run(rx))?;
        Ok(Some(AccessLog {
            inner: Arc::new(Shared { tx, dropped }),
        }))
    }

    /// Hands a line to the writer, or drops and counts it when the buffer is full. Never
    /// blocks.
    pub fn send(&self, entry: Entry) {
        match self.inner.tx.try_send(Msg::Line(entry)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.inner.dropped.inc();
            }
        }
    }

    /// Lines dropped so far.
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.get()
    }

    /// Waits up to `timeout` for the lines sent so far to be written (blocking; used at
    /// shutdown). Returns whether they were.
    pub fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let (ack_tx, ack_rx) = std::sync::mpsc::sync_channel(1);
        let mut msg = Msg::Flush(ack_tx);
        loop {
            match self.inner.tx.try_send(msg) {
                Ok(()) => break,
                Err(TrySendError::Disconnected(_)) => return false,
                Err(TrySendError::Full(m)) => {
                    if Instant::now() >= deadline {
                        return false;
                    }
                    msg = m;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
        ack_rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .is_ok()
    }
}

struct Writer {
    sink: Sink,
    format: AccessLogFormat,
    fields: Vec<AccessLogField>,
    on_stderr: bool,
    interval: Duration,
    buf: Vec<u8>,
    /// The last write failed (logged once until a write succeeds again).
    failing: bool,
}

impl Writer {
    fn run(mut self, rx: Receiver<Msg>) {
        // When the oldest line still in the buffer must be written.
        let mut due: Option<Instant> = None;
        let mut line = String::with_capacity(512);
        loop {
            let wait = due.map_or(IDLE_WAIT, |d| d.saturating_duration_since(Instant::now()));
            match rx.recv_timeout(wait) {
                Ok(msg) => self.handle(msg, &mut due, &mut line),
                Err(RecvTimeoutError::Timeout) => {
                    self.write_out();
                    due = None;
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.write_out();
                    return;
                }
            }
            // Let a batch gather, then take it without blocking: under load the channel is
            // never empty when this thread looks, so senders never have to wake it (a wake-up
            // per line cost two context switches per request).
            std::thread::sleep(GATHER);
            loop {
                match rx.try_recv() {
                    Ok(msg) => self.handle(msg, &mut due, &mut line),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        self.write_out();
                        return;
                    }
                }
            }
        }
    }

    fn handle(&mut self, msg: Msg, due: &mut Option<Instant>, line: &mut String) {
        match msg {
            Msg::Line(e) => {
                line.clear();
                self.format_line(line, &e);
                // The completion's handles (metrics, this log) are released here, off the
                // serving thread.
                drop(e);
                self.buf.extend_from_slice(line.as_bytes());
                let due_at = *due.get_or_insert_with(|| Instant::now() + self.interval);
                if self.buf.len() >= WRITE_AT || Instant::now() >= due_at {
                    self.write_out();
                    *due = None;
                }
            }
            Msg::Flush(ack) => {
                self.write_out();
                *due = None;
                let _ = ack.try_send(());
            }
        }
    }

    fn write_out(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        match self.sink.write_all(&self.buf) {
            Ok(()) => self.failing = false,
            Err(e) => {
                if !self.failing {
                    let to = match &self.sink {
                        Sink::Stderr => "stderr".to_string(),
                        Sink::File(_, p) => p.display().to_string(),
                    };
                    tracing::warn!(to, error = %e, "cannot write the access log; lines lost");
                }
                self.failing = true;
            }
        }
        self.buf.clear();
    }

    fn format_line(&self, out: &mut String, e: &Entry) {
        match self.format {
            AccessLogFormat::Json => {
                out.push('{');
                let mut first = true;
                let mut key = |out: &mut String, k: &str| {
                    if !first {
                        out.push(',');
                    }
                    first = false;
                    out.push('"');
                    out.push_str(k);
                    out.push_str("\":");
                };
                if self.on_stderr {
                    // Like the other log lines on stderr, so one reader takes them all.
                    key(out, "level");
                    out.push_str("\"INFO\"");
                    key(out, "target");
                    out.push_str("\"access\"");
                }
                for f in &self.fields {
                    key(out, f.name());
                    field(out, *f, e, json_str, true);
                }
                out.push_str("}\n");
            }
            AccessLogFormat::Text => {
                for (i, f) in self.fields.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    out.push_str(f.name());
                    out.push('=');
                    field(out, *f, e, text_str, false);
                }
                out.push('\n');
            }
        }
    }
}

/// One field's value: strings through `string` (JSON literal or text token); the time and
/// the client address in quotes when `quote` (JSON), numbers as they are.
fn field(
    out: &mut String,
    f: AccessLogField,
    e: &Entry,
    string: fn(&mut String, &str),
    quote: bool,
) {
    let c = &e.completion;
    let q = if quote { "\"" } else { "" };
    let text = match f {
        AccessLogField::Listener => &*c.listener,
        AccessLogField::Route => &*c.route,
        AccessLogField::Method => c.method.as_str(),
        AccessLogField::Path => c.uri.path(),
        AccessLogField::Upstream => &*c.upstream,
        AccessLogField::Outcome => e.outcome,
        AccessLogField::Time => {
            let _ = write!(out, "{q}{}{q}", humantime::format_rfc3339_millis(e.time));
            return;
        }
        AccessLogField::Client => {
            let _ = write!(out, "{q}{}{q}", c.client);
            return;
        }
        AccessLogField::Status => {
            let _ = write!(out, "{}", c.status.as_u16());
            return;
        }
        AccessLogField::DurationMs => {
            let _ = write!(out, "{:.3}", e.elapsed.as_secs_f64() * 1000.0);
            return;
        }
        AccessLogField::Bytes => {
            let _ = write!(out, "{}", e.bytes);
            return;
        }
    };
    string(out, text);
}

/// A JSON string literal.
fn json_str(out: &mut String, s: &str) {
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A text value: as is when it has no space, quote or control character, else quoted like
/// JSON.
fn text_str(out: &mut String, s: &str) {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b > b' ' && b != b'"' && b != b'\\' && b != 0x7f)
    {
        out.push_str(s);
    } else {
        json_str(out, s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped() {
        let mut s = String::new();
        json_str(&mut s, "a\"b\\c\nd\u{1}");
        assert_eq!(s, r#""a\"b\\c\nd\u0001""#);
        let mut t = String::new();
        text_str(&mut t, "/plain/path");
        text_str(&mut t, " x");
        assert_eq!(t, r#"/plain/path" x""#);
    }
}
