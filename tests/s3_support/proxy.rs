//! A fault-injecting HTTP/1.1 proxy between a client and the S3 test
//! server, for tests of what a command does when the network and the store
//! misbehave.
//!
//! The proxy reads each request on a client connection in full (keep-alive
//! connections carry many: requests and answers are framed by
//! `Content-Length` or chunked encoding), decides by its [`Rule`]s whether
//! to meddle, and otherwise passes the request to the server on a
//! connection of its own and the answer back unchanged (the `Host` header
//! too, so request signatures still hold). A rule fires on every `every`-th
//! request it matches, starting with match number `first`, at most `limit`
//! times: a fixed schedule, so a test sees the same faults on every run
//! with the same requests. [`FaultProxy::fired`] counts what each rule did,
//! so a test can check that the faults really happened.
//!
//! Concurrent requests make it a matter of timing which request a fault
//! lands on, so one request (method, path and range) could draw several in
//! a row. To keep tests that expect success deterministic, a request is
//! spared once it has drawn [`MAX_FAULTS_PER_REQUEST`] faults, so any
//! client with more attempts than that gets through; a rule made
//! [`Rule::relentless`] ignores that bound, for tests of what happens when
//! retries run out.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How many faults one request draws at most from rules that are not
/// [`Rule::relentless`]: fewer than the attempts cairn makes.
pub const MAX_FAULTS_PER_REQUEST: u32 = 2;

/// What a rule does to a request it fires on.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answers with this status and S3 error code, without asking the
    /// server. The connection stays open.
    Status(u16, &'static str),
    /// Passes the request on, then holds the answer this long before
    /// handing it back: a slow server, or, past the client's timeout, one
    /// that seems to hang (the client gives up while the server has
    /// already done the work).
    Delay(Duration),
    /// Reads the request's head and half of its body, then closes the
    /// connection: the server never sees the request.
    DropRequest,
    /// Passes the request on, then hands back half of the answer (half its
    /// body, or half its head when it has none) and closes the connection:
    /// the server did the work, the client cannot know.
    DropResponse,
}

/// When a fault is injected: on requests whose method and path match, on
/// match number `first` (counting from 0) and then every `every` matches,
/// at most `limit` times. When two rules want the same request the earlier
/// one wins and the other fires on its next match.
#[derive(Clone, Debug)]
pub struct Rule {
    pub fault: Fault,
    method: Option<&'static str>,
    path_contains: Option<&'static str>,
    first: u64,
    every: u64,
    limit: u64,
    relentless: bool,
}

impl Rule {
    /// Fires on every request, without limit.
    pub fn new(fault: Fault) -> Self {
        Self {
            fault,
            method: None,
            path_contains: None,
            first: 0,
            every: 1,
            limit: u64::MAX,
            relentless: false,
        }
    }

    /// Only requests with this method (`PUT`, `GET`, …).
    pub fn method(mut self, method: &'static str) -> Self {
        self.method = Some(method);
        self
    }

    /// Only requests whose path (without the query) contains `part`, such
    /// as `/data/` for packs.
    pub fn path(mut self, part: &'static str) -> Self {
        self.path_contains = Some(part);
        self
    }

    /// Fires first on match number `n` (0: the first matching request).
    pub fn first(mut self, n: u64) -> Self {
        self.first = n;
        self
    }

    /// Then on every `n`-th match after that.
    pub fn every(mut self, n: u64) -> Self {
        self.every = n.max(1);
        self
    }

    /// At most `n` times.
    pub fn limit(mut self, n: u64) -> Self {
        self.limit = n;
        self
    }

    /// Fires even on a request that already drew
    /// [`MAX_FAULTS_PER_REQUEST`] faults: every retry meets it again.
    pub fn relentless(mut self) -> Self {
        self.relentless = true;
        self
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        self.method.is_none_or(|m| m.eq_ignore_ascii_case(method))
            && self.path_contains.is_none_or(|p| path.contains(p))
    }
}

/// A rule and where its schedule stands.
struct Scheduled {
    rule: Rule,
    /// Matching requests seen so far.
    seen: u64,
    /// The match number from which the rule fires next.
    due: u64,
    fired: u64,
}

struct State {
    upstream: String,
    rules: Mutex<Vec<Scheduled>>,
    /// Faults drawn so far by each request (method, target and range).
    drawn: Mutex<HashMap<String, u32>>,
    /// One line per injected fault: `PUT /bucket/key: fault`.
    log: Mutex<Vec<String>>,
    requests: AtomicU64,
}

impl State {
    /// The fault for this request, if a rule fires on it. `range` is its
    /// `Range` header: ranged reads of one object are different requests.
    fn decide(&self, method: &str, target: &str, range: &str) -> Option<Fault> {
        let path = target.split('?').next().unwrap_or(target);
        let key = format!("{method} {target} {range}");
        let mut drawn = self.drawn.lock().unwrap_or_else(|e| e.into_inner());
        let spared = drawn.get(&key).is_some_and(|n| *n >= MAX_FAULTS_PER_REQUEST);
        let mut rules = self.rules.lock().unwrap_or_else(|e| e.into_inner());
        let mut chosen = None;
        for s in rules.iter_mut() {
            if !s.rule.matches(method, path) {
                continue;
            }
            let n = s.seen;
            s.seen += 1;
            let allowed = s.rule.relentless || !spared;
            if chosen.is_none() && allowed && n >= s.due && s.fired < s.rule.limit {
                s.fired += 1;
                s.due = n + s.rule.every;
                chosen = Some(s.rule.fault.clone());
            }
        }
        if let Some(fault) = &chosen {
            *drawn.entry(key).or_default() += 1;
            self.log
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(format!("{method} {path}: {fault:?}"));
        }
        chosen
    }
}

/// The proxy: listens on 127.0.0.1 until dropped.
pub struct FaultProxy {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    port: u16,
    state: Arc<State>,
    stop: Arc<AtomicBool>,
}

impl FaultProxy {
    /// A proxy in front of `upstream` (`http://HOST:PORT`) with these rules.
    pub fn start(upstream: &str, rules: Vec<Rule>) -> Self {
        let upstream = upstream
            .strip_prefix("http://")
            .unwrap_or_else(|| panic!("the proxy speaks plain HTTP only, not to {upstream}"))
            .trim_end_matches('/')
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the proxy to 127.0.0.1");
        let port = listener.local_addr().expect("the proxy's local address").port();
        let state = Arc::new(State {
            upstream,
            rules: Mutex::new(Vec::new()),
            drawn: Mutex::new(HashMap::new()),
            log: Mutex::new(Vec::new()),
            requests: AtomicU64::new(0),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let proxy = Self {
            endpoint: format!("http://127.0.0.1:{port}"),
            port,
            state: state.clone(),
            stop: stop.clone(),
        };
        proxy.set_rules(rules);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let state = state.clone();
                std::thread::spawn(move || serve(&state, conn));
            }
        });
        proxy
    }

    /// Replaces the rules; their schedules, and the faults each request
    /// drew, start afresh.
    pub fn set_rules(&self, rules: Vec<Rule>) {
        let scheduled = rules
            .into_iter()
            .map(|rule| Scheduled {
                due: rule.first,
                rule,
                seen: 0,
                fired: 0,
            })
            .collect();
        *self.state.rules.lock().unwrap_or_else(|e| e.into_inner()) = scheduled;
        self.state.drawn.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// How often each rule fired, in the order given.
    pub fn fired(&self) -> Vec<u64> {
        let rules = self.state.rules.lock().unwrap_or_else(|e| e.into_inner());
        rules.iter().map(|s| s.fired).collect()
    }

    /// Requests read from clients, faulty or not.
    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// Every injected fault so far, one line each, for messages.
    pub fn log(&self) -> String {
        self.state.log.lock().unwrap_or_else(|e| e.into_inner()).join("\n")
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accepting thread so that it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// A request or answer as read: its head (through the blank line) and its
/// body as framed on the wire.
struct Message {
    head: Vec<u8>,
    body: Vec<u8>,
}

impl Message {
    fn bytes(&self) -> Vec<u8> {
        let mut all = self.head.clone();
        all.extend_from_slice(&self.body);
        all
    }
}

/// The head of a message up to and including the blank line; `None` at a
/// clean end of the stream before it.
fn read_head(r: &mut impl BufRead) -> io::Result<Option<Vec<u8>>> {
    let mut head = Vec::new();
    loop {
        let before = head.len();
        let n = r.read_until(b'\n', &mut head)?;
        if n == 0 {
            return if head.is_empty() {
                Ok(None)
            } else {
                Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "stream ended inside a head",
                ))
            };
        }
        if head.len() > 256 << 10 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "head too long"));
        }
        let line = &head[before..];
        if line == b"\r\n" || line == b"\n" {
            return Ok(Some(head));
        }
    }
}

/// The value of header `name` in `head`.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (k, v) = line.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

/// How a message's body is delimited.
enum Framing {
    None,
    Length(u64),
    Chunked,
    /// Until the connection closes (answers only).
    Close,
}

fn framing(head: &str, may_close: bool) -> io::Result<Framing> {
    if header(head, "transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        return Ok(Framing::Chunked);
    }
    match header(head, "content-length") {
        Some(v) => v
            .parse()
            .map(Framing::Length)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("content-length {v:?}"))),
        None if may_close => Ok(Framing::Close),
        None => Ok(Framing::None),
    }
}

/// Reads a body framed as `framing`, keeping the bytes as they were sent.
fn read_body(r: &mut impl BufRead, framing: &Framing) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    match framing {
        Framing::None => {}
        Framing::Length(n) => {
            r.take(*n).read_to_end(&mut body)?;
            if body.len() as u64 != *n {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "body cut short"));
            }
        }
        Framing::Close => {
            r.read_to_end(&mut body)?;
        }
        Framing::Chunked => loop {
            let start = body.len();
            if r.read_until(b'\n', &mut body)? == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "chunked body cut short"));
            }
            let line = String::from_utf8_lossy(&body[start..]).into_owned();
            let size_text = line.split(';').next().unwrap_or_default().trim();
            let size = u64::from_str_radix(size_text, 16)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("chunk size {size_text:?}")))?;
            if size == 0 {
                // Trailers, then the blank line.
                loop {
                    let at = body.len();
                    if r.read_until(b'\n', &mut body)? == 0 {
                        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "chunked body cut short"));
                    }
                    if matches!(&body[at..], b"\r\n" | b"\n") {
                        return Ok(body);
                    }
                }
            }
            let want = size + 2;
            let got = r.take(want).read_to_end(&mut body)?;
            if got as u64 != want {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "chunk cut short"));
            }
        },
    }
    Ok(body)
}

/// A connection to the server, kept across the requests of one client
/// connection.
struct Upstream {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Upstream {
    fn connect(addr: &str) -> io::Result<Self> {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(120)))?;
        Ok(Self {
            writer: stream.try_clone()?,
            reader: BufReader::new(stream),
        })
    }

    /// Sends `request` and reads the answer; whether the server closes the
    /// connection after it comes back too. `NotConnected` means the request
    /// could not be sent or no byte of an answer came back.
    fn exchange(&mut self, request: &[u8], method: &str) -> io::Result<(Message, bool)> {
        self.writer
            .write_all(request)
            .map_err(|e| io::Error::new(io::ErrorKind::NotConnected, e))?;
        let head = read_head(&mut self.reader)?
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "the server closed the connection"))?;
        let text = String::from_utf8_lossy(&head).into_owned();
        let status: u16 = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no status in the answer"))?;
        let framing = if method.eq_ignore_ascii_case("HEAD") || status < 200 || status == 204 || status == 304 {
            Framing::None
        } else {
            framing(&text, true)?
        };
        let body = read_body(&mut self.reader, &framing)?;
        let closes = matches!(framing, Framing::Close)
            || header(&text, "connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        Ok((Message { head, body }, closes))
    }
}

/// Serves one client connection until either side closes it or a fault
/// drops it.
fn serve(state: &State, client: TcpStream) {
    // Idle pooled connections end with the client; this only bounds a
    // client that vanished without closing.
    let _ = client.set_read_timeout(Some(Duration::from_secs(300)));
    let Ok(mut out) = client.try_clone() else { return };
    let mut input = BufReader::new(client);
    let mut upstream: Option<Upstream> = None;
    while let Ok(Some(head)) = read_head(&mut input) {
        state.requests.fetch_add(1, Ordering::SeqCst);
        let text = String::from_utf8_lossy(&head).into_owned();
        let mut words = text.split_whitespace();
        let method = words.next().unwrap_or_default().to_owned();
        let target = words.next().unwrap_or_default().to_owned();
        let Ok(framing) = framing(&text, false) else { break };
        let fault = state.decide(&method, &target, header(&text, "range").unwrap_or_default());
        if let Some(Fault::DropRequest) = fault {
            // Half the body at most, then the connection goes.
            let half = match framing {
                Framing::Length(n) => n / 2,
                _ => 0,
            };
            let _ = io::copy(&mut (&mut input).take(half), &mut io::sink());
            let _ = out.shutdown(Shutdown::Both);
            return;
        }
        let Ok(body) = read_body(&mut input, &framing) else {
            break;
        };
        let request = Message { head, body };
        if let Some(Fault::Status(status, code)) = fault {
            let xml = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
                 <Message>{code} injected by the test proxy</Message><Resource>{target}</Resource></Error>"
            );
            let answer = format!(
                "HTTP/1.1 {status} Injected\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n{xml}",
                xml.len()
            );
            if out.write_all(answer.as_bytes()).is_err() {
                break;
            }
            continue;
        }
        let Some((answer, closes)) = forward(state, &mut upstream, &request, &method) else {
            break;
        };
        match fault {
            Some(Fault::Delay(pause)) => std::thread::sleep(pause),
            Some(Fault::DropResponse) => {
                let cut = if answer.body.is_empty() {
                    answer.head[..answer.head.len() / 2].to_vec()
                } else {
                    let mut part = answer.head.clone();
                    part.extend_from_slice(&answer.body[..answer.body.len() / 2]);
                    part
                };
                let _ = out.write_all(&cut);
                let _ = out.shutdown(Shutdown::Both);
                return;
            }
            _ => {}
        }
        // The server's `Connection: close` reaches the client too.
        if out.write_all(&answer.bytes()).is_err() || closes {
            break;
        }
    }
    let _ = out.shutdown(Shutdown::Both);
}

/// Passes `request` to the server, on the kept connection when there is
/// one. A kept connection the server closed while idle is replaced once:
/// the request never reached it.
fn forward(state: &State, upstream: &mut Option<Upstream>, request: &Message, method: &str) -> Option<(Message, bool)> {
    let bytes = request.bytes();
    for _ in 0..2 {
        let reused = upstream.is_some();
        let conn = match upstream {
            Some(conn) => conn,
            None => upstream.insert(Upstream::connect(&state.upstream).ok()?),
        };
        match conn.exchange(&bytes, method) {
            Ok((answer, closes)) => {
                if closes {
                    *upstream = None;
                }
                return Some((answer, closes));
            }
            // Nothing came back: the server had closed the idle connection.
            Err(e) if reused && e.kind() == io::ErrorKind::NotConnected => {
                *upstream = None;
            }
            Err(_) => return None,
        }
    }
    None
}
