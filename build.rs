//! Turns the `loom-model` feature into the `machinery_loom` cfg that `src/sync.rs` and the
//! model tests (`tests/loom/`) switch on. A feature, not `RUSTFLAGS="--cfg ..."`, so that a
//! model-check build reuses every dependency already built with the same profile
//! (RUSTFLAGS rebuild them all).

fn main() {
    println!("cargo::rustc-check-cfg=cfg(machinery_loom)");
    println!("cargo::rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_FEATURE_LOOM_MODEL").is_some() {
        println!("cargo::rustc-cfg=machinery_loom");
    }
}
