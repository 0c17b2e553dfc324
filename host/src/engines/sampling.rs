//! Choosing the next token from logits, for engines that do not bring their own
//! sampler (candle). The checks on the parameters are shared with the llama.cpp
//! engine, so both refuse the same values with the same words.
//!
//! Order, as llama.cpp's chain: penalties (over the last 64 tokens), then greedy
//! when the temperature is 0, else top-k, top-p, min-p, temperature, and a draw
//! from a seeded generator.

use crate::generation::GenerationParams;

/// Tokens the penalties look back over.
pub(crate) const PENALTY_WINDOW: usize = 64;

/// Sampling parameters, checked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct SamplingConfig {
    pub temperature: f32,
    pub top_k: Option<u32>,
    pub top_p: Option<f32>,
    pub min_p: Option<f32>,
    pub repetition_penalty: f32,
    pub frequency_penalty: f32,
    pub presence_penalty: f32,
    pub seed: Option<u64>,
}

impl SamplingConfig {
    /// Check `p`; the message says which value is wrong.
    pub(crate) fn from_params(p: &GenerationParams) -> Result<Self, String> {
        let temperature = p.temperature.unwrap_or(0.0);
        if !temperature.is_finite() || temperature < 0.0 {
            return Err(format!("temperature must be a number ≥ 0, got {temperature}"));
        }
        let repeat = p.repetition_penalty.unwrap_or(1.0);
        let freq = p.frequency_penalty.unwrap_or(0.0);
        let presence = p.presence_penalty.unwrap_or(0.0);
        if !(repeat.is_finite() && freq.is_finite() && presence.is_finite()) || repeat <= 0.0 {
            return Err(format!(
                "penalties must be finite and repetition_penalty > 0, got {repeat}, {freq}, {presence}"
            ));
        }
        if temperature > 0.0 {
            for (key, value) in [("top_p", p.top_p), ("min_p", p.min_p)] {
                if let Some(v) = value {
                    if !(0.0..=1.0).contains(&v) {
                        return Err(format!("{key} must be in [0, 1], got {v}"));
                    }
                }
            }
        }
        Ok(Self {
            temperature,
            top_k: p.top_k.filter(|k| *k > 0),
            top_p: p.top_p,
            min_p: p.min_p,
            repetition_penalty: repeat,
            frequency_penalty: freq,
            presence_penalty: presence,
            seed: p.seed,
        })
    }

    /// Whether any penalty applies.
    pub(crate) fn penalises(&self) -> bool {
        self.repetition_penalty != 1.0 || self.frequency_penalty != 0.0 || self.presence_penalty != 0.0
    }
}

/// A sampler for one generation.
#[derive(Debug, Clone)]
pub(crate) struct Sampler {
    config: SamplingConfig,
    rng: SplitMix64,
}

impl Sampler {
    pub(crate) fn new(config: SamplingConfig) -> Self {
        let seed = config.seed.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0x5eed)
        });
        Self {
            config,
            rng: SplitMix64(seed),
        }
    }

    /// The next token, given the logits and the tokens so far (prompt included).
    pub(crate) fn sample(&mut self, logits: &mut [f32], history: &[u32]) -> u32 {
        let c = self.config;
        if c.penalises() {
            let window = &history[history.len().saturating_sub(PENALTY_WINDOW)..];
            let mut counts = std::collections::HashMap::<u32, u32>::new();
            for t in window {
                *counts.entry(*t).or_default() += 1;
            }
            for (token, n) in counts {
                let Some(l) = logits.get_mut(token as usize) else {
                    continue;
                };
                *l = if *l > 0.0 {
                    *l / c.repetition_penalty
                } else {
                    *l * c.repetition_penalty
                };
                *l -= n as f32 * c.frequency_penalty + c.presence_penalty;
            }
        }
        if c.temperature == 0.0 {
            return argmax(logits);
        }
        let mut candidates: Vec<(u32, f32)> = logits
            .iter()
            .enumerate()
            .filter(|(_, l)| l.is_finite())
            .map(|(i, l)| (i as u32, *l))
            .collect();
        if candidates.is_empty() {
            return argmax(logits);
        }
        candidates.sort_unstable_by(|a, b| b.1.total_cmp(&a.1));
        if let Some(k) = c.top_k {
            candidates.truncate((k as usize).max(1));
        }
        let probs = softmax(&candidates, 1.0);
        if let Some(p) = c.top_p.filter(|p| *p < 1.0) {
            let mut sum = 0.0;
            let keep = probs
                .iter()
                .position(|q| {
                    sum += q;
                    sum >= p
                })
                .map_or(candidates.len(), |i| i + 1);
            candidates.truncate(keep.max(1));
        }
        if let Some(m) = c.min_p.filter(|m| *m > 0.0) {
            let probs = softmax(&candidates, 1.0);
            let floor = probs[0] * m;
            let keep = probs.iter().take_while(|q| **q >= floor).count();
            candidates.truncate(keep.max(1));
        }
        let probs = softmax(&candidates, c.temperature);
        let mut draw = self.rng.next_f32();
        for (i, q) in probs.iter().enumerate() {
            if draw < *q {
                return candidates[i].0;
            }
            draw -= q;
        }
        candidates[candidates.len() - 1].0
    }
}

/// The index of the largest logit (the first of equals, as llama.cpp's greedy).
pub(crate) fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, l) in logits.iter().enumerate() {
        if *l > logits[best] {
            best = i;
        }
    }
    best as u32
}

fn softmax(candidates: &[(u32, f32)], temperature: f32) -> Vec<f32> {
    let max = candidates[0].1;
    let exps: Vec<f32> = candidates
        .iter()
        .map(|(_, l)| ((l - max) / temperature).exp())
        .collect();
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

/// A small, fast, seedable generator.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(temperature: f32) -> SamplingConfig {
        SamplingConfig::from_params(&GenerationParams {
            temperature: Some(temperature),
            seed: Some(3),
            ..GenerationParams::default()
        })
        .unwrap()
    }

    #[test]
    fn greedy_takes_the_largest_and_penalties_move_it() {
        let mut s = Sampler::new(config(0.0));
        assert_eq!(s.sample(&mut [0.1, 2.0, 1.9], &[]), 1);
        let mut penalised = Sampler::new(SamplingConfig {
            repetition_penalty: 1.5,
            ..config(0.0)
        });
        assert_eq!(penalised.sample(&mut [0.1, 2.0, 1.9], &[1]), 2);
    }

    #[test]
    fn seeded_draws_repeat_and_follow_the_distribution() {
        let logits = [0.0f32, 1.0, 2.0];
        let draws = |seed| {
            let mut s = Sampler::new(SamplingConfig {
                seed: Some(seed),
                ..config(1.0)
            });
            (0..3000)
                .map(|_| s.sample(&mut logits.clone(), &[]))
                .collect::<Vec<_>>()
        };
        assert_eq!(draws(7), draws(7));
        let d = draws(7);
        let share = |t| d.iter().filter(|x| **x == t).count() as f32 / d.len() as f32;
        // softmax(0, 1, 2) = 0.09, 0.245, 0.665
        assert!(
            (share(2) - 0.665).abs() < 0.05 && (share(0) - 0.09).abs() < 0.03,
            "{}",
            share(2)
        );
        let mut top1 = Sampler::new(SamplingConfig {
            top_k: Some(1),
            ..config(1.0)
        });
        assert!((0..100).all(|_| top1.sample(&mut logits.clone(), &[]) == 2));
    }

    #[test]
    fn bad_values_are_refused_with_their_name() {
        let bad = |p: GenerationParams| SamplingConfig::from_params(&p).unwrap_err();
        assert!(bad(GenerationParams {
            temperature: Some(-1.0),
            ..Default::default()
        })
        .contains("temperature"));
        assert!(bad(GenerationParams {
            temperature: Some(1.0),
            top_p: Some(1.5),
            ..Default::default()
        })
        .contains("top_p"));
    }
}
