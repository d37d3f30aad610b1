//! Ethernet MAC addresses: parsed from the config and the state file, read from the kernel,
//! drawn at random for new children, always written `02:42:ac:10:0a:14`.
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// A random locally administered unicast MAC, as Docker and CNI give new children.
    pub fn random() -> Self {
        let mut octets: [u8; 6] = rand::random();
        // Locally administered (bit 1 set), unicast (bit 0 clear).
        octets[0] = (octets[0] & 0xfe) | 0x02;
        Mac(octets)
    }

    /// The MAC of an endpoint of a cluster network: 02:42 and the low 32 bits of its address
    /// (Docker's scheme for IPv4). Addresses are unique across the cluster's hosts, so these MACs
    /// are too, without any coordination of their own.
    pub fn from_address(addr: std::net::IpAddr) -> Self {
        let low = match addr {
            std::net::IpAddr::V4(a) => a.octets(),
            std::net::IpAddr::V6(a) => {
                let o = a.octets();
                [o[12], o[13], o[14], o[15]]
            }
        };
        Mac([0x02, 0x42, low[0], low[1], low[2], low[3]])
    }

    pub fn octets(self) -> [u8; 6] {
        self.0
    }
}

impl From<[u8; 6]> for Mac {
    fn from(octets: [u8; 6]) -> Self {
        Mac(octets)
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// Parses a MAC a user may give a child: six hex bytes, unicast, not all zero. The error says
/// what is wrong and how to write one.
impl FromStr for Mac {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("`{text}` is not a MAC address: write six hex bytes like \"02:42:ac:10:0a:05\"");
        let mut octets = [0u8; 6];
        let mut parts = text.split(':');
        for octet in &mut octets {
            let part = parts.next().filter(|p| p.len() == 2).ok_or_else(bad)?;
            *octet = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        if octets[0] & 1 == 1 {
            return Err(format!("{text} is a multicast MAC: the first byte must be even (e.g. 02:...)"));
        }
        if octets == [0; 6] {
            return Err(format!("{text} is the all-zero MAC: use a real unicast address"));
        }
        Ok(Mac(octets))
    }
}

impl Serialize for Mac {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Mac {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_the_same_text() {
        let mac: Mac = "02:42:AC:10:0a:14".parse().unwrap();
        assert_eq!(mac.octets(), [0x02, 0x42, 0xac, 0x10, 0x0a, 0x14]);
        assert_eq!(mac.to_string(), "02:42:ac:10:0a:14");
        assert_eq!(serde_json::to_string(&mac).unwrap(), "\"02:42:ac:10:0a:14\"");
        assert_eq!(serde_json::from_str::<Mac>("\"02:42:ac:10:0a:14\"").unwrap(), mac);
    }

    #[test]
    fn refuses_what_a_child_cannot_have() {
        for bad in ["02:42:ac:10:0a", "02:42:ac:10:0a:14:00", "02:42:ac:10:0a:1", "zz:42:ac:10:0a:14", "0242.ac10.0a14"] {
            assert!(bad.parse::<Mac>().unwrap_err().contains("is not a MAC address"), "{bad}");
        }
        assert!("01:00:5e:00:00:01".parse::<Mac>().unwrap_err().contains("multicast"));
        assert!("00:00:00:00:00:00".parse::<Mac>().unwrap_err().contains("all-zero"));
    }

    #[test]
    fn random_macs_are_local_unicast() {
        for _ in 0..100 {
            let first = Mac::random().octets()[0];
            assert_eq!(first & 0x03, 0x02);
        }
    }
}
