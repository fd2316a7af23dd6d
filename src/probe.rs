//! `switchyard healthcheck`: one HTTP GET of an instance's own endpoint, for container health
//! checks and for scripts that cannot reach the instance from outside (the images carry no
//! curl). Plain blocking std I/O with deadlines: no runtime is needed for one request.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// What to ask, and how long the whole exchange may take per step (connect, write, read).
#[derive(Debug, Clone)]
pub struct Probe {
    pub addr: SocketAddr,
    pub path: String,
    pub timeout: Duration,
}

/// The status and body of the answer.
#[derive(Debug, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Answer {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

impl Probe {
    /// GET `path` over HTTP/1.1 with `Connection: close`, reading the answer to its end.
    pub fn get(&self) -> io::Result<Answer> {
        let mut stream = TcpStream::connect_timeout(&self.addr, self.timeout)?;
        stream.set_read_timeout(Some(self.timeout))?;
        stream.set_write_timeout(Some(self.timeout))?;
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nUser-Agent: switchyard-healthcheck\r\n\r\n",
            self.path, self.addr
        );
        stream.write_all(request.as_bytes())?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw)?;
        parse(&raw)
    }
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// Parses an HTTP/1.1 answer: the status line's code, and the body (de-chunked if chunked).
fn parse(raw: &[u8]) -> io::Result<Answer> {
    let split = raw
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .ok_or_else(|| invalid("no end of headers in the answer"))?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let status = head
        .lines()
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| invalid("no status line in the answer"))?;
    let chunked = head.lines().any(|line| {
        let line = line.to_ascii_lowercase();
        line.starts_with("transfer-encoding:") && line.contains("chunked")
    });
    let body = &raw[split + 4..];
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_vec()
    };
    Ok(Answer {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn dechunk(mut body: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = body
            .windows(2)
            .position(|window| window == b"\r\n")
            .ok_or_else(|| invalid("truncated chunk size"))?;
        let size_text = String::from_utf8_lossy(&body[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| invalid("bad chunk size"))?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        let chunk = body.get(..size).ok_or_else(|| invalid("truncated chunk"))?;
        out.extend_from_slice(chunk);
        body = body.get(size + 2..).unwrap_or_default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::thread;

    fn serve_once(answer: &'static [u8]) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        thread::spawn(move || {
            let (mut socket, _) = listener.accept().expect("accept");
            let mut request = Vec::new();
            let mut byte = [0u8; 1];
            while !request.ends_with(b"\r\n\r\n") {
                socket.read_exact(&mut byte).expect("read the request");
                request.push(byte[0]);
            }
            assert!(request.starts_with(b"GET /readyz HTTP/1.1\r\n"));
            socket.write_all(answer).expect("write");
        });
        addr
    }

    fn probe(addr: SocketAddr) -> Probe {
        Probe {
            addr,
            path: "/readyz".into(),
            timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn reads_status_and_body() {
        let addr =
            serve_once(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 7\r\n\r\ndrained");
        let answer = probe(addr).get().expect("answer");
        assert_eq!(answer.status, 503);
        assert_eq!(answer.body, "drained");
        assert!(!answer.is_success());
    }

    #[test]
    fn dechunks_a_chunked_body() {
        let addr = serve_once(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nread\r\n1\r\ny\r\n0\r\n\r\n",
        );
        let answer = probe(addr).get().expect("answer");
        assert_eq!((answer.status, answer.body.as_str()), (200, "ready"));
        assert!(answer.is_success());
    }

    #[test]
    fn a_garbled_answer_is_an_error() {
        let addr = serve_once(b"nonsense");
        assert_eq!(
            probe(addr).get().expect_err("garbled").kind(),
            io::ErrorKind::InvalidData
        );
    }

    #[test]
    fn a_closed_port_is_an_error() {
        let addr = TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr");
        assert!(probe(addr).get().is_err());
    }
}
