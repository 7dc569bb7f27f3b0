//! A small blocking HTTP/1.1 client for the control API, over a Unix socket
//! or loopback TCP: one request per connection (`Connection: close`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use super::ControlAddr;

/// Longest wait for an answer. Threat: a wedged daemon hanging the CLI.
const TIMEOUT: Duration = Duration::from_secs(60);

/// Why a request to the control API failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens at the address: usually no `dphost run` is running.
    #[error("connecting to {addr} (is `dphost run` running?)")]
    Connect {
        addr: ControlAddr,
        #[source]
        source: std::io::Error,
    },
    /// Sending the request or reading the answer failed, or the read
    /// timed out.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The whole answer was read but is not a well-formed HTTP answer.
    #[error("reading the answer from {addr}")]
    Answer {
        addr: ControlAddr,
        #[source]
        source: AnswerError,
    },
    /// A streamed answer is not well-formed HTTP.
    #[error(transparent)]
    Stream(#[from] AnswerError),
    /// A streamed request was refused: the status code and the body.
    #[error("{code}: {body}")]
    Status { code: u16, body: String },
}

/// What is wrong with an answer's bytes.
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    /// The head does not parse as HTTP.
    #[error(transparent)]
    Head(#[from] httparse::Error),
    /// The connection closed before the head ended.
    #[error("incomplete HTTP answer")]
    Incomplete,
    /// A streamed answer's status line has no status code.
    #[error("not an HTTP answer")]
    NotHttp,
    /// A chunk's size line is missing or is not a hexadecimal number.
    #[error("bad chunked encoding")]
    BadChunk(#[source] Option<std::num::ParseIntError>),
    /// A chunk's size line is not UTF-8.
    #[error(transparent)]
    ChunkSizeText(#[from] std::str::Utf8Error),
    /// A chunk's size is not a hexadecimal number.
    #[error(transparent)]
    ChunkSize(#[from] std::num::ParseIntError),
    /// The answer ends inside a chunk.
    #[error("truncated chunk")]
    TruncatedChunk,
    /// The body of a whole answer is not UTF-8.
    #[error("answer is not UTF-8")]
    NotUtf8(#[source] std::string::FromUtf8Error),
    /// The connection closed before the answer's end: the server met an
    /// error after it had begun (a plugin failing between pages; its log
    /// says which).
    #[error("the answer was cut short (dphost's log says why)")]
    CutShort,
    /// A line of a streamed answer is not UTF-8.
    #[error("a line is not UTF-8")]
    LineNotUtf8(#[source] std::str::Utf8Error),
}

/// An HTTP answer: status code and body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

/// Sends one request and reads the whole answer.
pub fn request(
    addr: &ControlAddr,
    method: &str,
    path: &str,
    body: &str,
) -> Result<Answer, ClientError> {
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: dphost\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let connect = |source| ClientError::Connect {
        addr: addr.clone(),
        source,
    };
    let raw = match addr {
        ControlAddr::Unix(p) => {
            let stream = UnixStream::connect(p).map_err(connect)?;
            stream.set_read_timeout(Some(TIMEOUT))?;
            exchange(stream, &head, body)?
        }
        ControlAddr::Tcp(a) => {
            let stream = TcpStream::connect(a).map_err(connect)?;
            stream.set_read_timeout(Some(TIMEOUT))?;
            exchange(stream, &head, body)?
        }
    };
    parse(&raw).map_err(|source| ClientError::Answer {
        addr: addr.clone(),
        source,
    })
}

/// Sends a GET and hands each line of the answer to `line` as it arrives
/// (the answer may stream for ever), until the server ends it or `line`
/// returns false. No read timeout: a stream may be quiet for long.
pub fn stream_lines(
    addr: &ControlAddr,
    path: &str,
    mut line: impl FnMut(&str) -> bool,
) -> Result<(), ClientError> {
    let mut pending = Vec::new();
    let mut failed = None;
    stream(addr, "GET", path, "", |bytes| {
        pending.extend_from_slice(bytes);
        // Lines are taken by index and the rest kept once per chunk: a
        // chunk can hold a whole reconcile's events (megabytes), and
        // draining each line from the front would move the rest each time.
        let mut start = 0;
        let mut going = true;
        while let Some(end) = pending[start..].iter().position(|b| *b == b'\n') {
            match std::str::from_utf8(&pending[start..start + end]) {
                Ok(text) => going = line(text),
                Err(e) => {
                    failed = Some(AnswerError::LineNotUtf8(e));
                    going = false;
                }
            }
            start += end + 1;
            if !going {
                break;
            }
        }
        pending.drain(..start);
        going
    })?;
    failed.map_or(Ok(()), |e| Err(e.into()))
}

/// Sends a request and hands the answer's body to `chunk` as it arrives,
/// until the server ends it or `chunk` returns false. An answer other
/// than 200 is [`ClientError::Status`]; one that stops before its end,
/// [`AnswerError::CutShort`]. No read timeout: a stream may be quiet for
/// long.
pub fn stream(
    addr: &ControlAddr,
    method: &str,
    path: &str,
    body: &str,
    chunk: impl FnMut(&[u8]) -> bool,
) -> Result<(), ClientError> {
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: dphost\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let connect = |source| ClientError::Connect {
        addr: addr.clone(),
        source,
    };
    match addr {
        ControlAddr::Unix(p) => {
            let stream = UnixStream::connect(p).map_err(connect)?;
            read_stream(stream, &head, body, chunk)
        }
        ControlAddr::Tcp(a) => {
            let stream = TcpStream::connect(a).map_err(connect)?;
            read_stream(stream, &head, body, chunk)
        }
    }
}

fn read_stream(
    mut stream: impl Read + Write,
    head: &str,
    body: &str,
    mut chunk: impl FnMut(&[u8]) -> bool,
) -> Result<(), ClientError> {
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    reader.read_line(&mut status)?;
    let code: u16 = status
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or(AnswerError::NotHttp)?;
    let mut chunked = false;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim_end().is_empty() {
            break;
        }
        let header = header.to_ascii_lowercase();
        chunked |= header.starts_with("transfer-encoding:") && header.contains("chunked");
    }
    if code != 200 {
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest)?;
        let body = if chunked { dechunk(&rest)? } else { rest };
        return Err(ClientError::Status {
            code,
            body: String::from_utf8_lossy(&body).trim().to_string(),
        });
    }
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let size = if chunked {
            let mut size_line = String::new();
            if reader.read_line(&mut size_line)? == 0 {
                return Err(AnswerError::CutShort.into());
            }
            let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|e| AnswerError::BadChunk(Some(e)))?;
            if size == 0 {
                return Ok(());
            }
            if buf.len() < size {
                buf.resize(size, 0);
            }
            reader.read_exact(&mut buf[..size]).map_err(cut_short)?;
            let mut crlf = [0u8; 2];
            reader.read_exact(&mut crlf).map_err(cut_short)?;
            size
        } else {
            match reader.read(&mut buf)? {
                0 => return Ok(()),
                n => n,
            }
        };
        if !chunk(&buf[..size]) {
            return Ok(());
        }
    }
}

/// The connection closed inside a chunk: the answer was cut short.
fn cut_short(e: std::io::Error) -> ClientError {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        AnswerError::CutShort.into()
    } else {
        e.into()
    }
}

fn exchange(mut stream: impl Read + Write, head: &str, body: &str) -> std::io::Result<Vec<u8>> {
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    Ok(raw)
}

fn parse(raw: &[u8]) -> Result<Answer, AnswerError> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(at) = response.parse(raw)? else {
        return Err(AnswerError::Incomplete);
    };
    let status = response.code.unwrap_or(0);
    let chunked = response.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("transfer-encoding")
            && String::from_utf8_lossy(h.value).contains("chunked")
    });
    let body = if chunked {
        dechunk(&raw[at..])?
    } else {
        raw[at..].to_vec()
    };
    Ok(Answer {
        status,
        body: String::from_utf8(body).map_err(AnswerError::NotUtf8)?,
    })
}

fn dechunk(mut raw: &[u8]) -> Result<Vec<u8>, AnswerError> {
    let mut body = Vec::new();
    loop {
        let line_end = raw
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or(AnswerError::BadChunk(None))?;
        let size_text = std::str::from_utf8(&raw[..line_end])?;
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        body.extend_from_slice(raw.get(..size).ok_or(AnswerError::TruncatedChunk)?);
        raw = raw.get(size + 2..).ok_or(AnswerError::TruncatedChunk)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No daemon: the message says where and suggests `dphost run`, over
    /// the system's reason.
    #[test]
    fn connect_failure_names_the_address() {
        let addr = ControlAddr::Unix("/nonexistent/dphost.sock".into());
        let err = request(&addr, "GET", "/status", "").unwrap_err();
        assert!(matches!(err, ClientError::Connect { .. }), "{err:?}");
        let message = crate::error_chain(&err);
        assert!(
            message.starts_with(
                "connecting to unix:/nonexistent/dphost.sock (is `dphost run` running?): "
            ),
            "{message}"
        );
    }

    /// A chunked body is reassembled; a broken one says what is wrong.
    #[test]
    fn chunked_answers() {
        let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        let answer = parse(format!("{head}3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n").as_bytes()).unwrap();
        assert_eq!((answer.status, answer.body.as_str()), (200, "abcde"));
        let cases = [
            ("5\r\nab", "truncated chunk"),
            ("zz\r\nab\r\n", "invalid digit found in string"),
            ("3", "bad chunked encoding"),
        ];
        for (body, message) in cases {
            let err = parse(format!("{head}{body}").as_bytes()).unwrap_err();
            assert_eq!(crate::error_chain(&err), message);
        }
        let err = parse(b"HTTP/1.1 200").unwrap_err();
        assert_eq!(crate::error_chain(&err), "incomplete HTTP answer");
    }

    /// A streamed answer that stops before its last chunk (the server met
    /// an error after it began) is an error, not a short answer; the
    /// chunks before it were handed on.
    #[test]
    fn streams_cut_short() {
        let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        for cut in ["3\r\nab", "3\r\nabc\r\n", ""] {
            let mut given = Vec::new();
            let answer = std::io::Cursor::new(format!("{head}2\r\n[1\r\n{cut}").into_bytes());
            let err = read_stream(Both(answer, Vec::new()), "", "", |bytes| {
                given.extend_from_slice(bytes);
                true
            })
            .unwrap_err();
            assert_eq!(
                crate::error_chain(&err),
                "the answer was cut short (dphost's log says why)"
            );
            assert!(given.starts_with(b"[1"), "{given:?}");
        }
        let whole = std::io::Cursor::new(format!("{head}2\r\n[]\r\n0\r\n\r\n").into_bytes());
        let mut given = Vec::new();
        read_stream(Both(whole, Vec::new()), "", "", |bytes| {
            given.extend_from_slice(bytes);
            true
        })
        .unwrap();
        assert_eq!(given, b"[]");
    }

    /// A stream read from one buffer and written to another.
    struct Both(std::io::Cursor<Vec<u8>>, Vec<u8>);

    impl Read for Both {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.0.read(buf)
        }
    }

    impl Write for Both {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.1.write(buf)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}
