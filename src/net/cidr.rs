//! IPv4 prefixes (`198.18.0.0/24`) and address arithmetic for IPAM.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An IPv4 network prefix, always stored with the host bits cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cidr {
    pub addr: Ipv4Addr,
    pub len: u8,
}

impl Cidr {
    pub fn new(addr: Ipv4Addr, len: u8) -> Option<Cidr> {
        (len <= 32).then(|| Cidr {
            addr: Ipv4Addr::from(u32::from(addr) & mask(len)),
            len,
        })
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.len) == u32::from(self.addr)
    }

    pub fn overlaps(&self, other: &Cidr) -> bool {
        let m = mask(self.len.min(other.len));
        u32::from(self.addr) & m == u32::from(other.addr) & m
    }

    pub fn network(&self) -> u32 {
        u32::from(self.addr)
    }

    pub fn broadcast(&self) -> u32 {
        self.network() | !mask(self.len)
    }

    /// Usable host addresses (network and broadcast excluded; a /31 or /32 has none here).
    pub fn hosts(&self) -> impl Iterator<Item = Ipv4Addr> {
        let (first, last) = if self.len >= 31 {
            (1, 0)
        } else {
            (self.network() + 1, self.broadcast() - 1)
        };
        (first..=last).map(Ipv4Addr::from)
    }

    /// Whether `ip` is a usable host address of this prefix.
    pub fn is_host(&self, ip: Ipv4Addr) -> bool {
        let n = u32::from(ip);
        self.contains(ip) && self.len < 31 && n != self.network() && n != self.broadcast()
    }
}

fn mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for Cidr {
    type Err = String;
    /// Parses `A.B.C.D/N`; host bits must be zero (`198.18.0.1/24` is refused).
    fn from_str(s: &str) -> Result<Cidr, String> {
        let (a, l) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not in A.B.C.D/N form"))?;
        let addr: Ipv4Addr = a
            .parse()
            .map_err(|_| format!("{a:?} is not an IPv4 address"))?;
        let len: u8 = l
            .parse()
            .ok()
            .filter(|n| *n <= 32)
            .ok_or_else(|| format!("prefix length {l:?} is not 0..32"))?;
        let c = Cidr::new(addr, len).expect("length checked");
        if c.addr != addr {
            return Err(format!("{s} has host bits set; did you mean {c}?"));
        }
        Ok(c)
    }
}

impl TryFrom<String> for Cidr {
    type Error = String;
    fn try_from(s: String) -> Result<Cidr, String> {
        s.parse()
    }
}

impl From<Cidr> for String {
    fn from(c: Cidr) -> String {
        c.to_string()
    }
}

/// The lowest usable address of `subnet` that is neither the gateway nor taken.
pub fn pick_free(
    subnet: &Cidr,
    gateway: Ipv4Addr,
    taken: &std::collections::HashSet<Ipv4Addr>,
) -> Option<Ipv4Addr> {
    subnet
        .hosts()
        .find(|ip| *ip != gateway && !taken.contains(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_arithmetic() {
        let c: Cidr = "198.18.0.0/24".parse().unwrap();
        assert_eq!(c.to_string(), "198.18.0.0/24");
        assert!(c.contains("198.18.0.77".parse().unwrap()));
        assert!(!c.contains("198.18.1.1".parse().unwrap()));
        assert!(c.is_host("198.18.0.1".parse().unwrap()));
        assert!(!c.is_host("198.18.0.255".parse().unwrap()));
        assert!(!c.is_host("198.18.0.0".parse().unwrap()));
        assert_eq!(c.hosts().count(), 254);
        let big: Cidr = "198.18.0.0/16".parse().unwrap();
        assert!(big.overlaps(&c) && c.overlaps(&big));
        assert!(!c.overlaps(&"198.18.1.0/24".parse().unwrap()));
        for bad in ["198.18.0.1/24", "198.18.0.0", "x/24", "198.18.0.0/33"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
        assert!("198.18.0.1/24"
            .parse::<Cidr>()
            .unwrap_err()
            .contains("198.18.0.0/24"));
    }

    #[test]
    fn picks_lowest_free_address() {
        let c: Cidr = "198.18.3.0/30".parse().unwrap();
        let gw: Ipv4Addr = "198.18.3.1".parse().unwrap();
        let mut taken = std::collections::HashSet::new();
        assert_eq!(
            pick_free(&c, gw, &taken),
            Some("198.18.3.2".parse().unwrap())
        );
        taken.insert("198.18.3.2".parse().unwrap());
        assert_eq!(pick_free(&c, gw, &taken), None);
    }
}
