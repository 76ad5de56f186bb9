//! Random tokens for tags, branches and Call-IDs (RFC 3261 §19.3: globally unique, 32+ bits of
//! randomness).

/// Random token of `n` characters from [0-9a-z].
pub fn random_token(rng: &mut impl rand::Rng, n: usize) -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    (0..n).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect()
}

/// A new From/To tag.
pub fn new_tag(rng: &mut impl rand::Rng) -> String {
    random_token(rng, 12)
}
