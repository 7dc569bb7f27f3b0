//! A small blocking HTTP/1.1 client for the control API, over a Unix socket
//! or loopback TCP: one request per connection (`Connection: close`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::ControlAddr;

/// Longest wait for an answer. Threat: a wedged daemon hanging the CLI.
const TIMEOUT: Duration = Duration::from_secs(60);

/// An HTTP answer: status code and body.
pub struct Answer {
    pub status: u16,
    pub body: String,
}

/// Sends one request and reads the whole answer.
pub fn request(addr: &ControlAddr, method: &str, path: &str, body: &str) -> Result<Answer> {
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: dphost\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let raw = match addr {
        ControlAddr::Unix(p) => {
            let stream = UnixStream::connect(p)
                .with_context(|| format!("connecting to {addr} (is `dphost run` running?)"))?;
            stream.set_read_timeout(Some(TIMEOUT))?;
            exchange(stream, &head, body)?
        }
        ControlAddr::Tcp(a) => {
            let stream = TcpStream::connect(a)
                .with_context(|| format!("connecting to {addr} (is `dphost run` running?)"))?;
            stream.set_read_timeout(Some(TIMEOUT))?;
            exchange(stream, &head, body)?
        }
    };
    parse(&raw).with_context(|| format!("reading the answer from {addr}"))
}

/// Sends a GET and hands each line of the answer to `line` as it arrives
/// (the answer may stream for ever), until the server ends it or `line`
/// returns false. No read timeout: a stream may be quiet for long.
pub fn stream_lines(addr: &ControlAddr, path: &str, line: impl FnMut(&str) -> bool) -> Result<()> {
    let head = format!("GET {path} HTTP/1.1\r\nHost: dphost\r\nConnection: close\r\n\r\n");
    let connect = || format!("connecting to {addr} (is `dphost run` running?)");
    match addr {
        ControlAddr::Unix(p) => {
            let stream = UnixStream::connect(p).with_context(connect)?;
            read_lines(stream, &head, line)
        }
        ControlAddr::Tcp(a) => {
            let stream = TcpStream::connect(a).with_context(connect)?;
            read_lines(stream, &head, line)
        }
    }
}

fn read_lines(
    mut stream: impl Read + Write,
    head: &str,
    mut line: impl FnMut(&str) -> bool,
) -> Result<()> {
    stream.write_all(head.as_bytes())?;
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    reader.read_line(&mut status)?;
    let code: u16 = status
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("not an HTTP answer")?;
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
        bail!("{code}: {}", String::from_utf8_lossy(&body).trim());
    }
    let mut pending = Vec::new();
    let mut feed = |bytes: &[u8]| -> Result<bool> {
        pending.extend_from_slice(bytes);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let text: Vec<u8> = pending.drain(..=end).collect();
            if !line(std::str::from_utf8(&text[..end]).context("a line is not UTF-8")?) {
                return Ok(false);
            }
        }
        Ok(true)
    };
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let size = if chunked {
            let mut size_line = String::new();
            reader.read_line(&mut size_line)?;
            let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
                .context("bad chunked encoding")?;
            if size == 0 {
                return Ok(());
            }
            if buf.len() < size {
                buf.resize(size, 0);
            }
            reader.read_exact(&mut buf[..size])?;
            let mut crlf = [0u8; 2];
            reader.read_exact(&mut crlf)?;
            size
        } else {
            match reader.read(&mut buf)? {
                0 => return Ok(()),
                n => n,
            }
        };
        if !feed(&buf[..size])? {
            return Ok(());
        }
    }
}

fn exchange(mut stream: impl Read + Write, head: &str, body: &str) -> Result<Vec<u8>> {
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    Ok(raw)
}

fn parse(raw: &[u8]) -> Result<Answer> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(at) = response.parse(raw)? else {
        bail!("incomplete HTTP answer");
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
        body: String::from_utf8(body).context("answer is not UTF-8")?,
    })
}

fn dechunk(mut raw: &[u8]) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = raw
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("bad chunked encoding")?;
        let size_text = std::str::from_utf8(&raw[..line_end])?;
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        body.extend_from_slice(raw.get(..size).context("truncated chunk")?);
        raw = raw.get(size + 2..).context("truncated chunk")?;
    }
}
