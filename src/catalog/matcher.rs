//! Compiled catalogue lookups used by the inspectors.
//!
//! Domains are matched on whole-label suffixes by walking the name's parent domains through a
//! seeded hash map (no regex, no allocation: the name is lower-cased into a stack buffer). Ports
//! are a direct 65536-entry table per protocol. The rest are short lists scanned only while a flow
//! is being inspected.

use super::{CertField, Confidence, IndicatorKind, LoadError, Proto, StrMatch, Tool, ToolId};
use crate::inspect::fingerprint::Fingerprint;
use ahash::RandomState;
use hashbrown::HashMap;

/// A catalogue match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hit {
    /// The tool.
    pub tool: ToolId,
    /// Index of the indicator within the tool.
    pub indicator: u16,
    /// Its confidence.
    pub confidence: Confidence,
}

struct StrPat {
    value: Box<[u8]>,
    how: StrMatch,
    hit: Hit,
}

struct CertPat {
    value: Box<[u8]>,
    field: CertField,
    hit: Hit,
}

const NO_PORT: u32 = u32::MAX;

/// The compiled catalogue.
pub struct Matcher {
    suffix: HashMap<Box<[u8]>, Hit, RandomState>,
    exact: HashMap<Box<[u8]>, Hit, RandomState>,
    port_hits: Vec<Hit>,
    tcp_ports: Box<[u32]>,
    udp_ports: Box<[u32]>,
    ips: Vec<(ipnet::IpNet, Hit)>,
    alpn: Vec<StrPat>,
    user_agents: Vec<StrPat>,
    uris: Vec<StrPat>,
    certs: Vec<CertPat>,
    fingerprints: Vec<Option<Hit>>,
    ja4: HashMap<Box<[u8]>, Hit, RandomState>,
}

impl std::fmt::Debug for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Matcher")
            .field("domains", &(self.suffix.len() + self.exact.len()))
            .field("ports", &self.port_hits.len())
            .finish()
    }
}

fn tool_file(t: &Tool) -> String {
    t.file.clone()
}

/// Keeps the stronger of two hits for one key; a conflict between two tools needs a note.
fn claim(tools: &[Tool], slot: &mut Hit, new: Hit, what: &str) -> Result<(), LoadError> {
    if slot.tool == new.tool {
        if new.confidence > slot.confidence {
            *slot = new;
        }
        return Ok(());
    }
    let a = &tools[slot.tool as usize];
    let b = &tools[new.tool as usize];
    let noted = a.indicators[slot.indicator as usize].note.is_some()
        || b.indicators[new.indicator as usize].note.is_some();
    if !noted {
        return Err(LoadError {
            file: tool_file(b),
            line: None,
            msg: format!(
                "{what} is claimed by both '{}' and '{}' without a note explaining the overlap",
                a.id, b.id
            ),
        });
    }
    if new.confidence > slot.confidence {
        *slot = new;
    }
    Ok(())
}

impl Matcher {
    /// Compiles the tools' indicators.
    pub fn build(tools: &[Tool]) -> Result<Matcher, LoadError> {
        let mut m = Matcher {
            suffix: HashMap::with_hasher(RandomState::new()),
            exact: HashMap::with_hasher(RandomState::new()),
            port_hits: Vec::new(),
            tcp_ports: vec![NO_PORT; 65536].into_boxed_slice(),
            udp_ports: vec![NO_PORT; 65536].into_boxed_slice(),
            ips: Vec::new(),
            alpn: Vec::new(),
            user_agents: Vec::new(),
            uris: Vec::new(),
            certs: Vec::new(),
            fingerprints: vec![None; Fingerprint::ALL.len()],
            ja4: HashMap::with_hasher(RandomState::new()),
        };
        for (ti, tool) in tools.iter().enumerate() {
            for (ii, ind) in tool.indicators.iter().enumerate() {
                let hit = Hit {
                    tool: ti as ToolId,
                    indicator: ii as u16,
                    confidence: ind.confidence,
                };
                match &ind.kind {
                    IndicatorKind::Domain { name, exact } => {
                        let map = if *exact { &mut m.exact } else { &mut m.suffix };
                        let key: Box<[u8]> = name.as_bytes().into();
                        match map.get_mut(&key) {
                            Some(slot) => claim(tools, slot, hit, &format!("domain '{name}'"))?,
                            None => {
                                map.insert(key, hit);
                            }
                        }
                    }
                    IndicatorKind::Port { proto, lo, hi } => {
                        let idx = m.port_hits.len() as u32;
                        m.port_hits.push(hit);
                        for p in *lo..=*hi {
                            let table = match proto {
                                Proto::Tcp => &mut m.tcp_ports,
                                Proto::Udp => &mut m.udp_ports,
                            };
                            let cur = table[p as usize];
                            if cur == NO_PORT {
                                table[p as usize] = idx;
                            } else {
                                let mut slot = m.port_hits[cur as usize];
                                claim(
                                    tools,
                                    &mut slot,
                                    hit,
                                    &format!("port {p}/{}", proto.as_str()),
                                )?;
                                if slot != m.port_hits[cur as usize] {
                                    table[p as usize] = idx;
                                }
                            }
                        }
                    }
                    IndicatorKind::Ip(net) => m.ips.push((*net, hit)),
                    IndicatorKind::TlsAlpn { value, how } => m.alpn.push(StrPat {
                        value: value.as_bytes().into(),
                        how: *how,
                        hit,
                    }),
                    IndicatorKind::HttpUserAgent { value, how } => m.user_agents.push(StrPat {
                        value: value.as_bytes().into(),
                        how: *how,
                        hit,
                    }),
                    IndicatorKind::HttpUri { value, how } => m.uris.push(StrPat {
                        value: value.as_bytes().into(),
                        how: *how,
                        hit,
                    }),
                    IndicatorKind::TlsCert { value, field } => m.certs.push(CertPat {
                        value: value.as_bytes().into(),
                        field: *field,
                        hit,
                    }),
                    IndicatorKind::Fingerprint(f) => {
                        let slot = &mut m.fingerprints[*f as usize];
                        match slot {
                            Some(s) => {
                                claim(tools, s, hit, &format!("fingerprint '{}'", f.name()))?
                            }
                            None => *slot = Some(hit),
                        }
                    }
                    IndicatorKind::Ja4(v) => {
                        m.ja4.insert(v.as_bytes().into(), hit);
                    }
                }
            }
        }
        // A suffix claimed by one tool that covers another tool's domain needs a note.
        for (name, hit) in m.suffix.iter().chain(m.exact.iter()) {
            let mut rest: &[u8] = name;
            while let Some(dot) = rest.iter().position(|&b| b == b'.') {
                rest = &rest[dot + 1..];
                if let Some(parent) = m.suffix.get(rest) {
                    let mut slot = *parent;
                    claim(
                        tools,
                        &mut slot,
                        *hit,
                        &format!(
                            "domain '{}' (under '{}')",
                            String::from_utf8_lossy(name),
                            String::from_utf8_lossy(rest)
                        ),
                    )?;
                }
            }
        }
        Ok(m)
    }

    /// Matches a host name: the most specific catalogued suffix (or exact host) wins. The name is
    /// compared case-insensitively with a trailing dot ignored; punycode is compared as is.
    #[inline]
    pub fn domain(&self, name: &[u8]) -> Option<Hit> {
        let mut buf = [0u8; 256];
        let mut n = name;
        if let Some(stripped) = n.strip_suffix(b".") {
            n = stripped;
        }
        if n.is_empty() || n.len() > buf.len() {
            return None;
        }
        let lower = &mut buf[..n.len()];
        for (d, s) in lower.iter_mut().zip(n) {
            *d = s.to_ascii_lowercase();
        }
        let lower: &[u8] = lower;
        if let Some(h) = self.exact.get(lower) {
            return Some(*h);
        }
        let mut rest = lower;
        loop {
            if let Some(h) = self.suffix.get(rest) {
                return Some(*h);
            }
            match rest.iter().position(|&b| b == b'.') {
                Some(dot) => rest = &rest[dot + 1..],
                None => return None,
            }
        }
    }

    /// Matches a port.
    #[inline]
    pub fn port(&self, proto: Proto, port: u16) -> Option<Hit> {
        let t = match proto {
            Proto::Tcp => &self.tcp_ports,
            Proto::Udp => &self.udp_ports,
        };
        let i = t[port as usize];
        (i != NO_PORT).then(|| self.port_hits[i as usize])
    }

    /// Matches an address against the catalogue's CIDR blocks.
    pub fn ip(&self, addr: &std::net::IpAddr) -> Option<Hit> {
        self.ips
            .iter()
            .filter(|(n, _)| n.contains(addr))
            .max_by_key(|(n, h)| (n.prefix_len(), h.confidence))
            .map(|(_, h)| *h)
    }

    /// Whether the catalogue has any CIDR indicators (lets new flows skip the scan).
    pub fn has_ips(&self) -> bool {
        !self.ips.is_empty()
    }

    /// Matches one ALPN protocol id.
    pub fn alpn(&self, id: &[u8]) -> Option<Hit> {
        best(&self.alpn, id)
    }

    /// Matches a User-Agent.
    pub fn user_agent(&self, ua: &[u8]) -> Option<Hit> {
        best(&self.user_agents, ua)
    }

    /// Matches a request URI.
    pub fn uri(&self, uri: &[u8]) -> Option<Hit> {
        best(&self.uris, uri)
    }

    /// Matches certificate names (raw DER), using `contains(der, needle)`.
    pub fn cert(
        &self,
        subject: Option<&[u8]>,
        issuer: Option<&[u8]>,
        contains: impl Fn(&[u8], &[u8]) -> bool,
    ) -> Option<Hit> {
        self.certs
            .iter()
            .filter(|p| {
                let s = matches!(p.field, CertField::Subject | CertField::Any)
                    && subject.is_some_and(|d| contains(d, &p.value));
                let i = matches!(p.field, CertField::Issuer | CertField::Any)
                    && issuer.is_some_and(|d| contains(d, &p.value));
                s || i
            })
            .map(|p| p.hit)
            .max_by_key(|h| h.confidence)
    }

    /// The tool a fingerprint belongs to.
    #[inline]
    pub fn fingerprint(&self, f: Fingerprint) -> Option<Hit> {
        self.fingerprints.get(f as usize).copied().flatten()
    }

    /// Whether the catalogue has JA4 indicators at all.
    pub fn has_ja4(&self) -> bool {
        !self.ja4.is_empty()
    }

    /// Matches a JA4 string.
    pub fn ja4(&self, s: &[u8]) -> Option<Hit> {
        self.ja4.get(s).copied()
    }
}

fn best(pats: &[StrPat], s: &[u8]) -> Option<Hit> {
    pats.iter()
        .filter(|p| match p.how {
            StrMatch::Exact => s == &*p.value,
            StrMatch::Prefix => s.starts_with(&p.value),
            StrMatch::Contains | StrMatch::Suffix => contains(s, &p.value),
        })
        .map(|p| p.hit)
        .max_by_key(|h| h.confidence)
}

/// Byte substring search.
#[inline]
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}
