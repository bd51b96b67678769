//! Kubernetes' naming rules (DNS-1123), checked before a name from a request reaches the API
//! server: `?` would turn a GET into a LIST, `x/status` reach a subresource, `..` walk a path.

/// A DNS-1123 label (namespaces, workspace slugs): at most 63 lowercase letters, digits and
/// '-', starting and ending with a letter or digit.
pub fn is_dns_label(s: &str) -> bool {
    s.len() <= 63 && is_label_shaped(s)
}

/// Lowercase letters, digits and '-', starting and ending with a letter or digit.
fn is_label_shaped(s: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    !s.is_empty() && s.chars().all(|c| alnum(c) || c == '-') && s.starts_with(alnum) && s.ends_with(alnum)
}

/// A DNS-1123 subdomain (object names such as nodes, Deployments, migrations): at most 253
/// characters of label-shaped parts joined by '.'. As in Kubernetes (`IsDNS1123Subdomain`) a
/// part may be longer than 63: Karpenter's kwok Nodes are named so.
pub fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_label_shaped)
}

/// `Ok` for a valid object name; otherwise a message that says what is allowed.
pub fn check_name(what: &str, name: &str) -> Result<(), String> {
    if is_dns_subdomain(name) {
        Ok(())
    } else {
        Err(format!(
            "\"{}\" is not a valid {what} name: use lowercase letters, digits, '-' and '.', at most 253 characters, starting and ending with a letter or digit.",
            shorten(name)
        ))
    }
}

/// `Ok` for a valid namespace (or workspace) name.
pub fn check_namespace(name: &str) -> Result<(), String> {
    if is_dns_label(name) {
        Ok(())
    } else {
        Err(format!(
            "\"{}\" is not a valid namespace name: use lowercase letters, digits and '-', at most 63 characters, starting and ending with a letter or digit.",
            shorten(name)
        ))
    }
}

/// A long name is quoted back in part: the message stays readable.
fn shorten(s: &str) -> String {
    if s.chars().count() <= 70 {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(60).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_dns_1123() {
        for ok in ["web", "acme-production-1a2b3c", "a", "web.v2", "0-9", "kwok-acme-production-c8eb03-headsaber-3-6jnlkwl4u7-3173969978"] {
            assert!(check_name("node", ok).is_ok(), "{ok}");
        }
        for bad in ["?", "a/status", "..", "A_B", "-web", "web-", "", "a..b", "we b", &"a".repeat(300)] {
            let e = check_name("node", bad).unwrap_err();
            assert!(e.contains("is not a valid node name"), "{bad}: {e}");
        }
        assert!(check_namespace("acme-production").is_ok());
        assert!(check_namespace("a.b").is_err(), "a namespace is a label: no dots");
        assert!(check_namespace(&"a".repeat(64)).is_err());
        assert!(check_name("node", &"a".repeat(300)).unwrap_err().len() < 300, "long input is not echoed whole");
    }
}
