//! The RMM catalogue: tools and their network indicators, loaded from `port-lists/tools/*.toml`.
//!
//! Loading validates every file (one-line errors naming the file and line) and compiles the
//! indicators into lookup structures ([`matcher::Matcher`]) that the inspectors query without
//! allocating. The default catalogue is embedded in the binary at build time.

pub mod matcher;

use serde::Deserialize;
use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use toml::Spanned;

/// A tool's category.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    /// Remote support and management products.
    Rmm,
    /// RDP, VNC, NoMachine, Citrix ICA.
    RemoteDesktop,
    /// ngrok, Cloudflare Tunnel, Tailscale and the like.
    Tunnel,
}

impl Category {
    /// All categories.
    pub const ALL: [Category; 3] = [Category::Rmm, Category::RemoteDesktop, Category::Tunnel];
    /// The catalogue/policy spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Rmm => "rmm",
            Category::RemoteDesktop => "remote-desktop",
            Category::Tunnel => "tunnel",
        }
    }
    /// Parses the catalogue/policy spelling.
    pub fn parse(s: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// Confidence of an indicator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Confidence {
    /// Weak alone (a shared port).
    Low,
    /// Usually right.
    Medium,
    /// Specific to the tool.
    High,
}

impl Confidence {
    /// The catalogue spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Confidence::Low => "low",
            Confidence::Medium => "medium",
            Confidence::High => "high",
        }
    }
    fn parse(s: &str) -> Option<Confidence> {
        match s {
            "low" => Some(Confidence::Low),
            "medium" => Some(Confidence::Medium),
            "high" => Some(Confidence::High),
            _ => None,
        }
    }
}

/// Transport protocol of a port indicator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Proto {
    /// TCP
    Tcp,
    /// UDP
    Udp,
}

impl Proto {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// How a string indicator matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StrMatch {
    /// Whole-label suffix (domains only).
    Suffix,
    /// The whole value.
    Exact,
    /// A prefix.
    Prefix,
    /// Anywhere.
    Contains,
}

impl StrMatch {
    /// Catalogue spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            StrMatch::Suffix => "suffix",
            StrMatch::Exact => "exact",
            StrMatch::Prefix => "prefix",
            StrMatch::Contains => "contains",
        }
    }
}

/// Which certificate name a `tls_cert` indicator looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertField {
    /// Subject.
    Subject,
    /// Issuer.
    Issuer,
    /// Either.
    Any,
}

/// What an indicator matches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IndicatorKind {
    /// A server (or, for captures joined mid-flow, client) port.
    Port {
        /// Transport.
        proto: Proto,
        /// First port of the range.
        lo: u16,
        /// Last port of the range (inclusive).
        hi: u16,
    },
    /// A DNS name (SNI, DNS question, HTTP Host).
    Domain {
        /// Lower-case name.
        name: String,
        /// Suffix or exact.
        exact: bool,
    },
    /// An address block.
    Ip(ipnet::IpNet),
    /// A TLS ALPN protocol id.
    TlsAlpn {
        /// The value.
        value: String,
        /// Exact or prefix.
        how: StrMatch,
    },
    /// A substring of the server certificate's subject or issuer (TLS <= 1.2).
    TlsCert {
        /// The substring.
        value: String,
        /// Which name.
        field: CertField,
    },
    /// The HTTP User-Agent.
    HttpUserAgent {
        /// The value.
        value: String,
        /// Exact, prefix or contains.
        how: StrMatch,
    },
    /// The HTTP request URI.
    HttpUri {
        /// The value.
        value: String,
        /// Exact, prefix or contains.
        how: StrMatch,
    },
    /// A named byte-level matcher implemented in `inspect::fingerprint`.
    Fingerprint(crate::inspect::fingerprint::Fingerprint),
    /// A JA4 TLS client fingerprint.
    Ja4(String),
}

impl IndicatorKind {
    /// The catalogue's `kind` spelling.
    pub fn kind_name(&self) -> &'static str {
        match self {
            IndicatorKind::Port { .. } => "port",
            IndicatorKind::Domain { .. } => "domain",
            IndicatorKind::Ip(_) => "ip",
            IndicatorKind::TlsAlpn { .. } => "tls_alpn",
            IndicatorKind::TlsCert { .. } => "tls_cert",
            IndicatorKind::HttpUserAgent { .. } => "http_user_agent",
            IndicatorKind::HttpUri { .. } => "http_uri",
            IndicatorKind::Fingerprint(_) => "fingerprint",
            IndicatorKind::Ja4(_) => "ja4",
        }
    }

    /// A short human description of the value.
    pub fn describe(&self) -> String {
        match self {
            IndicatorKind::Port { proto, lo, hi } if lo == hi => {
                format!("{}/{}", lo, proto.as_str())
            }
            IndicatorKind::Port { proto, lo, hi } => format!("{}-{}/{}", lo, hi, proto.as_str()),
            IndicatorKind::Domain { name, exact } => {
                if *exact {
                    format!("{name} (exact)")
                } else {
                    format!("{name} (and subdomains)")
                }
            }
            IndicatorKind::Ip(n) => n.to_string(),
            IndicatorKind::TlsAlpn { value, how } => format!("{value} ({})", how.as_str()),
            IndicatorKind::TlsCert { value, field } => format!("{value} (in {field:?})"),
            IndicatorKind::HttpUserAgent { value, how } => format!("{value} ({})", how.as_str()),
            IndicatorKind::HttpUri { value, how } => format!("{value} ({})", how.as_str()),
            IndicatorKind::Fingerprint(f) => format!("{} ({})", f.name(), f.describe()),
            IndicatorKind::Ja4(v) => v.clone(),
        }
    }
}

/// One indicator of a tool.
#[derive(Clone, Debug)]
pub struct Indicator {
    /// What it matches.
    pub kind: IndicatorKind,
    /// How sure a match is.
    pub confidence: Confidence,
    /// Where the fact comes from.
    pub sources: Vec<String>,
    /// Optional note (required when another tool claims the same value).
    pub note: Option<String>,
}

/// A catalogued tool.
#[derive(Clone, Debug)]
pub struct Tool {
    /// Lower-case id, words joined by '-'.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Category.
    pub category: Category,
    /// Vendor web site.
    pub vendor_url: String,
    /// Indicators.
    pub indicators: Vec<Indicator>,
    /// The file it was loaded from.
    pub file: String,
}

/// The loaded catalogue.
#[derive(Debug)]
pub struct Catalog {
    /// Tools, sorted by id; a tool's index is its `ToolId`.
    pub tools: Vec<Tool>,
    /// A version string: a hash of the file contents.
    pub version: String,
    /// The version as a number (tags state that holds tool ids, such as learned addresses).
    pub tag: u64,
    /// Compiled lookups.
    pub matcher: matcher::Matcher,
}

/// Index of a tool in [`Catalog::tools`].
pub type ToolId = u16;

/// A catalogue or policy error, printed as one line naming the file and line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    /// The file.
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// What is wrong.
    pub msg: String,
}

/// `s` with its control characters escaped (`\n`, `\u{1b}`, ...): a value quoted from a file
/// (a string with an escaped newline, say) cannot break the message onto two lines.
struct OneLine<'a>(&'a str);

impl fmt::Display for OneLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            if c.is_control() {
                write!(f, "{}", c.escape_debug())?;
            } else {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (file, msg) = (OneLine(&self.file), OneLine(&self.msg));
        match self.line {
            Some(l) => write!(f, "{file}:{l}: {msg}"),
            None => write!(f, "{file}: {msg}"),
        }
    }
}

impl std::error::Error for LoadError {}

/// The 1-based line of byte offset `off` in `text`.
pub fn line_of(text: &str, off: usize) -> usize {
    text.as_bytes()[..off.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Turns a toml deserialisation error into a one-line [`LoadError`].
pub fn toml_error(file: &str, text: &str, e: toml::de::Error) -> LoadError {
    let line = e.span().map(|s| line_of(text, s.start));
    let msg = e.message().replace('\n', " ").trim().to_string();
    LoadError {
        file: file.to_string(),
        line,
        msg,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTool {
    id: Spanned<String>,
    name: String,
    category: Spanned<String>,
    #[serde(default)]
    vendor_url: String,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default)]
    notes: Option<String>,
    #[serde(default, rename = "indicator")]
    indicators: Vec<Spanned<RawIndicator>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIndicator {
    kind: String,
    #[serde(default)]
    value: Option<String>,
    #[serde(default, rename = "match")]
    how: Option<String>,
    #[serde(default)]
    proto: Option<String>,
    #[serde(default)]
    port: Option<String>,
    #[serde(default)]
    field: Option<String>,
    confidence: String,
    #[serde(default)]
    sources: Vec<String>,
    #[serde(default)]
    note: Option<String>,
}

/// Whether `id` is lower-case ASCII words joined by '-'.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.split('-').all(|w| {
            !w.is_empty()
                && w.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

/// Normalises a DNS name for matching: lower case, no trailing dot. Returns None if it is not a
/// plausible host name (empty, too long, spaces or wildcards).
pub fn normalize_domain(s: &str) -> Option<String> {
    let s = s.trim().trim_end_matches('.').to_ascii_lowercase();
    if s.is_empty()
        || s.len() > 253
        || s.starts_with('.')
        || s.contains("..")
        || !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
    {
        return None;
    }
    Some(s)
}

fn parse_port_range(s: &str) -> Option<(u16, u16)> {
    let (a, b) = match s.split_once('-') {
        Some((a, b)) => (a.trim(), b.trim()),
        None => (s.trim(), s.trim()),
    };
    let lo: u16 = a.parse().ok()?;
    let hi: u16 = b.parse().ok()?;
    (lo >= 1 && lo <= hi).then_some((lo, hi))
}

fn parse_indicator(raw: &RawIndicator) -> Result<Indicator, String> {
    let confidence = Confidence::parse(&raw.confidence).ok_or_else(|| {
        format!(
            "unknown confidence '{}' (high, medium, low)",
            raw.confidence
        )
    })?;
    let sources: Vec<String> = raw
        .sources
        .iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    if sources.is_empty() {
        return Err("indicator has no source".into());
    }
    let value = || {
        raw.value
            .as_deref()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| format!("{} indicator needs a value", raw.kind))
    };
    let how = |allowed: &[StrMatch], default: StrMatch| -> Result<StrMatch, String> {
        let Some(h) = raw.how.as_deref() else {
            return Ok(default);
        };
        allowed
            .iter()
            .copied()
            .find(|m| m.as_str() == h)
            .ok_or_else(|| format!("match '{h}' is not allowed for {}", raw.kind))
    };
    let kind = match raw.kind.as_str() {
        "port" => {
            let proto = match raw.proto.as_deref() {
                Some("tcp") => Proto::Tcp,
                Some("udp") => Proto::Udp,
                other => {
                    return Err(format!(
                        "port indicator needs proto tcp or udp, got {other:?}"
                    ))
                }
            };
            let p = raw.port.as_deref().ok_or("port indicator needs a port")?;
            let (lo, hi) = parse_port_range(p).ok_or_else(|| format!("bad port or range '{p}'"))?;
            if lo <= 443 && 443 <= hi || lo <= 80 && 80 <= hi {
                return Err(format!(
                    "port-only indicator on 80 or 443 is not allowed ('{p}')"
                ));
            }
            IndicatorKind::Port { proto, lo, hi }
        }
        "domain" => {
            let v = value()?;
            let name = normalize_domain(v).ok_or_else(|| format!("bad domain '{v}'"))?;
            if name != v {
                return Err(format!(
                    "domain '{v}' must be written lower-case without a trailing dot"
                ));
            }
            let exact =
                how(&[StrMatch::Suffix, StrMatch::Exact], StrMatch::Suffix)? == StrMatch::Exact;
            if !exact && !name.contains('.') {
                return Err(format!("domain suffix '{name}' is a bare top-level domain"));
            }
            IndicatorKind::Domain { name, exact }
        }
        "ip" => {
            let v = value()?;
            let net = v
                .parse::<ipnet::IpNet>()
                .or_else(|_| v.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| format!("bad CIDR '{v}'"))?;
            IndicatorKind::Ip(net.trunc())
        }
        "tls_alpn" => IndicatorKind::TlsAlpn {
            value: value()?.to_string(),
            how: how(&[StrMatch::Exact, StrMatch::Prefix], StrMatch::Exact)?,
        },
        "tls_cert" => IndicatorKind::TlsCert {
            value: value()?.to_string(),
            field: match raw.field.as_deref() {
                None | Some("any") => CertField::Any,
                Some("subject") => CertField::Subject,
                Some("issuer") => CertField::Issuer,
                Some(o) => return Err(format!("unknown certificate field '{o}'")),
            },
        },
        "http_user_agent" => IndicatorKind::HttpUserAgent {
            value: value()?.to_string(),
            how: how(
                &[StrMatch::Exact, StrMatch::Prefix, StrMatch::Contains],
                StrMatch::Contains,
            )?,
        },
        "http_uri" => IndicatorKind::HttpUri {
            value: value()?.to_string(),
            how: how(
                &[StrMatch::Exact, StrMatch::Prefix, StrMatch::Contains],
                StrMatch::Prefix,
            )?,
        },
        "fingerprint" => {
            let v = value()?;
            IndicatorKind::Fingerprint(
                crate::inspect::fingerprint::Fingerprint::from_name(v)
                    .ok_or_else(|| format!("unknown fingerprint '{v}'"))?,
            )
        }
        "ja4" => IndicatorKind::Ja4(value()?.to_string()),
        other => return Err(format!("unknown indicator kind '{other}'")),
    };
    Ok(Indicator {
        kind,
        confidence,
        sources,
        note: raw.note.clone(),
    })
}

/// Parses one tool file.
pub fn parse_tool(file: &str, text: &str) -> Result<Tool, LoadError> {
    let err = |off: usize, msg: String| LoadError {
        file: file.to_string(),
        line: Some(line_of(text, off)),
        msg,
    };
    let raw: RawTool = toml::from_str(text).map_err(|e| toml_error(file, text, e))?;
    let _ = (&raw.aliases, &raw.notes);
    let id = raw.id.get_ref().clone();
    if !valid_id(&id) {
        return Err(err(
            raw.id.span().start,
            format!("bad tool id '{id}': use lower-case ASCII words joined by '-'"),
        ));
    }
    let category = Category::parse(raw.category.get_ref()).ok_or_else(|| {
        err(
            raw.category.span().start,
            format!(
                "unknown category '{}' (rmm, remote-desktop, tunnel)",
                raw.category.get_ref()
            ),
        )
    })?;
    let mut indicators = Vec::with_capacity(raw.indicators.len());
    for ri in &raw.indicators {
        let ind = parse_indicator(ri.get_ref()).map_err(|m| err(ri.span().start, m))?;
        indicators.push(ind);
    }
    Ok(Tool {
        id,
        name: raw.name,
        category,
        vendor_url: raw.vendor_url,
        indicators,
        file: file.to_string(),
    })
}

/// The catalogue embedded at build time: (file name, contents).
pub fn embedded_files() -> &'static [(&'static str, &'static str)] {
    include!(concat!(env!("OUT_DIR"), "/embedded_catalog.rs"))
}

impl Catalog {
    /// Loads the embedded default catalogue.
    pub fn embedded() -> Result<Catalog, LoadError> {
        Catalog::from_files(
            embedded_files()
                .iter()
                .map(|(n, t)| (format!("port-lists/tools/{n}"), t.to_string())),
        )
    }

    /// Loads every `*.toml` in `dir` (or in `dir/tools` when that exists).
    pub fn load_dir(dir: &Path) -> Result<Catalog, LoadError> {
        let tools_dir = if dir.join("tools").is_dir() {
            dir.join("tools")
        } else {
            dir.to_path_buf()
        };
        let rd = std::fs::read_dir(&tools_dir).map_err(|e| LoadError {
            file: tools_dir.display().to_string(),
            line: None,
            msg: format!("cannot read catalogue folder: {e}"),
        })?;
        let mut paths: Vec<_> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        paths.sort();
        let mut files = Vec::with_capacity(paths.len());
        for p in paths {
            let text = std::fs::read_to_string(&p).map_err(|e| LoadError {
                file: p.display().to_string(),
                line: None,
                msg: format!("cannot read: {e}"),
            })?;
            files.push((p.display().to_string(), text));
        }
        if files.is_empty() {
            return Err(LoadError {
                file: tools_dir.display().to_string(),
                line: None,
                msg: "no *.toml tool files in the catalogue folder".into(),
            });
        }
        Catalog::from_files(files)
    }

    /// Builds a catalogue from (file name, text) pairs.
    pub fn from_files(
        files: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Catalog, LoadError> {
        let mut tools = Vec::new();
        let mut seen: HashMap<String, String> = HashMap::new();
        let mut hasher = ring::digest::Context::new(&ring::digest::SHA256);
        for (file, text) in files {
            hasher.update(text.as_bytes());
            let tool = parse_tool(&file, &text)?;
            let stem = Path::new(&file)
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("");
            if stem != tool.id {
                return Err(LoadError {
                    file: file.clone(),
                    line: Some(1),
                    msg: format!(
                        "tool id '{}' does not match the file name '{stem}.toml'",
                        tool.id
                    ),
                });
            }
            if let Some(prev) = seen.insert(tool.id.clone(), file.clone()) {
                return Err(LoadError {
                    file,
                    line: Some(1),
                    msg: format!("duplicate tool id '{}' (also in {prev})", tool.id),
                });
            }
            tools.push(tool);
        }
        if tools.len() > u16::MAX as usize - 1 {
            return Err(LoadError {
                file: "catalogue".into(),
                line: None,
                msg: "too many tools".into(),
            });
        }
        tools.sort_by(|a, b| a.id.cmp(&b.id));
        let digest = hasher.finish();
        let version: String = digest.as_ref()[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let matcher = matcher::Matcher::build(&tools)?;
        let tag = u64::from_str_radix(&version, 16).unwrap_or(0);
        Ok(Catalog {
            tools,
            version,
            tag,
            matcher,
        })
    }

    /// Finds a tool by id.
    pub fn tool_id(&self, id: &str) -> Option<ToolId> {
        self.tools
            .binary_search_by(|t| t.id.as_str().cmp(id))
            .ok()
            .map(|i| i as ToolId)
    }

    /// The tool with this index. An index from another catalogue (a report racing a reload)
    /// gets a placeholder rather than a panic.
    pub fn tool(&self, id: ToolId) -> &Tool {
        static UNKNOWN: std::sync::OnceLock<Tool> = std::sync::OnceLock::new();
        self.tools.get(id as usize).unwrap_or_else(|| {
            UNKNOWN.get_or_init(|| Tool {
                id: "unknown".into(),
                name: "Unknown (catalogue reloaded)".into(),
                category: Category::Rmm,
                vendor_url: String::new(),
                indicators: Vec::new(),
                file: String::new(),
            })
        })
    }
}
