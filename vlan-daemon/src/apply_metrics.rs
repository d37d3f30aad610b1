//! The daemon's applies as Prometheus metrics: whether the last one succeeded, when it finished,
//! and how many ran per outcome, so an alert can fire on a daemon that keeps failing.
use crate::control::ApplyReport;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use std::sync::Mutex;

#[derive(Debug, Default)]
struct Tally {
    last: Option<(bool, u64)>,
    ok: u64,
    error: u64,
}

/// One daemon per process: its applies, as the metrics server reads them at each scrape.
static TALLY: Mutex<Tally> = Mutex::new(Tally { last: None, ok: 0, error: 0 });

/// Counts one apply (the daemon calls this with every report it keeps).
pub fn record(report: &ApplyReport) {
    let mut t = TALLY.lock().unwrap_or_else(|e| e.into_inner());
    t.last = Some((report.ok, report.finished_at));
    if report.ok { t.ok += 1 } else { t.error += 1 }
}

#[derive(Debug)]
pub struct ApplyCollector;

impl Collector for ApplyCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let t = TALLY.lock().unwrap_or_else(|e| e.into_inner());
        let mut applies = enc.encode_descriptor(
            "vland_applies",
            "Applies the daemon ran (start, SIGHUP, reload, config edits, link events, retries), by outcome.",
            None,
            MetricType::Counter,
        )?;
        for (outcome, n) in [("ok", t.ok), ("error", t.error)] {
            ConstCounter::new(n).encode(applies.encode_family(&[("outcome", outcome)])?)?;
        }
        // Absent until the first apply has finished: no value is better than a made-up one.
        if let Some((ok, at)) = t.last {
            let success = enc.encode_descriptor(
                "vland_last_apply_success",
                "1 if the daemon's last apply made the kernel match the config, 0 if it failed.",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(i64::from(ok)).encode(success)?;
            let time = enc.encode_descriptor(
                "vland_last_apply_timestamp_seconds",
                "When the daemon's last apply finished, in seconds since the Unix epoch.",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(at as i64).encode(time)?;
        }
        Ok(())
    }
}
