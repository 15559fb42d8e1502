//! `user@address[:port]` host specifications.

use std::fmt;

/// A host as given on the command line: `user@address[:port]`, `address`, `[v6]:port`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HostSpec {
    /// Login user (`None`: whatever the ssh config says).
    pub user: Option<String>,
    /// Host name, alias from the ssh config, or IP address (IPv6 without brackets).
    pub address: String,
    /// TCP port (`None`: the ssh config's or 22).
    pub port: Option<u16>,
}

/// Why a host specification was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HostSpecError {
    /// Nothing after the `@` (or nothing at all).
    #[error("`{spec}` names no host: write user@address[:port]")]
    Empty {
        /// The input.
        spec: String,
    },
    /// A port that is not a number from 1 to 65535.
    #[error("`{spec}`: `{port}` is not a TCP port (1-65535)")]
    BadPort {
        /// The input.
        spec: String,
        /// The port text.
        port: String,
    },
    /// Characters ssh would read as options or that no host name has.
    #[error("`{spec}`: a host or user may not start with `-` or contain spaces, quotes, `%` or pattern characters (`*?!,`)")]
    BadCharacters {
        /// The input.
        spec: String,
    },
}

impl HostSpec {
    /// Parses `user@address[:port]`; IPv6 addresses take brackets when a port follows.
    pub fn parse(spec: &str) -> Result<Self, HostSpecError> {
        let text = spec.trim();
        let (user, rest) = match text.rsplit_once('@') {
            Some((user, rest)) => (Some(user.to_owned()), rest),
            None => (None, text),
        };
        let (address, port) = if let Some(inner) = rest.strip_prefix('[') {
            let (address, after) = inner.split_once(']').ok_or_else(|| HostSpecError::Empty {
                spec: spec.to_owned(),
            })?;
            let port = match after.strip_prefix(':') {
                Some(port) => Some(port),
                None if after.is_empty() => None,
                None => {
                    return Err(HostSpecError::BadCharacters {
                        spec: spec.to_owned(),
                    })
                }
            };
            (address, port)
        } else if rest.matches(':').count() == 1 {
            let (address, port) = rest.split_once(':').unwrap_or((rest, ""));
            (address, Some(port))
        } else {
            (rest, None)
        };
        if address.is_empty() || user.as_deref() == Some("") {
            return Err(HostSpecError::Empty {
                spec: spec.to_owned(),
            });
        }
        let bad = |s: &str| {
            s.starts_with('-')
                || s.chars()
                    .any(|c| c.is_whitespace() || c.is_control() || "'\"%\\*?!,".contains(c))
        };
        if bad(address) || user.as_deref().is_some_and(bad) {
            return Err(HostSpecError::BadCharacters {
                spec: spec.to_owned(),
            });
        }
        let port = port
            .map(|p| {
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| HostSpecError::BadPort {
                        spec: spec.to_owned(),
                        port: p.to_owned(),
                    })
            })
            .transpose()?;
        Ok(Self {
            user,
            address: address.to_owned(),
            port,
        })
    }

    /// The name pins are recorded under, as known_hosts writes it: `address`, or `[address]:port`
    /// for a port other than 22.
    pub fn name(&self) -> String {
        match self.port {
            Some(port) if port != 22 => format!("[{}]:{port}", self.address),
            _ => self.address.clone(),
        }
    }
}

impl fmt::Display for HostSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(user) = &self.user {
            write!(f, "{user}@")?;
        }
        match self.port {
            Some(port) if self.address.contains(':') => write!(f, "[{}]:{port}", self.address),
            Some(port) => write!(f, "{}:{port}", self.address),
            None => write!(f, "{}", self.address),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_address_and_port_are_split() {
        let spec = HostSpec::parse("root@10.0.0.1:2222").unwrap();
        assert_eq!(spec.user.as_deref(), Some("root"));
        assert_eq!(spec.address, "10.0.0.1");
        assert_eq!(spec.port, Some(2222));
        assert_eq!(spec.name(), "[10.0.0.1]:2222");
        assert_eq!(spec.to_string(), "root@10.0.0.1:2222");
    }

    #[test]
    fn bare_names_and_ipv6_are_accepted() {
        assert_eq!(HostSpec::parse("web01").unwrap().name(), "web01");
        let v6 = HostSpec::parse("admin@[::1]:22").unwrap();
        assert_eq!((v6.address.as_str(), v6.port), ("::1", Some(22)));
        assert_eq!(v6.name(), "::1");
        assert_eq!(HostSpec::parse("fe80::1").unwrap().port, None);
    }

    #[test]
    fn option_lookalikes_and_bad_ports_are_refused() {
        assert!(matches!(
            HostSpec::parse("-oProxyCommand=x"),
            Err(HostSpecError::BadCharacters { .. })
        ));
        assert!(matches!(
            HostSpec::parse("-l@host"),
            Err(HostSpecError::BadCharacters { .. })
        ));
        assert!(matches!(
            HostSpec::parse("h:0"),
            Err(HostSpecError::BadPort { .. })
        ));
        assert!(matches!(
            HostSpec::parse("h:99999"),
            Err(HostSpecError::BadPort { .. })
        ));
        assert!(matches!(
            HostSpec::parse("root@"),
            Err(HostSpecError::Empty { .. })
        ));
    }
}
