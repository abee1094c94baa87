//! Which bucket an object is in, and which replica owns a bucket: pure
//! functions, the same on every replica and in every version of bosun.
//!
//! - An object's bucket is FNV-1a (64-bit) of its primary's
//!   `namespace/name` (`name` alone for a cluster-scoped primary), mixed
//!   by splitmix64's finaliser, modulo [`BUCKETS`]. A written-down
//!   algorithm, not std's `DefaultHasher`, whose output may change between
//!   Rust releases: replicas built by different compilers must agree.
//! - A bucket's owner is chosen by rendezvous (highest-random-weight)
//!   hashing over the live replicas: each replica scores the bucket with
//!   the same hash of `replica/bucket`, and the highest score wins. A
//!   replica joining takes about 1/n of the buckets, each from whoever had
//!   it; one leaving gives only its own away. No ring of virtual nodes to
//!   tune, and at 64 buckets scoring every replica is free.

use std::collections::BTreeMap;

/// How many buckets objects are spread over. Fixed: changing it moves
/// almost every object, so it is a constant of the protocol, not a flag.
/// 64 keeps a bucket set one `u64` and a label selector short, and spreads
/// well over the handful of replicas one class runs.
pub const BUCKETS: u16 = 64;

/// A set of buckets, one bit each.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Buckets(pub u64);

impl Buckets {
    /// No bucket.
    pub const NONE: Buckets = Buckets(0);

    /// Every bucket.
    pub const ALL: Buckets = Buckets(u64::MAX);

    /// Whether `bucket` is in the set.
    pub fn contains(self, bucket: u16) -> bool {
        bucket < BUCKETS && self.0 & (1 << bucket) != 0
    }

    /// The set with `bucket` added.
    #[must_use]
    pub fn with(self, bucket: u16) -> Buckets {
        if bucket < BUCKETS {
            Buckets(self.0 | (1 << bucket))
        } else {
            self
        }
    }

    /// The buckets in `self` and not in `other`.
    #[must_use]
    pub fn minus(self, other: Buckets) -> Buckets {
        Buckets(self.0 & !other.0)
    }

    /// The buckets in both.
    #[must_use]
    pub fn and(self, other: Buckets) -> Buckets {
        Buckets(self.0 & other.0)
    }

    /// The buckets in either.
    #[must_use]
    pub fn or(self, other: Buckets) -> Buckets {
        Buckets(self.0 | other.0)
    }

    /// How many buckets the set holds.
    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The buckets, in order.
    pub fn iter(self) -> impl Iterator<Item = u16> {
        (0..BUCKETS).filter(move |&b| self.contains(b))
    }

    /// The set as written on a Lease: bucket numbers, comma-separated.
    pub fn to_list(self) -> String {
        self.iter()
            .map(|b| b.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The set a Lease's annotation names; numbers out of range or not
    /// numbers are ignored (a hand-edited Lease claims nothing by them).
    pub fn from_list(list: &str) -> Buckets {
        list.split(',')
            .filter_map(|b| b.trim().parse::<u16>().ok())
            .fold(Buckets::NONE, Buckets::with)
    }
}

/// FNV-1a, 64-bit, then splitmix64's finaliser so that nearby inputs
/// (`r1/0`, `r1/1`) land far apart.
pub fn hash(bytes: &[u8]) -> u64 {
    let mut h = fnv1a(bytes);
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// FNV-1a, 64-bit (offset basis 0xcbf29ce484222325, prime 0x100000001b3).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The bucket of the primary `namespace/name`.
pub fn bucket_of(namespace: Option<&str>, name: &str) -> u16 {
    let key = match namespace {
        Some(namespace) => format!("{namespace}/{name}"),
        None => name.to_owned(),
    };
    (hash(key.as_bytes()) % u64::from(BUCKETS)) as u16
}

/// The replica among `replicas` that owns `bucket`; None when there is
/// none. Ties (astronomically unlikely) go to the smaller name.
pub fn owner(bucket: u16, replicas: &[String]) -> Option<&str> {
    replicas
        .iter()
        .map(|replica| {
            let score = hash(format!("{replica}/{bucket}").as_bytes());
            (score, std::cmp::Reverse(replica.as_str()))
        })
        .max()
        .map(|(_, std::cmp::Reverse(replica))| replica)
}

/// Every live replica's share of the buckets.
pub fn assign(replicas: &[String]) -> BTreeMap<String, Buckets> {
    let mut shares: BTreeMap<String, Buckets> = replicas
        .iter()
        .map(|r| (r.clone(), Buckets::NONE))
        .collect();
    for bucket in 0..BUCKETS {
        if let Some(owner) = owner(bucket, replicas)
            && let Some(share) = shares.get_mut(owner)
        {
            *share = share.with(bucket);
        }
    }
    shares
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("replica-{i}")).collect()
    }

    #[test]
    fn the_hash_is_fixed_forever() {
        // Written down: a change here moves objects between replicas of
        // different versions, which the protocol does not allow.
        assert_eq!(
            bucket_of(Some("default"), "a"),
            bucket_of(Some("default"), "a")
        );
        // FNV-1a's published test vectors.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        let pinned: Vec<u16> = ["a", "b", "c", "d"]
            .iter()
            .map(|n| bucket_of(Some("default"), n))
            .collect();
        assert_eq!(pinned, [PINNED[0], PINNED[1], PINNED[2], PINNED[3]]);
        assert_ne!(bucket_of(Some("x"), "a-b"), bucket_of(Some("x-a"), "b"));
    }

    /// The buckets of `default/a`…`default/d`: see the test above.
    const PINNED: [u16; 4] = [11, 8, 7, 50];

    #[test]
    fn objects_spread_evenly_over_the_buckets() {
        let mut counts = [0usize; BUCKETS as usize];
        for i in 0..64_000 {
            counts[usize::from(bucket_of(Some("ns"), &format!("object-{i}")))] += 1;
        }
        for (bucket, count) in counts.iter().enumerate() {
            assert!((700..1300).contains(count), "bucket {bucket}: {count}");
        }
    }

    #[test]
    fn every_bucket_has_exactly_one_owner() {
        for n in 1..=5 {
            let shares = assign(&names(n));
            let mut union = Buckets::NONE;
            for share in shares.values() {
                assert!(union.and(*share).is_empty(), "two owners");
                union = union.or(*share);
            }
            assert_eq!(union, Buckets::ALL, "{n} replicas");
        }
        assert!(assign(&[]).is_empty());
        assert_eq!(owner(3, &[]), None);
    }

    #[test]
    fn shares_are_balanced() {
        let shares = assign(&names(3));
        for (replica, share) in &shares {
            assert!(
                (12..=32).contains(&share.len()),
                "{replica}: {}",
                share.len()
            );
        }
    }

    #[test]
    fn a_join_or_leave_moves_only_the_buckets_it_must() {
        let three = assign(&names(3));
        let two = assign(&names(2));
        // replica-2 leaves: the others keep all they had.
        for replica in ["replica-0", "replica-1"] {
            assert!(three[replica].minus(two[replica]).is_empty(), "{replica}");
        }
        // replica-2 joins: it takes buckets, nobody else gains any.
        for replica in ["replica-0", "replica-1"] {
            assert!(three[replica].minus(two[replica]).is_empty());
            assert!(two[replica].minus(three[replica]).len() <= two[replica].len());
        }
        assert_eq!(
            three["replica-2"],
            two["replica-0"]
                .minus(three["replica-0"])
                .or(two["replica-1"].minus(three["replica-1"]))
        );
    }

    #[test]
    fn the_order_replicas_are_listed_in_does_not_matter() {
        let mut reversed = names(4);
        reversed.reverse();
        assert_eq!(assign(&names(4)), assign(&reversed));
    }

    #[test]
    fn bucket_lists_round_trip() {
        let set = Buckets::NONE.with(0).with(7).with(63);
        assert_eq!(set.to_list(), "0,7,63");
        assert_eq!(Buckets::from_list("0,7,63"), set);
        assert_eq!(Buckets::from_list(""), Buckets::NONE);
        assert_eq!(Buckets::from_list("x, 7 ,64,1000"), Buckets::NONE.with(7));
        assert_eq!(Buckets::NONE.with(64), Buckets::NONE);
        assert!(!Buckets::ALL.contains(64));
    }
}
