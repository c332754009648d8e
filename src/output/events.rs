//! EVE-style JSON events, one object per line, as Suricata writes them, so that existing SIEM
//! pipelines (Filebeat's Suricata module, Splunk, Elastic) read them unchanged. Attacker-controlled
//! strings are escaped byte by byte: printable ASCII passes, everything else becomes `\u00XX`, so
//! every line is valid JSON whatever the packet held.

use crate::catalog::Catalog;
use crate::engine::Event;
use crate::inspect::AppProto;
use crate::policy::{Action, Policy};
use std::io::Write;

/// Appends `b` to `out` as a JSON string body.
pub fn escape_into(out: &mut Vec<u8>, b: &[u8]) {
    for &c in b {
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x20..=0x7e => out.push(c),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(c >> 4) as usize]);
                out.push(HEX[(c & 15) as usize]);
            }
        }
    }
}

fn kv_str(out: &mut Vec<u8>, k: &str, v: &[u8]) {
    out.push(b'"');
    out.extend_from_slice(k.as_bytes());
    out.extend_from_slice(b"\":\"");
    escape_into(out, v);
    out.push(b'"');
}

/// Civil date from days since 1970-01-01 (proleptic Gregorian).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Formats a timestamp as Suricata does: `2024-05-01T12:00:00.123456+0000`.
pub fn timestamp(ts_ns: u64) -> String {
    let secs = (ts_ns / 1_000_000_000) as i64;
    let micros = (ts_ns % 1_000_000_000) / 1000;
    let (y, m, d) = civil(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}+0000",
        s / 3600,
        (s / 60) % 60,
        s % 60
    )
}

/// The transport name Suricata uses.
pub fn proto_name(p: u8) -> &'static str {
    match p {
        6 => "TCP",
        17 => "UDP",
        _ => "IP",
    }
}

/// Renders one event as a JSON line (with the trailing newline) into `out`.
pub fn render(out: &mut Vec<u8>, ev: &Event, catalog: &Catalog, policy: &Policy) {
    let tool = catalog.tool(ev.tool);
    out.extend_from_slice(b"{\"timestamp\":\"");
    out.extend_from_slice(timestamp(ev.ts_ns).as_bytes());
    let _ = write!(
        out,
        "\",\"flow_id\":{},\"event_type\":\"alert\",",
        ev.flow_id
    );
    let _ = write!(
        out,
        "\"src_ip\":\"{}\",\"src_port\":{},\"dest_ip\":\"{}\",\"dest_port\":{},\"proto\":\"{}\",",
        crate::decode::to_ip(&ev.client.0),
        ev.client.1,
        crate::decode::to_ip(&ev.server.0),
        ev.server.1,
        proto_name(ev.proto)
    );
    let _ = write!(
        out,
        "\"direction\":\"{}\",\"app_proto\":\"{}\",",
        ev.direction.as_str(),
        ev.app.as_str()
    );
    let action = if ev.action == Action::Block {
        "blocked"
    } else {
        "allowed"
    };
    let severity = match ev.confidence {
        crate::catalog::Confidence::High => 1,
        crate::catalog::Confidence::Medium => 2,
        crate::catalog::Confidence::Low => 3,
    };
    out.extend_from_slice(b"\"alert\":{");
    kv_str(out, "action", action.as_bytes());
    out.push(b',');
    let sig = format!("rmmguard {} ({})", tool.name, ev.method.as_str());
    kv_str(out, "signature", sig.as_bytes());
    let _ = write!(
        out,
        ",\"category\":\"Remote Access Tool\",\"severity\":{severity}}},"
    );
    match ev.app {
        AppProto::Tls | AppProto::Quic if !ev.host.is_empty() || !ev.ja4.is_empty() => {
            out.extend_from_slice(if ev.app == AppProto::Tls {
                b"\"tls\":{"
            } else {
                b"\"quic\":{"
            });
            let mut first = true;
            if !ev.host.is_empty() {
                kv_str(out, "sni", ev.host.as_bytes());
                first = false;
            }
            if !ev.ja4.is_empty() {
                if !first {
                    out.push(b',');
                }
                kv_str(out, "ja4", ev.ja4.as_bytes());
            }
            out.extend_from_slice(b"},");
        }
        AppProto::Dns if !ev.host.is_empty() => {
            out.extend_from_slice(b"\"dns\":{");
            kv_str(out, "rrname", ev.host.as_bytes());
            out.extend_from_slice(b"},");
        }
        AppProto::Http if !ev.host.is_empty() => {
            out.extend_from_slice(b"\"http\":{");
            kv_str(out, "hostname", ev.host.as_bytes());
            out.extend_from_slice(b"},");
        }
        _ => {}
    }
    out.extend_from_slice(b"\"rmm\":{");
    kv_str(out, "tool", tool.id.as_bytes());
    out.push(b',');
    kv_str(out, "tool_name", tool.name.as_bytes());
    out.push(b',');
    kv_str(out, "category", tool.category.as_str().as_bytes());
    out.push(b',');
    kv_str(out, "method", ev.method.as_str().as_bytes());
    out.push(b',');
    kv_str(out, "evidence", ev.evidence.as_bytes());
    out.push(b',');
    kv_str(out, "confidence", ev.confidence.as_str().as_bytes());
    out.push(b',');
    let rule = ev
        .rule
        .and_then(|r| policy.allow.get(r as usize))
        .map_or("default", |r| r.name.as_str());
    kv_str(out, "policy", rule.as_bytes());
    if let Some(ind) = tool.indicators.get(ev.indicator as usize) {
        out.push(b',');
        kv_str(out, "indicator", ind.kind.describe().as_bytes());
        if let Some(src) = ind.sources.first() {
            out.push(b',');
            kv_str(out, "source", src.as_bytes());
        }
    }
    out.extend_from_slice(b"}}\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(timestamp(0), "1970-01-01T00:00:00.000000+0000");
        assert_eq!(
            timestamp(1_714_564_800_123_456_000),
            "2024-05-01T12:00:00.123456+0000"
        );
    }

    #[test]
    fn escaping_is_json_safe() {
        let mut v = Vec::new();
        escape_into(&mut v, b"a\"b\\c\n\xff");
        assert_eq!(v, b"a\\\"b\\\\c\\u000a\\u00ff");
    }
}
