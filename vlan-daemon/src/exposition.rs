//! The classic Prometheus text format (0.0.4) for clients that do not ask for OpenMetrics.
//! prometheus-client writes OpenMetrics only, where a counter family is named without `_total`
//! and the text ends with `# EOF`; Prometheus itself asks for OpenMetrics, but `curl`, promtool
//! and older scrapers read the classic format, in which HELP and TYPE name the `_total` series.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
pub const TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Whether an Accept header asks for OpenMetrics.
pub fn wants_openmetrics(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| a.contains("application/openmetrics-text"))
}

/// Rewrites OpenMetrics text as the classic format (for the metric types vland serves: counters
/// and gauges without units or exemplars).
pub fn to_text_format(openmetrics: &str) -> String {
    let counters: Vec<&str> = openmetrics.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter")).collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters.contains(&name).then(|| format!("{prefix}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_named_with_total_and_eof_goes() {
        let om = "# HELP vland_applies Applies.\n# TYPE vland_applies counter\nvland_applies_total{outcome=\"ok\"} 1\n\
# HELP vland_last_apply_success Ok.\n# TYPE vland_last_apply_success gauge\nvland_last_apply_success 1\n# EOF\n";
        let text = "# HELP vland_applies_total Applies.\n# TYPE vland_applies_total counter\nvland_applies_total{outcome=\"ok\"} 1\n\
# HELP vland_last_apply_success Ok.\n# TYPE vland_last_apply_success gauge\nvland_last_apply_success 1\n";
        assert_eq!(to_text_format(om), text);
        assert!(wants_openmetrics(Some("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5")));
        assert!(!wants_openmetrics(Some("*/*")) && !wants_openmetrics(None));
    }
}
