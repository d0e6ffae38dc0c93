//! Prometheus metrics at `/metrics`: open streams, events sent, poll outcomes, bytes by
//! transport, publish-to-send delay, bus backlog and ingest state.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use realtime::{Bus, BusEvent};

use crate::app::AppState;
use crate::db::now_ms;
use crate::error::{AppError, AppResult};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PollLabels {
    pub route: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransportLabel {
    pub transport: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    pub state: &'static str,
}

/// The app's metrics. Cloning shares them.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    pub open_streams: Family<RouteLabel, Gauge>,
    pub events_sent: Family<RouteLabel, Counter>,
    pub poll_answers: Family<PollLabels, Counter>,
    pub bytes_sent: Family<TransportLabel, Counter>,
    pub delivery_delay: Histogram,
    /// Filled in at scrape time from the bus and the ingester.
    bus_backlog: Gauge,
    ingest_messages: Family<StateLabel, Gauge>,
    ingest_reconnects: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let open_streams = Family::<RouteLabel, Gauge>::default();
        let events_sent = Family::<RouteLabel, Counter>::default();
        let poll_answers = Family::<PollLabels, Counter>::default();
        let bytes_sent = Family::<TransportLabel, Counter>::default();
        // 0.5 ms to about 8 s: SSE lands at the low end, polling spreads up to its
        // interval.
        let delivery_delay = Histogram::new(exponential_buckets(0.0005, 2.0, 15));
        let bus_backlog = Gauge::default();
        let ingest_messages = Family::<StateLabel, Gauge>::default();
        let ingest_reconnects = Gauge::default();

        // Both transports' byte counts from the start, so a dashboard comparing them
        // has two series (at zero) before the first client.
        for transport in ["poll", "sse"] {
            bytes_sent
                .get_or_create(&TransportLabel { transport })
                .inc_by(0);
        }

        let mut registry = Registry::with_prefix("switchyard");
        registry.register("open_streams", "SSE streams open now", open_streams.clone());
        registry.register(
            "sse_events_sent",
            "Events sent on SSE streams",
            events_sent.clone(),
        );
        registry.register(
            "poll_answers",
            "Poll answers by outcome",
            poll_answers.clone(),
        );
        registry.register("bytes_sent", "Bytes of live data sent", bytes_sent.clone());
        registry.register(
            "delivery_delay_seconds",
            "From publishing an item to sending it to a client",
            delivery_delay.clone(),
        );
        registry.register(
            "bus_backlog",
            "Events waiting for the bus backend",
            bus_backlog.clone(),
        );
        registry.register(
            "ingest_messages",
            "Mastodon stream messages received and stored",
            ingest_messages.clone(),
        );
        registry.register(
            "ingest_reconnects",
            "Reconnections to the Mastodon stream",
            ingest_reconnects.clone(),
        );

        Metrics {
            registry: Arc::new(registry),
            open_streams,
            events_sent,
            poll_answers,
            bytes_sent,
            delivery_delay,
            bus_backlog,
            ingest_messages,
            ingest_reconnects,
        }
    }
}

impl Metrics {
    /// Counts an event sent on an SSE stream of `route`.
    pub fn sent(&self, route: &'static str, event: &BusEvent) {
        self.events_sent.get_or_create(&RouteLabel { route }).inc();
        let bytes = event.data.len() + event.name.len() + 32;
        self.bytes_sent
            .get_or_create(&TransportLabel { transport: "sse" })
            .inc_by(bytes as u64);
        self.observe_delay(event.published_ms);
    }

    /// Counts a poll answer of `route` with its outcome and body size.
    pub fn polled(&self, route: &'static str, outcome: &'static str, bytes: usize) {
        self.poll_answers
            .get_or_create(&PollLabels { route, outcome })
            .inc();
        self.bytes_sent
            .get_or_create(&TransportLabel { transport: "poll" })
            .inc_by(bytes as u64);
    }

    /// Records the delay of an item published at `published_ms` and sent now.
    pub fn observe_delay(&self, published_ms: u64) {
        let delay_ms = (now_ms() as u64).saturating_sub(published_ms);
        self.delivery_delay.observe(delay_ms as f64 / 1000.0);
    }
}

pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

async fn metrics(State(state): State<AppState>) -> AppResult<impl IntoResponse> {
    let metrics = &state.metrics;
    let backlog = [&state.posts_bus, &state.statuses_bus]
        .iter()
        .map(|bus| match bus.as_ref() {
            Bus::Memory(_) => 0,
            Bus::Redis(redis) => redis.queued(),
        })
        .sum::<usize>();
    metrics.bus_backlog.set(backlog as i64);
    let ingest = &state.ingest;
    metrics
        .ingest_messages
        .get_or_create(&StateLabel { state: "received" })
        .set(ingest.received.load(Ordering::Relaxed) as i64);
    metrics
        .ingest_messages
        .get_or_create(&StateLabel { state: "stored" })
        .set(ingest.stored.load(Ordering::Relaxed) as i64);
    metrics
        .ingest_reconnects
        .set(ingest.reconnects.load(Ordering::Relaxed) as i64);

    let mut body = String::new();
    prometheus_client::encoding::text::encode(&mut body, &metrics.registry)
        .map_err(|e| AppError::Internal(anyhow::anyhow!("encoding metrics: {e}")))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    ))
}
