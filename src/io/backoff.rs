//! The one reconnect/retry schedule of the core (auth retries, the realtime socket, the
//! OpenClaw gateway): doubling from a base up to a cap, with "equal jitter" — half of the
//! delay fixed, half random — so retries spread out but never bunch at zero.

use rand_core::Rng;

/// Base and cap of a doubling backoff (milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first delay.
    pub base_ms: u64,
    /// The longest delay.
    pub cap_ms: u64,
}

impl Backoff {
    /// The delay before retry number `attempt` (1 = the first retry); at least 1 ms.
    pub fn delay_ms(&self, attempt: u32, rng: &mut impl Rng) -> u64 {
        let ceiling = self.base_ms.saturating_mul(1 << attempt.min(20).saturating_sub(1)).min(self.cap_ms);
        (ceiling / 2 + (unit_random(rng) * (ceiling / 2) as f64) as u64).max(1)
    }
}

/// A uniform number in [0, 1) from the machine's seeded generator.
pub fn unit_random(rng: &mut impl Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::SeedableRng;

    #[test]
    fn doubles_within_half_and_whole_ceiling_up_to_the_cap() {
        let backoff = Backoff { base_ms: 1_000, cap_ms: 30_000 };
        let mut rng = rand_chacha::ChaCha20Rng::from_seed([7; 32]);
        for (attempt, ceiling) in [(1, 1_000), (2, 2_000), (3, 4_000), (5, 16_000), (6, 30_000), (40, 30_000)] {
            for _ in 0..50 {
                let d = backoff.delay_ms(attempt, &mut rng);
                assert!(d >= ceiling / 2 && d <= ceiling, "attempt {attempt}: {d} outside [{}, {ceiling}]", ceiling / 2);
            }
        }
        assert_eq!(Backoff { base_ms: 0, cap_ms: 0 }.delay_ms(1, &mut rng), 1);
    }
}
