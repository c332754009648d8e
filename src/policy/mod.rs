//! The policy: which catalogued tools are blocked, which are only alerted on, and which uses are
//! authorised (allow rules with tool, host, source and direction conditions).
//!
//! Every mistake in a policy file is a one-line error naming the file and line: an unknown key, an
//! unknown tool id, a bad CIDR, a bad action or direction.

use crate::catalog::{line_of, toml_error, Catalog, Category, LoadError, ToolId};
use ipnet::IpNet;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::IpAddr;
use toml::Spanned;

/// What to do with a flow of a catalogued tool.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Drop it (and reject it, when the policy says so).
    Block,
    /// Let it pass, with an event.
    Alert,
    /// Let it pass, with an event naming the allow rule.
    Allow,
}

impl Action {
    /// Policy spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Block => "block",
            Action::Alert => "alert",
            Action::Allow => "allow",
        }
    }
    fn parse(s: &str) -> Option<Action> {
        match s {
            "block" => Some(Action::Block),
            "alert" => Some(Action::Alert),
            "allow" => Some(Action::Allow),
            _ => None,
        }
    }
}

/// Direction of a flow relative to the home networks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Home client to an outside server.
    Outbound,
    /// Outside client to a home server.
    Inbound,
    /// Both ends at home.
    Internal,
    /// Neither end at home.
    External,
}

impl Direction {
    /// All directions.
    pub const ALL: [Direction; 4] = [
        Direction::Outbound,
        Direction::Inbound,
        Direction::Internal,
        Direction::External,
    ];
    /// Event/policy spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Outbound => "outbound",
            Direction::Inbound => "inbound",
            Direction::Internal => "internal",
            Direction::External => "external",
        }
    }
}

/// How a blocked flow is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockMode {
    /// TCP reset to the client / ICMP port unreachable for UDP.
    Reject,
    /// Silent drop.
    Drop,
}

/// A compiled allow rule.
#[derive(Clone, Debug)]
pub struct AllowRule {
    /// Its name (reported in events as `rmm.policy`).
    pub name: String,
    /// Tools it applies to (empty = any, subject to `categories`).
    pub tools: Vec<ToolId>,
    /// Categories it applies to (empty = any).
    pub categories: Vec<Category>,
    /// Host names (whole-label suffixes, lower case); empty = any.
    pub hosts: Vec<String>,
    /// Client address blocks; empty = any.
    pub sources: Vec<IpNet>,
    /// Server address blocks; empty = any.
    pub destinations: Vec<IpNet>,
    /// Direction; None = any.
    pub direction: Option<Direction>,
}

/// A compiled policy.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Where it came from ("built-in" for the default).
    pub origin: String,
    /// Version: a hash of the text.
    pub version: String,
    /// Home networks.
    pub home_networks: Vec<IpNet>,
    /// Action for catalogued tools without a more specific setting.
    pub default_action: Action,
    /// Per-category actions.
    pub categories: BTreeMap<Category, Action>,
    /// Per-tool actions.
    pub tools: BTreeMap<ToolId, Action>,
    /// Authorised uses, first match wins.
    pub allow: Vec<AllowRule>,
    /// Reject or drop.
    pub block_mode: BlockMode,
    /// Pass traffic when the engine is down or its queue is full.
    pub fail_open: bool,
    /// Action for DNS queries of catalogued names (None: the tool's own action).
    pub dns_query_action: Option<Action>,
    /// Whether packets that cannot be decoded are dropped (default: passed).
    pub drop_malformed: bool,
    /// Upper bound on how long an address learned from DNS stays attributed, in seconds.
    pub learned_ip_max_ttl: u32,
    /// Detections below this confidence are alerted on, not blocked (a vendor's corporate web
    /// site, a port that other software also uses).
    pub min_block_confidence: crate::catalog::Confidence,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default)]
    home_networks: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    default_action: Option<Spanned<String>>,
    #[serde(default)]
    categories: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    tools: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    allow: Vec<Spanned<RawAllow>>,
    #[serde(default)]
    block_mode: Option<Spanned<String>>,
    #[serde(default)]
    fail_open: Option<bool>,
    #[serde(default)]
    dns_query_action: Option<Spanned<String>>,
    #[serde(default)]
    malformed: Option<Spanned<String>>,
    #[serde(default)]
    learned_ip_max_ttl: Option<u32>,
    #[serde(default)]
    min_block_confidence: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAllow {
    name: String,
    #[serde(default)]
    tool: Option<Spanned<String>>,
    #[serde(default)]
    tools: Vec<Spanned<String>>,
    #[serde(default)]
    category: Option<Spanned<String>>,
    #[serde(default)]
    hosts: Vec<Spanned<String>>,
    #[serde(default)]
    sources: Vec<Spanned<String>>,
    #[serde(default)]
    destinations: Vec<Spanned<String>>,
    #[serde(default)]
    direction: Option<Spanned<String>>,
}

/// The home networks used when a policy names none: RFC 1918, CGNAT, ULA, loopback, link-local.
pub const DEFAULT_HOME: &[&str] = &[
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "fc00::/7",
    "fe80::/10",
    "::1/128",
];

fn parse_net(s: &str) -> Option<IpNet> {
    s.trim()
        .parse::<IpNet>()
        .or_else(|_| s.trim().parse::<IpAddr>().map(IpNet::from))
        .ok()
        .map(|n| n.trunc())
}

impl Policy {
    /// The built-in policy: block every catalogued tool in both directions.
    pub fn builtin(catalog: &Catalog) -> Policy {
        Policy::parse("built-in", "", catalog).expect("the empty policy is valid")
    }

    /// Reads and compiles a policy file.
    pub fn load(path: &std::path::Path, catalog: &Catalog) -> Result<Policy, LoadError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| LoadError {
            file: file.clone(),
            line: None,
            msg: format!("cannot read policy: {e}"),
        })?;
        Policy::parse(&file, &text, catalog)
    }

    /// Compiles policy text.
    pub fn parse(file: &str, text: &str, catalog: &Catalog) -> Result<Policy, LoadError> {
        let raw: RawPolicy = toml::from_str(text).map_err(|e| toml_error(file, text, e))?;
        let err = |off: usize, msg: String| LoadError {
            file: file.to_string(),
            line: Some(line_of(text, off)),
            msg,
        };
        let action = |s: &Spanned<String>| {
            Action::parse(s.get_ref()).ok_or_else(|| {
                err(
                    s.span().start,
                    format!("unknown action '{}' (block, alert, allow)", s.get_ref()),
                )
            })
        };
        let net = |s: &Spanned<String>| {
            parse_net(s.get_ref())
                .ok_or_else(|| err(s.span().start, format!("bad CIDR '{}'", s.get_ref())))
        };
        let tool = |s: &Spanned<String>| {
            catalog.tool_id(s.get_ref()).ok_or_else(|| {
                err(
                    s.span().start,
                    format!(
                        "unknown tool '{}' (see `rmmguard catalog list`)",
                        s.get_ref()
                    ),
                )
            })
        };
        let category = |s: &str, off: usize| {
            Category::parse(s).ok_or_else(|| {
                err(
                    off,
                    format!("unknown category '{s}' (rmm, remote-desktop, tunnel)"),
                )
            })
        };
        let home_networks = match &raw.home_networks {
            Some(v) => v.iter().map(net).collect::<Result<Vec<_>, _>>()?,
            None => DEFAULT_HOME.iter().filter_map(|s| parse_net(s)).collect(),
        };
        let default_action = match &raw.default_action {
            Some(a) => action(a)?,
            None => Action::Block,
        };
        let mut categories = BTreeMap::new();
        for (k, v) in &raw.categories {
            categories.insert(category(k, v.span().start)?, action(v)?);
        }
        let mut tools = BTreeMap::new();
        for (k, v) in &raw.tools {
            let id = catalog.tool_id(k).ok_or_else(|| {
                err(
                    v.span().start,
                    format!("unknown tool '{k}' (see `rmmguard catalog list`)"),
                )
            })?;
            tools.insert(id, action(v)?);
        }
        let mut allow = Vec::new();
        for r in &raw.allow {
            let ra = r.get_ref();
            let mut tool_ids = Vec::new();
            if let Some(t) = &ra.tool {
                tool_ids.push(tool(t)?);
            }
            for t in &ra.tools {
                tool_ids.push(tool(t)?);
            }
            let mut cats = Vec::new();
            if let Some(c) = &ra.category {
                cats.push(category(c.get_ref(), c.span().start)?);
            }
            let mut hosts = Vec::new();
            for h in &ra.hosts {
                hosts.push(
                    crate::catalog::normalize_domain(h.get_ref()).ok_or_else(|| {
                        err(h.span().start, format!("bad host name '{}'", h.get_ref()))
                    })?,
                );
            }
            let direction = match &ra.direction {
                None => None,
                Some(d) => match d.get_ref().as_str() {
                    "any" => None,
                    "outbound" => Some(Direction::Outbound),
                    "inbound" => Some(Direction::Inbound),
                    "internal" => Some(Direction::Internal),
                    "external" => Some(Direction::External),
                    o => {
                        return Err(err(
                            d.span().start,
                            format!(
                            "unknown direction '{o}' (outbound, inbound, internal, external, any)"
                        ),
                        ))
                    }
                },
            };
            if tool_ids.is_empty() && cats.is_empty() {
                return Err(err(
                    r.span().start,
                    format!("allow rule '{}' names no tool or category", ra.name),
                ));
            }
            allow.push(AllowRule {
                name: ra.name.clone(),
                tools: tool_ids,
                categories: cats,
                hosts,
                sources: ra.sources.iter().map(net).collect::<Result<_, _>>()?,
                destinations: ra.destinations.iter().map(net).collect::<Result<_, _>>()?,
                direction,
            });
        }
        let block_mode = match &raw.block_mode {
            None => BlockMode::Reject,
            Some(s) => match s.get_ref().as_str() {
                "reject" => BlockMode::Reject,
                "drop" => BlockMode::Drop,
                o => {
                    return Err(err(
                        s.span().start,
                        format!("unknown block_mode '{o}' (reject, drop)"),
                    ))
                }
            },
        };
        let dns_query_action = match &raw.dns_query_action {
            None => Some(Action::Alert),
            Some(s) if s.get_ref() == "tool" => None,
            Some(s) => Some(action(s)?),
        };
        let drop_malformed = match &raw.malformed {
            None => false,
            Some(s) => match s.get_ref().as_str() {
                "pass" => false,
                "drop" => true,
                o => {
                    return Err(err(
                        s.span().start,
                        format!("unknown malformed action '{o}' (pass, drop)"),
                    ))
                }
            },
        };
        let min_block_confidence = match &raw.min_block_confidence {
            None => crate::catalog::Confidence::Medium,
            Some(s) => match s.get_ref().as_str() {
                "low" => crate::catalog::Confidence::Low,
                "medium" => crate::catalog::Confidence::Medium,
                "high" => crate::catalog::Confidence::High,
                o => {
                    return Err(err(
                        s.span().start,
                        format!("unknown min_block_confidence '{o}' (low, medium, high)"),
                    ))
                }
            },
        };
        let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
        Ok(Policy {
            origin: file.to_string(),
            version: digest.as_ref()[..6]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
            home_networks,
            default_action,
            categories,
            tools,
            allow,
            block_mode,
            fail_open: raw.fail_open.unwrap_or(true),
            dns_query_action,
            drop_malformed,
            learned_ip_max_ttl: raw.learned_ip_max_ttl.unwrap_or(3600),
            min_block_confidence,
        })
    }

    /// Whether an address is in the home networks.
    #[inline]
    pub fn is_home(&self, a: &IpAddr) -> bool {
        self.home_networks.iter().any(|n| n.contains(a))
    }

    /// The direction of a flow from `client` to `server`.
    pub fn direction(&self, client: &IpAddr, server: &IpAddr) -> Direction {
        match (self.is_home(client), self.is_home(server)) {
            (true, false) => Direction::Outbound,
            (false, true) => Direction::Inbound,
            (true, true) => Direction::Internal,
            (false, false) => Direction::External,
        }
    }

    /// The action for a flow of `tool`, and the name of the allow rule that decided it
    /// (None = the default/category/tool setting).
    pub fn decide(
        &self,
        catalog: &Catalog,
        tool: ToolId,
        dir: Direction,
        client: &IpAddr,
        server: &IpAddr,
        host: Option<&[u8]>,
    ) -> (Action, Option<usize>) {
        let category = catalog.tool(tool).category;
        for (i, r) in self.allow.iter().enumerate() {
            let tool_ok = (r.tools.is_empty() || r.tools.contains(&tool))
                && (r.categories.is_empty() || r.categories.contains(&category));
            if !tool_ok {
                continue;
            }
            if r.direction.is_some_and(|d| d != dir) {
                continue;
            }
            if !r.sources.is_empty() && !r.sources.iter().any(|n| n.contains(client)) {
                continue;
            }
            if !r.destinations.is_empty() && !r.destinations.iter().any(|n| n.contains(server)) {
                continue;
            }
            if !r.hosts.is_empty() {
                let Some(h) = host else { continue };
                if !r.hosts.iter().any(|s| host_matches(h, s.as_bytes())) {
                    continue;
                }
            }
            return (Action::Allow, Some(i));
        }
        let a = self
            .tools
            .get(&tool)
            .or_else(|| self.categories.get(&category))
            .copied()
            .unwrap_or(self.default_action);
        (a, None)
    }
}

/// Whole-label suffix match, case-insensitive, trailing dot ignored.
pub fn host_matches(host: &[u8], suffix: &[u8]) -> bool {
    let h = host.strip_suffix(b".").unwrap_or(host);
    if h.len() < suffix.len() {
        return false;
    }
    let tail = &h[h.len() - suffix.len()..];
    tail.eq_ignore_ascii_case(suffix)
        && (h.len() == suffix.len() || h[h.len() - suffix.len() - 1] == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffix_rule() {
        assert!(host_matches(b"x.TeamViewer.com.", b"teamviewer.com"));
        assert!(host_matches(b"teamviewer.com", b"teamviewer.com"));
        assert!(!host_matches(b"notteamviewer.com", b"teamviewer.com"));
        assert!(!host_matches(b"com", b"teamviewer.com"));
    }
}
