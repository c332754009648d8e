//! HTTP/1.x request and response header parsing from a reassembled stream prefix.
//!
//! Only what the inspectors need: the method, the request URI, `Host`, `User-Agent`, and the
//! response's `Server`. Header names are compared case-insensitively; values are returned as sent.

/// A parsed request head.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Request<'a> {
    /// Method token.
    pub method: &'a [u8],
    /// Request target.
    pub uri: &'a [u8],
    /// `Host` header (or the authority of an absolute URI).
    pub host: Option<&'a [u8]>,
    /// `User-Agent` header.
    pub user_agent: Option<&'a [u8]>,
}

/// Parse outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parse<T> {
    /// Plausible HTTP, but the head is not complete yet.
    NeedMore,
    /// Not HTTP.
    NotHttp,
    /// Parsed (possibly from a head cut at the cap, if the request line and some headers were seen).
    Done(T),
}

const METHODS: &[&[u8]] = &[
    b"GET ",
    b"POST ",
    b"HEAD ",
    b"PUT ",
    b"CONNECT ",
    b"OPTIONS ",
    b"DELETE ",
    b"PATCH ",
];

/// Whether `data` can still become an HTTP request (a prefix of a method).
fn plausible_method(data: &[u8]) -> Option<bool> {
    for m in METHODS {
        if data.len() >= m.len() {
            if data.starts_with(m) {
                return Some(true);
            }
        } else if m.starts_with(data) {
            return None;
        }
    }
    Some(false)
}

fn trim(v: &[u8]) -> &[u8] {
    let s = v
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(v.len());
    let e = v
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(s, |e| e + 1);
    &v[s..e.max(s)]
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Iterates the header lines of a head (after the first line), yielding (name, value).
fn headers(head: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    head.split(|&b| b == b'\n').skip(1).filter_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let colon = line.iter().position(|&b| b == b':')?;
        Some((&line[..colon], trim(&line[colon + 1..])))
    })
}

/// Parses a request head from the client's stream prefix. `complete` says that no more bytes will
/// come (the prefix hit its cap or the inspection budget ended): then a partial head is parsed.
pub fn parse_request(data: &[u8], complete: bool) -> Parse<Request<'_>> {
    match plausible_method(data) {
        None => {
            return if complete {
                Parse::NotHttp
            } else {
                Parse::NeedMore
            }
        }
        Some(false) => return Parse::NotHttp,
        Some(true) => {}
    }
    let head_end = find(data, b"\r\n\r\n").or_else(|| find(data, b"\n\n"));
    let head = match head_end {
        Some(e) => &data[..e],
        None if complete => data,
        None => return Parse::NeedMore,
    };
    let first_end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
    let first = head[..first_end]
        .strip_suffix(b"\r")
        .unwrap_or(&head[..first_end]);
    let mut parts = first.split(|&b| b == b' ').filter(|p| !p.is_empty());
    let method = parts.next().unwrap_or(b"");
    let uri = parts.next().unwrap_or(b"");
    let version = parts.next().unwrap_or(b"");
    if !(version.starts_with(b"HTTP/1.") || complete && version.is_empty()) {
        return Parse::NotHttp;
    }
    let mut req = Request {
        method,
        uri,
        host: None,
        user_agent: None,
    };
    // An absolute URI carries the authority.
    if let Some(rest) = uri
        .strip_prefix(b"http://")
        .or_else(|| uri.strip_prefix(b"https://"))
    {
        let end = rest
            .iter()
            .position(|&b| b == b'/' || b == b':')
            .unwrap_or(rest.len());
        req.host = Some(&rest[..end]);
    }
    for (name, value) in headers(head) {
        if name.eq_ignore_ascii_case(b"host") {
            // Strip a port.
            let v = match value.iter().rposition(|&b| b == b':') {
                Some(c)
                    if !value.starts_with(b"[")
                        && value[c + 1..].iter().all(u8::is_ascii_digit) =>
                {
                    &value[..c]
                }
                _ => value,
            };
            req.host = Some(v);
        } else if name.eq_ignore_ascii_case(b"user-agent") {
            req.user_agent = Some(value);
        }
    }
    Parse::Done(req)
}

/// The `Server` header of a response head in the server's stream prefix.
pub fn response_server(data: &[u8]) -> Parse<Option<&[u8]>> {
    let n = data.len().min(5);
    if data[..n] != b"HTTP/"[..n] {
        return Parse::NotHttp;
    }
    let Some(e) = find(data, b"\r\n\r\n") else {
        return Parse::NeedMore;
    };
    Parse::Done(
        headers(&data[..e])
            .find(|(n, _)| n.eq_ignore_ascii_case(b"server"))
            .map(|(_, v)| v),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_fields() {
        let r = b"GET /x HTTP/1.1\r\nhost: Example.COM:8080\r\nUser-Agent: Mozilla/4.0 (compatible; MSIE 6.0; DynGate)\r\n\r\n";
        let Parse::Done(q) = parse_request(r, false) else {
            panic!()
        };
        assert_eq!(q.method, b"GET");
        assert_eq!(q.uri, b"/x");
        assert_eq!(q.host, Some(&b"Example.COM"[..]));
        assert!(q.user_agent.unwrap().ends_with(b"DynGate)"));
        assert_eq!(parse_request(b"GE", false), Parse::NeedMore);
        assert_eq!(
            parse_request(b"GET / HTTP/1.1\r\nHost: a", false),
            Parse::NeedMore
        );
        assert_eq!(parse_request(b"\x16\x03\x01", false), Parse::NotHttp);
        assert_eq!(parse_request(b"SSH-2.0-x", false), Parse::NotHttp);
    }

    #[test]
    fn response_server_header() {
        let r = b"HTTP/1.1 200 OK\r\nServer: SimpleHelp/SSuite\r\n\r\n";
        assert_eq!(
            response_server(r),
            Parse::Done(Some(&b"SimpleHelp/SSuite"[..]))
        );
        assert_eq!(response_server(b"HTT"), Parse::NeedMore);
        assert_eq!(response_server(b"RFB 003.008\n"), Parse::NotHttp);
    }
}
