//! Weighted choices with a stable hash: the same key always lands on the same arm.

use alloc::vec::Vec;

/// FNV-1a, 64 bits: stable across hosts, processes and versions.
pub fn stable_hash(key: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // FNV's low bits mix poorly for short keys; finish with a murmur-style mix.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The index of the arm a 64-bit draw lands on, given non-negative weights (any
/// scale). `None` when no weight is positive.
pub fn weighted_index(draw: u64, weights: &[f64]) -> Option<usize> {
    let total: f64 = weights.iter().filter(|w| **w > 0.0).sum();
    if total <= 0.0 || !total.is_finite() {
        return None;
    }
    // 53 random bits → [0, 1).
    let point = (draw >> 11) as f64 / (1u64 << 53) as f64 * total;
    let mut acc = 0.0;
    let mut last = None;
    for (i, w) in weights.iter().enumerate() {
        if *w > 0.0 {
            acc += w;
            last = Some(i);
            if point < acc {
                return Some(i);
            }
        }
    }
    last
}

/// The arm `key` lands on: `arms` are `(value, weight)`; the same key always
/// gives the same arm while the weights stay the same.
pub fn weighted_choice<'a, T>(key: &str, arms: &'a [(T, f64)]) -> Option<&'a T> {
    let weights: Vec<f64> = arms.iter().map(|(_, w)| *w).collect();
    weighted_index(stable_hash(key), &weights).map(|i| &arms[i].0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::string::ToString;

    #[test]
    fn choices_are_stable_and_follow_weights() {
        let arms = [("blue", 90.0), ("green", 10.0)];
        assert_eq!(
            weighted_choice("viewer-1", &arms),
            weighted_choice("viewer-1", &arms)
        );
        let green = (0..20_000)
            .filter(|i| weighted_choice(&format!("viewer-{i}"), &arms) == Some(&"green"))
            .count();
        let share = green as f64 / 20_000.0;
        assert!((share - 0.10).abs() < 0.01, "{share}");
    }

    #[test]
    fn zero_weights_are_never_chosen() {
        let arms = [("a", 0.0), ("b", 1.0), ("c", 0.0)];
        for i in 0..1000 {
            assert_eq!(weighted_choice(&i.to_string(), &arms), Some(&"b"));
        }
        assert_eq!(weighted_index(5, &[0.0, 0.0]), None);
        assert_eq!(weighted_index(u64::MAX, &[1.0, 1.0]), Some(1));
    }
}
