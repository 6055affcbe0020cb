//! The machines' seeded random generator, kept small: ChaCha20 as a seed, a stream and a word
//! position (56 bytes), not as `ChaCha20Rng` with its 256-byte output buffer (~320 bytes).
//! Draws are rare (backoff jitter, a key pair at registration), and every idle session pays
//! for the generators it holds, so each draw rebuilds the generator at its position instead.
//! The numbers are exactly `ChaCha20Rng`'s for the same seed and stream.

use rand_chacha::ChaCha20Rng;
use rand_core::{SeedableRng, TryCryptoRng, TryRng};
use std::convert::Infallible;
use zeroize::Zeroize;

/// A `ChaCha20Rng` at rest: seed, stream and word position. Its seed is wiped on drop.
pub struct SeededRng {
    seed: [u8; 32],
    stream: u64,
    word_pos: u128,
}

impl SeededRng {
    /// The generator for `seed` on `stream` (machines sharing a seed use different streams).
    pub fn new(seed: [u8; 32], stream: u64) -> Self {
        Self { seed, stream, word_pos: 0 }
    }

    /// Run `f` with the full generator (for many draws at once, e.g. generating a key), then
    /// keep its position.
    pub fn with<R>(&mut self, f: impl FnOnce(&mut ChaCha20Rng) -> R) -> R {
        let mut rng = ChaCha20Rng::from_seed(self.seed);
        rng.set_stream(self.stream);
        rng.set_word_pos(self.word_pos);
        let r = f(&mut rng);
        self.word_pos = rng.get_word_pos();
        r
    }
}

impl Drop for SeededRng {
    fn drop(&mut self) {
        self.seed.zeroize();
    }
}

/// The seed is never shown.
impl std::fmt::Debug for SeededRng {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SeededRng(stream {}, word {})", self.stream, self.word_pos)
    }
}

impl TryRng for SeededRng {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        Ok(self.with(|r| rand_core::Rng::next_u32(r)))
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        Ok(self.with(|r| rand_core::Rng::next_u64(r)))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        self.with(|r| rand_core::Rng::fill_bytes(r, dst));
        Ok(())
    }
}

impl TryCryptoRng for SeededRng {}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::Rng;

    #[test]
    fn draws_are_chacha20s_own_and_the_struct_is_small() {
        let mut full = ChaCha20Rng::from_seed([9; 32]);
        full.set_stream(7);
        let mut small = SeededRng::new([9; 32], 7);
        // Mixed widths, so draws straddle the generator's 64-byte blocks and its 4-block buffer.
        for i in 0..300 {
            match i % 3 {
                0 => assert_eq!(small.next_u32(), full.next_u32()),
                1 => assert_eq!(small.next_u64(), full.next_u64()),
                _ => {
                    let (mut a, mut b) = ([0u8; 37], [0u8; 37]);
                    small.fill_bytes(&mut a);
                    full.fill_bytes(&mut b);
                    assert_eq!(a, b);
                }
            }
        }
        assert!(std::mem::size_of::<SeededRng>() <= 64, "{}", std::mem::size_of::<SeededRng>());
        assert!(std::mem::size_of::<ChaCha20Rng>() >= 300, "{}", std::mem::size_of::<ChaCha20Rng>());
        assert!(format!("{small:?}").starts_with("SeededRng(stream 7, word "), "no seed in Debug");
    }
}
