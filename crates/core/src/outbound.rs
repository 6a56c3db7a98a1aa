//! Outbound HTTP on a client's say-so (alert webhooks): only `http` and `https`; a host that
//! resolves to a loopback, private, link-local, shared, multicast or unspecified address is
//! refused unless explicitly allowed; and a request connects to the very address that was
//! checked (no second lookup, no proxy), so a name cannot be rebound between check and use.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Whether an address is one a webhook may not reach without an explicit allowance.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1])) // shared (CGNAT)
                || (o[0] == 198 && (18..20).contains(&o[1])) // benchmarking
                || o[0] >= 240
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
        }
    }
}

/// A target that passed [`check`]: the URL and the address to connect to.
#[derive(Debug, Clone)]
pub struct Target {
    url: reqwest::Url,
    addr: SocketAddr,
}

/// Parses `url`, resolves its host and refuses it unless allowed; errors say why.
pub async fn check(url: &str, allow_private: bool) -> Result<Target, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("webhook url '{url}': {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("webhook url '{url}': only http and https are allowed"));
    }
    let host = parsed
        .host_str()
        .ok_or_else(|| format!("webhook url '{url}' has no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = parsed.port_or_known_default().unwrap_or(80);
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| format!("webhook url '{url}': {host} does not resolve: {e}"))?
        .collect();
    let Some(first) = addrs.first().copied() else {
        return Err(format!("webhook url '{url}': {host} does not resolve"));
    };
    if !allow_private && let Some(bad) = addrs.iter().find(|a| is_private(a.ip())) {
        return Err(format!(
            "webhook url '{url}': {host} resolves to {}, a private or local address; \
             set allow_private to send there",
            bad.ip()
        ));
    }
    Ok(Target { url: parsed, addr: first })
}

/// POSTs `body` as JSON to a checked target, connected to the checked address; `Ok` on 2xx.
pub async fn post_json(
    target: &Target,
    headers: &[(&str, String)],
    body: &str,
    timeout: Duration,
) -> Result<(), String> {
    crate::init_tls();
    let host = target.url.host_str().unwrap_or_default().to_string();
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .resolve(&host, target.addr)
        .build()
        .map_err(|e| e.to_string())?;
    let mut request = client.post(target.url.clone()).header("Content-Type", "application/json");
    for (k, v) in headers {
        request = request.header(*k, v);
    }
    let response = request.body(body.to_string()).send().await.map_err(|e| e.to_string())?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("the receiver answered {}", response.status()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_local_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "224.0.0.1",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "172.32.0.1"] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn targets_are_checked() {
        assert!(check("file:///etc/passwd", true).await.unwrap_err().contains("only http"));
        assert!(check("http://127.0.0.1:9/x", false).await.unwrap_err().contains("private"));
        assert!(check("http://127.0.0.1:9/x", true).await.is_ok());
        assert!(check("http://169.254.169.254/", false).await.unwrap_err().contains("private"));
    }
}
