//! The short fuzz run of CI: every file of `fuzz/corpus/<target>/` (seeds,
//! inputs the coverage-guided runs kept, and every crasher they found) through
//! its target, on the stable toolchain.

use std::path::Path;

#[test]
fn every_corpus_file_passes_its_target() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for (name, target) in lmhost_fuzz::TARGETS {
        let dir = corpus.join(name);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        assert!(files.len() >= 10, "{}: only {} files", dir.display(), files.len());
        for file in files {
            let data = std::fs::read(&file).unwrap();
            let outcome = std::panic::catch_unwind(|| target(&data));
            assert!(outcome.is_ok(), "{} fails {name}", file.display());
        }
    }
}

#[test]
fn every_deep_structure_family_passes_the_template_target() {
    use lmhost_template::hostile::{chain, FAMILIES};
    for family in FAMILIES {
        for terms in [100, 200, 255, 256, 511, 512, 1_000, 30_000] {
            lmhost_fuzz::template(chain(family, terms).unwrap().as_bytes());
        }
    }
}
