//! A tiny DNS client over UDP: one question, the answer section decoded
//! for the record types the DNS-record operator manages. Enough to check
//! that a record really resolves, without a resolver library or `dig`.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::Duration;

/// A record type to ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// IPv4 address.
    A,
    /// IPv6 address.
    Aaaa,
    /// Alias.
    Cname,
    /// Text.
    Txt,
    /// Mail exchanger.
    Mx,
}

impl RecordKind {
    fn code(self) -> u16 {
        match self {
            RecordKind::A => 1,
            RecordKind::Cname => 5,
            RecordKind::Mx => 15,
            RecordKind::Txt => 16,
            RecordKind::Aaaa => 28,
        }
    }
}

/// The server's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The response code: 0 NOERROR, 3 NXDOMAIN, …
    pub rcode: u8,
    /// The answer records of the asked type, as zone-file text (`192.0.2.1`,
    /// `web.example.org.`, `"some text"`, `10 mail.example.org.`), with their TTLs.
    pub records: Vec<(String, u32)>,
}

impl Answer {
    /// The record data alone, sorted.
    pub fn contents(&self) -> Vec<String> {
        let mut contents: Vec<String> = self.records.iter().map(|(c, _)| c.clone()).collect();
        contents.sort();
        contents
    }
}

/// Asks `server` for `name` (`www.example.org.`) of `kind`, over UDP, with
/// a 2 s timeout.
pub fn query(server: SocketAddr, name: &str, kind: RecordKind) -> io::Result<Answer> {
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    socket.set_read_timeout(Some(Duration::from_secs(2)))?;
    socket.connect(server)?;
    let mut id = [0u8; 2];
    // An id that varies per query is enough to pair answers with questions here.
    id.copy_from_slice(&(std::process::id() as u16 ^ name.len() as u16).to_be_bytes());
    let mut packet = Vec::with_capacity(64);
    packet.extend_from_slice(&id);
    packet.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]); // RD, one question
    for label in name.trim_end_matches('.').split('.') {
        let len = u8::try_from(label.len())
            .ok()
            .filter(|l| (1..=63).contains(l))
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, format!("bad label in {name}"))
            })?;
        packet.push(len);
        packet.extend_from_slice(label.as_bytes());
    }
    packet.push(0);
    packet.extend_from_slice(&kind.code().to_be_bytes());
    packet.extend_from_slice(&1u16.to_be_bytes()); // IN
    socket.send(&packet)?;
    let mut buffer = [0u8; 4096];
    let len = socket.recv(&mut buffer)?;
    parse(&buffer[..len], &id, kind)
}

fn bad(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("malformed DNS answer: {what}"),
    )
}

fn parse(message: &[u8], id: &[u8], kind: RecordKind) -> io::Result<Answer> {
    if message.len() < 12 || &message[..2] != id {
        return Err(bad("header"));
    }
    let rcode = message[3] & 0x0f;
    let questions = u16::from_be_bytes([message[4], message[5]]);
    let answers = u16::from_be_bytes([message[6], message[7]]);
    let mut at = 12;
    for _ in 0..questions {
        at = skip_name(message, at)? + 4;
    }
    let mut records = Vec::new();
    for _ in 0..answers {
        at = skip_name(message, at)?;
        let field = |offset: usize, len: usize| {
            message
                .get(at + offset..at + offset + len)
                .ok_or_else(|| bad("record"))
        };
        let kind_code = u16::from_be_bytes(field(0, 2)?.try_into().map_err(|_| bad("type"))?);
        let ttl = u32::from_be_bytes(field(4, 4)?.try_into().map_err(|_| bad("ttl"))?);
        let rdlen =
            u16::from_be_bytes(field(8, 2)?.try_into().map_err(|_| bad("rdlength"))?) as usize;
        let rdata_at = at + 10;
        let rdata = message
            .get(rdata_at..rdata_at + rdlen)
            .ok_or_else(|| bad("rdata"))?;
        at = rdata_at + rdlen;
        if kind_code != kind.code() {
            continue;
        }
        let text = match kind {
            RecordKind::A => {
                let octets: [u8; 4] = rdata.try_into().map_err(|_| bad("A"))?;
                Ipv4Addr::from(octets).to_string()
            }
            RecordKind::Aaaa => {
                let octets: [u8; 16] = rdata.try_into().map_err(|_| bad("AAAA"))?;
                Ipv6Addr::from(octets).to_string()
            }
            RecordKind::Cname => read_name(message, rdata_at)?,
            RecordKind::Mx => {
                let preference = u16::from_be_bytes(
                    rdata
                        .get(..2)
                        .ok_or_else(|| bad("MX"))?
                        .try_into()
                        .map_err(|_| bad("MX"))?,
                );
                format!("{preference} {}", read_name(message, rdata_at + 2)?)
            }
            RecordKind::Txt => {
                let mut strings = Vec::new();
                let mut i = 0;
                while i < rdata.len() {
                    let len = rdata[i] as usize;
                    let part = rdata.get(i + 1..i + 1 + len).ok_or_else(|| bad("TXT"))?;
                    strings.push(format!("\"{}\"", String::from_utf8_lossy(part)));
                    i += 1 + len;
                }
                strings.join(" ")
            }
        };
        records.push((text, ttl));
    }
    Ok(Answer { rcode, records })
}

fn skip_name(message: &[u8], mut at: usize) -> io::Result<usize> {
    loop {
        let len = *message.get(at).ok_or_else(|| bad("name"))?;
        if len & 0xc0 == 0xc0 {
            return Ok(at + 2);
        }
        if len == 0 {
            return Ok(at + 1);
        }
        at += 1 + len as usize;
    }
}

fn read_name(message: &[u8], mut at: usize) -> io::Result<String> {
    let mut name = String::new();
    // Bounded, so that a pointer loop cannot spin.
    for _ in 0..128 {
        let len = *message.get(at).ok_or_else(|| bad("name"))?;
        if len & 0xc0 == 0xc0 {
            let low = *message.get(at + 1).ok_or_else(|| bad("pointer"))?;
            at = (usize::from(len & 0x3f) << 8) | usize::from(low);
            continue;
        }
        if len == 0 {
            return Ok(if name.is_empty() { ".".into() } else { name });
        }
        let label = message
            .get(at + 1..at + 1 + len as usize)
            .ok_or_else(|| bad("label"))?;
        name.push_str(&String::from_utf8_lossy(label).to_ascii_lowercase());
        name.push('.');
        at += 1 + len as usize;
    }
    Err(bad("name pointers loop"))
}
