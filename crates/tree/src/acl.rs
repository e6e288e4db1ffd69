//! ACL checks as ZooKeeper's `ZooKeeperServer.checkACL`, `PrepRequestProcessor.fixupACL`
//! and the built-in `digest` and `ip` authentication providers.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use base64::Engine as _;
use rookery_wire::{Acl, ErrorCode, Id};
use sha1::{Digest as _, Sha1};

/// A znode's ACL, shared. Most znodes carry one of a few ACLs, so the tree keeps one
/// copy of each (as ZooKeeper's `ReferenceCountedACLCache` does), and a write's prep
/// record and watch triggers take a reference instead of copying the list.
/// `Arc<Vec<_>>`, not `Arc<[_]>`: a one-word pointer keeps `Arc<Node>` in a smaller
/// allocator class, for one more indirection on an ACL check.
pub type AclList = Arc<Vec<Acl>>;

/// An interned list, found in the cache by its contents.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Interned(AclList);

impl std::borrow::Borrow<[Acl]> for Interned {
    fn borrow(&self) -> &[Acl] {
        &self.0
    }
}

/// One [`AclList`] per distinct ACL in the tree.
///
/// Lists no znode uses any more are dropped when the set has doubled since the last
/// sweep, so a workload of ever-new ACLs costs amortized O(1) per create; the list
/// interned last stays while it is the last one.
#[derive(Debug, Clone, Default)]
pub struct AclCache {
    lists: HashSet<Interned>,
    sweep_at: usize,
    /// The list interned last, compared before the set is hashed: creates mostly
    /// repeat one ACL (a replay of a bulk load: every create), and hashing it
    /// (SipHash over its strings) was 4% of applying a create.
    last: Option<AclList>,
}

/// Below this many lists the cache is never swept.
const ACL_CACHE_MIN_SWEEP: usize = 64;

impl AclCache {
    pub fn intern(&mut self, acl: &[Acl]) -> AclList {
        if let Some(last) = self.last.as_ref().filter(|last| last.as_slice() == acl) {
            return Arc::clone(last);
        }
        let list = self.intern_in_set(acl);
        // Held here, a list survives the sweeps while it is the last one: one list.
        self.last = Some(Arc::clone(&list));
        list
    }

    fn intern_in_set(&mut self, acl: &[Acl]) -> AclList {
        if let Some(list) = self.lists.get(acl) {
            return Arc::clone(&list.0);
        }
        if self.lists.len() >= self.sweep_at.max(ACL_CACHE_MIN_SWEEP) {
            self.lists.retain(|list| Arc::strong_count(&list.0) > 1);
            self.sweep_at = self.lists.len() * 2;
        }
        let list = AclList::new(acl.to_vec());
        self.lists.insert(Interned(Arc::clone(&list)));
        list
    }

    /// Distinct lists held (some may be unused until the next sweep).
    pub fn len(&self) -> usize {
        self.lists.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lists.is_empty()
    }
}

/// The cache is not replicated state: two trees with the same znodes are equal
/// whatever their caches hold.
impl PartialEq for AclCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for AclCache {}

/// The `digest` scheme's id for a user and password: `user:base64(sha1("user:password"))`
/// (`DigestAuthenticationProvider.generateDigest`).
pub fn digest_for(user: &str, password: &str) -> String {
    let hash = Sha1::digest(format!("{user}:{password}").as_bytes());
    format!(
        "{user}:{}",
        base64::engine::general_purpose::STANDARD.encode(hash)
    )
}

/// The ids a session gains from `addauth digest user:password`: the digest id, plus
/// `super:` when it matches the configured super digest.
pub fn digest_auth_ids(user_password: &str, super_digest: Option<&str>) -> Vec<Id> {
    let (user, password) = user_password.split_once(':').unwrap_or((user_password, ""));
    let digest = if user_password.contains(':') {
        digest_for(user, password)
    } else {
        // Java hashes the whole string and keeps it as the user part.
        let hash = Sha1::digest(user_password.as_bytes());
        format!(
            "{user_password}:{}",
            base64::engine::general_purpose::STANDARD.encode(hash)
        )
    };
    let mut ids = Vec::new();
    if super_digest == Some(digest.as_str()) {
        ids.push(Id::new("super", ""));
    }
    ids.push(Id::new("digest", digest));
    ids
}

/// Which ACL schemes the server knows besides `world`, `auth`, `digest` and `ip`
/// (e.g. `sasl`, `x509`): ids of these schemes are accepted verbatim, match by
/// equality and count as authenticated for the `auth` scheme.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthSchemes {
    pub extra: BTreeSet<String>,
}

impl AuthSchemes {
    fn is_authenticated(&self, scheme: &str) -> bool {
        scheme == "digest" || self.extra.contains(scheme)
    }

    fn is_valid(&self, id: &Id) -> bool {
        match id.scheme.as_str() {
            "digest" => java_split_count(&id.id, ':') == 2,
            "ip" => ip_acl_valid(&id.id),
            s => self.extra.contains(s),
        }
    }

    fn matches(&self, scheme: &str, auth_id: &str, acl_id: &str) -> bool {
        match scheme {
            "ip" => ip_matches(auth_id, acl_id),
            "digest" => auth_id == acl_id,
            s if self.extra.contains(s) => auth_id == acl_id,
            _ => false,
        }
    }
}

/// `String.split(sep).length` in Java: trailing empty strings are dropped.
fn java_split_count(s: &str, sep: char) -> usize {
    if s.is_empty() {
        return 1;
    }
    let mut parts: Vec<&str> = s.split(sep).collect();
    while parts.last().is_some_and(|p| p.is_empty()) {
        parts.pop();
    }
    parts.len()
}

/// Whether a session with `auth` ids may do `perm` on a node with `acl`. An empty ACL
/// allows everything; a `super` id (or `is_super`) bypasses all checks.
pub fn check(schemes: &AuthSchemes, acl: &[Acl], perm: i32, auth: &[Id], is_super: bool) -> bool {
    if acl.is_empty() || is_super || auth.iter().any(|id| id.scheme == "super") {
        return true;
    }
    acl.iter().any(|a| {
        if a.perms & perm == 0 {
            return false;
        }
        if a.id.scheme == "world" && a.id.id == "anyone" {
            return true;
        }
        auth.iter()
            .any(|id| id.scheme == a.id.scheme && schemes.matches(&id.scheme, &id.id, &a.id.id))
    })
}

/// `fixupACL`: removes duplicates, rejects empty lists and unknown or malformed ids
/// with InvalidACL, and expands `auth` into the session's authenticated ids.
pub fn fixup(schemes: &AuthSchemes, auth: &[Id], acl: &[Acl]) -> Result<Vec<Acl>, ErrorCode> {
    let mut uniq: Vec<&Acl> = Vec::with_capacity(acl.len());
    for a in acl {
        if !uniq.contains(&a) {
            uniq.push(a);
        }
    }
    if uniq.is_empty() {
        return Err(ErrorCode::InvalidAcl);
    }
    let mut out = Vec::with_capacity(uniq.len());
    for a in uniq {
        if a.id.scheme == "world" && a.id.id == "anyone" {
            out.push(a.clone());
        } else if a.id.scheme == "auth" {
            let mut any = false;
            for id in auth {
                if schemes.is_authenticated(&id.scheme) {
                    any = true;
                    out.push(Acl::new(a.perms, id.clone()));
                }
            }
            if !any {
                return Err(ErrorCode::InvalidAcl);
            }
        } else if schemes.is_valid(&a.id) {
            out.push(a.clone());
        } else {
            return Err(ErrorCode::InvalidAcl);
        }
    }
    Ok(out)
}

/// What getACL shows a session without ADMIN: digest ids with the hash replaced by `x`.
pub fn mask_digests(acl: &[Acl]) -> Vec<Acl> {
    acl.iter()
        .map(|a| {
            if a.id.scheme == "digest" {
                let user = a.id.id.split(':').next().unwrap_or("");
                let masked = if a.id.id.contains(':') {
                    format!("{user}:x")
                } else {
                    a.id.id.clone()
                };
                Acl::new(a.perms, Id::new("digest", masked))
            } else {
                a.clone()
            }
        })
        .collect()
}

fn addr_bytes(addr: &str) -> Option<Vec<u8>> {
    if addr.contains(':') {
        v6_bytes(addr)
    } else if addr.contains('.') {
        v4_bytes(addr)
    } else {
        None
    }
}

fn v4_bytes(addr: &str) -> Option<Vec<u8>> {
    let parts: Vec<&str> = addr.split('.').collect();
    if parts.len() != 4 {
        return None;
    }
    parts
        .iter()
        .map(|p| {
            java_parse_int(p, 10)
                .filter(|v| (0..=255).contains(v))
                .map(|v| v as u8)
        })
        .collect()
}

/// `Integer.parseInt`: optional sign, then digits only.
fn java_parse_int(s: &str, radix: u32) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let v = i64::from_str_radix(digits, radix).ok()?;
    let v = if s.starts_with('-') { -v } else { v };
    (i64::from(i32::MIN)..=i64::from(i32::MAX))
        .contains(&v)
        .then_some(v)
}

fn v6_bytes(addr: &str) -> Option<Vec<u8>> {
    let parts: Vec<&str> = addr.split("::").collect();
    let split_segs = |s: &str| -> Vec<String> {
        if s.is_empty() {
            Vec::new()
        } else {
            s.split(':').map(str::to_owned).collect()
        }
    };
    let (first, second) = match parts.len() {
        1 => {
            let segs: Vec<String> = parts[0].split(':').map(str::to_owned).collect();
            if segs.len() != 8 {
                return None;
            }
            (segs, Vec::new())
        }
        2 => {
            let a = split_segs(parts[0]);
            let b = split_segs(parts[1]);
            if a.len() + b.len() >= 8 {
                return None;
            }
            (a, b)
        }
        _ => return None,
    };
    let mut out = vec![0u8; 16];
    let mut put = |start: usize, segs: &[String]| -> Option<()> {
        let mut i = start;
        for seg in segs {
            if seg.is_empty() || seg.len() > 4 {
                return None;
            }
            let v = java_parse_int(seg, 16)?;
            out[i] = ((v >> 8) & 0xff) as u8;
            out[i + 1] = (v & 0xff) as u8;
            i += 2;
        }
        Some(())
    };
    put(0, &first)?;
    put(16 - second.len() * 2, &second)?;
    Some(out)
}

fn mask(b: &mut [u8], bits: usize) {
    let mut start = bits / 8;
    let mut start_mask: u8 = !(((1u16 << (8 - (bits % 8))) - 1) as u8);
    while start < b.len() {
        b[start] &= start_mask;
        start_mask = 0;
        start += 1;
    }
}

fn prefix_bits(expr: &str) -> Option<(Vec<u8>, usize)> {
    let (addr, bits) = match expr.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (expr, None),
    };
    let bytes = addr_bytes(addr)?;
    let max = bytes.len() * 8;
    let bits = match bits {
        Some(b) => {
            let b = java_parse_int(b, 10)?;
            if b < 0 || b as usize > max {
                return None;
            }
            b as usize
        }
        None => max,
    };
    Some((bytes, bits))
}

fn ip_acl_valid(expr: &str) -> bool {
    prefix_bits(expr).is_some()
}

/// `IPAuthenticationProvider.matches`: `addr` or `addr/bits`, IPv4 or IPv6.
pub fn ip_matches(client: &str, acl_expr: &str) -> bool {
    let Some((mut acl_addr, bits)) = prefix_bits(acl_expr) else {
        return false;
    };
    mask(&mut acl_addr, bits);
    let Some(mut remote) = addr_bytes(client) else {
        return false;
    };
    mask(&mut remote, bits);
    remote == acl_addr
}

#[cfg(test)]
mod tests {
    use super::*;
    use rookery_wire::codes::perms;

    #[test]
    fn equal_acls_share_one_list_and_unused_lists_are_swept() {
        let mut cache = AclCache::default();
        let open = cache.intern(&Acl::open_unsafe());
        let again = cache.intern(&Acl::open_unsafe());
        assert!(Arc::ptr_eq(&open, &again));
        assert_eq!(cache.len(), 1);
        // Lists nobody holds go at the sweep; held ones stay shared.
        for n in 0..ACL_CACHE_MIN_SWEEP {
            let id = Id::new("digest", format!("u{n}:x"));
            drop(cache.intern(&[Acl {
                perms: perms::ALL,
                id,
            }]));
        }
        // At the sweep, the open list was held and the one interned just before it
        // was the cache's last; the list that triggered the sweep came after.
        assert_eq!(cache.len(), 3, "the sweep kept only the lists still held");
        // Found in the set, not as the last one interned.
        assert!(Arc::ptr_eq(&open, &cache.intern(&Acl::open_unsafe())));
        // And repeated, as the last one.
        assert!(Arc::ptr_eq(&open, &cache.intern(&Acl::open_unsafe())));
    }

    #[test]
    fn digest_matches_zookeeper() {
        // From ZooKeeper's documentation and DigestAuthenticationProvider main():
        // super:admin -> super:xQJmxLMiHGwaqBvst5y6rkB6HQs=
        assert_eq!(
            digest_for("super", "admin"),
            "super:xQJmxLMiHGwaqBvst5y6rkB6HQs="
        );
        let ids = digest_auth_ids("super:admin", Some("super:xQJmxLMiHGwaqBvst5y6rkB6HQs="));
        assert_eq!(ids[0], Id::new("super", ""));
        assert_eq!(ids.len(), 2);
        assert_eq!(digest_auth_ids("u:p", None).len(), 1);
    }

    #[test]
    fn ip_cidr() {
        assert!(ip_matches("10.1.2.3", "10.1.0.0/16"));
        assert!(!ip_matches("10.2.2.3", "10.1.0.0/16"));
        assert!(ip_matches("10.1.2.3", "10.1.2.3"));
        assert!(!ip_matches("10.1.2.4", "10.1.2.3"));
        assert!(ip_matches("10.1.2.4", "10.1.2.0/29"));
        assert!(!ip_matches("10.1.2.9", "10.1.2.0/29"));
        assert!(ip_matches("1.2.3.4", "0.0.0.0/0"));
        assert!(!ip_matches("1.2.3.4", "1.2.3.4/33"));
        assert!(ip_matches("::1", "::1"));
        assert!(ip_matches("2001:db8::5", "2001:db8::/32"));
        assert!(!ip_matches("2001:db9::5", "2001:db8::/32"));
        assert!(!ip_matches("1.2.3.4", "::/0"), "v4 never matches a v6 acl");
        assert!(!ip_matches("1.2.3", "1.2.3.0/24"));
        assert!(!ip_acl_valid("1.2.3.256"));
        assert!(!ip_acl_valid("host"));
        assert!(ip_acl_valid("1.2.3.4/8"));
    }

    #[test]
    fn check_rules() {
        let s = AuthSchemes::default();
        let acl = vec![Acl::new(
            perms::READ,
            Id::new("digest", digest_for("u", "p")),
        )];
        let u = vec![Id::new("digest", digest_for("u", "p"))];
        let other = vec![Id::new("digest", digest_for("u", "q"))];
        assert!(check(&s, &acl, perms::READ, &u, false));
        assert!(!check(&s, &acl, perms::WRITE, &u, false));
        assert!(!check(&s, &acl, perms::READ, &other, false));
        assert!(check(&s, &acl, perms::WRITE, &other, true));
        assert!(check(
            &s,
            &acl,
            perms::WRITE,
            &[Id::new("super", "")],
            false
        ));
        assert!(check(&s, &[], perms::ADMIN, &[], false));
        let ip = vec![Acl::new(perms::ALL, Id::new("ip", "127.0.0.0/8"))];
        assert!(check(
            &s,
            &ip,
            perms::READ,
            &[Id::new("ip", "127.0.0.1")],
            false
        ));
        assert!(!check(
            &s,
            &ip,
            perms::READ,
            &[Id::new("ip", "10.0.0.1")],
            false
        ));
    }

    #[test]
    fn fixup_rules() {
        let s = AuthSchemes::default();
        let world = Acl::new(perms::ALL, Id::anyone());
        assert_eq!(fixup(&s, &[], &[]), Err(ErrorCode::InvalidAcl));
        assert_eq!(
            fixup(&s, &[], &[world.clone(), world.clone()]).unwrap(),
            vec![world.clone()]
        );
        let bad_world = Acl::new(perms::ALL, Id::new("world", "someone"));
        assert_eq!(fixup(&s, &[], &[bad_world]), Err(ErrorCode::InvalidAcl));
        let auth = Acl::new(perms::ALL, Id::new("auth", ""));
        // ip ids are not "authenticated" ids: auth with only an ip id is invalid.
        assert_eq!(
            fixup(
                &s,
                &[Id::new("ip", "127.0.0.1")],
                std::slice::from_ref(&auth)
            ),
            Err(ErrorCode::InvalidAcl)
        );
        let d = Id::new("digest", digest_for("u", "p"));
        assert_eq!(
            fixup(&s, &[Id::new("ip", "127.0.0.1"), d.clone()], &[auth]).unwrap(),
            vec![Acl::new(perms::ALL, d)]
        );
        let bad_digest = Acl::new(perms::ALL, Id::new("digest", "nocolon"));
        assert_eq!(fixup(&s, &[], &[bad_digest]), Err(ErrorCode::InvalidAcl));
        let unknown = Acl::new(perms::ALL, Id::new("sasl", "bob"));
        assert_eq!(
            fixup(&s, &[], std::slice::from_ref(&unknown)),
            Err(ErrorCode::InvalidAcl)
        );
        let mut with_sasl = AuthSchemes::default();
        with_sasl.extra.insert("sasl".into());
        assert!(fixup(&with_sasl, &[], &[unknown]).is_ok());
    }

    #[test]
    fn masking() {
        let acl = vec![
            Acl::new(perms::ALL, Id::new("digest", "u:abc=")),
            Acl::new(perms::READ, Id::anyone()),
        ];
        let m = mask_digests(&acl);
        assert_eq!(m[0].id.id, "u:x");
        assert_eq!(m[1], acl[1]);
    }
}
