//! Call-ID to shard mapping.
//!
//! Every message of a call must reach the shard that owns the call, with no shared table in
//! between. Both legs' Call-IDs must therefore hash to the same shard: the leg A Call-ID is the
//! peer's, so the shard is chosen by hashing it, and the leg B Call-ID, which sipborder makes
//! up, is drawn until it hashes to the same shard (expected `shards` draws).

/// FNV-1a over the Call-ID bytes: stable across processes and cheap for ~40-byte strings.
pub fn hash(call_id: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in call_id.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Shard owning `call_id` among `shards` (at least 1).
pub fn shard_of(call_id: &str, shards: usize) -> usize {
    (hash(call_id) % shards.max(1) as u64) as usize
}

/// A fresh Call-ID that maps to `shard`.
pub fn new_call_id(rng: &mut impl rand::Rng, shard: usize, shards: usize) -> String {
    loop {
        let id = super::token::random_token(rng, 24);
        if shard_of(&id, shards) == shard {
            return id;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn generated_call_ids_land_on_their_shard() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        for shard in 0..4 {
            for _ in 0..50 {
                let id = new_call_id(&mut rng, shard, 4);
                assert_eq!(shard_of(&id, 4), shard);
            }
        }
    }
}
