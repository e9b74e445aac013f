//! Stable-toolchain pass over every fuzz target body (`tests/fuzz/bodies.rs`): the seed corpus
//! in `tests/fuzz/seeds/<target>/` plus deterministic mutations of each seed, so `make test`
//! exercises the same invariants the nightly `cargo fuzz` targets check (`make fuzz`).
//! Crashes that a fuzzer found are kept as seeds, so they stay regression tests here.

#[path = "fuzz/bodies.rs"]
mod bodies;

use std::path::Path;

/// Mutations per seed: enough to hit every branch class once, cheap enough for `make test`.
const MUTATIONS: usize = 400;

/// xorshift64*: deterministic, so a failure names a reproducible input.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..=rng.below(4) {
        match rng.below(5) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 => {
                let i = rng.below(v.len() + 1);
                v.insert(i, rng.next() as u8);
            }
            2 if !v.is_empty() => {
                let i = rng.below(v.len());
                v.remove(i);
            }
            3 if !v.is_empty() => {
                let (a, b) = (rng.below(v.len()), rng.below(v.len()));
                let (lo, hi) = (a.min(b), a.max(b));
                let dup = v[lo..hi].to_vec();
                v.splice(hi..hi, dup);
            }
            _ => v.truncate(rng.below(v.len() + 1)),
        }
    }
    v
}

fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz/seeds")
        .join(target);
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("seed corpus {dir:?}: {e}"))
        .map(|e| e.expect("seed entry").path())
        .map(|p| {
            (
                p.display().to_string(),
                std::fs::read(&p).expect("seed file"),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn every_fuzz_target_holds_its_invariants_on_seeds_and_mutations() {
    for (name, body) in bodies::TARGETS {
        let corpus = seeds(name);
        assert!(!corpus.is_empty(), "{name}: no seeds");
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ name.len() as u64);
        for (path, seed) in &corpus {
            let run = |input: &[u8]| {
                std::panic::catch_unwind(|| body(input)).unwrap_or_else(|_| {
                    panic!("{name}: invariant broke on {input:?} (from {path})")
                })
            };
            run(seed);
            for _ in 0..MUTATIONS {
                run(&mutate(seed, &mut rng));
            }
        }
    }
}

#[test]
fn every_target_has_a_cargo_fuzz_entry_point() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz");
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).expect("fuzz manifest");
    for (name, _) in bodies::TARGETS {
        let file = root.join("fuzz_targets").join(format!("{name}.rs"));
        let src = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file:?}: {e}"));
        assert!(
            src.contains(&format!("bodies::{name}")),
            "{file:?} must call bodies::{name}"
        );
        assert!(
            manifest.contains(&format!("name = \"{name}\"")),
            "{name} missing in Cargo.toml"
        );
    }
}
