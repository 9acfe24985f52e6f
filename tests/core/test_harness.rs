//! The shared test harness: a child process reports a stack overflow as a failure.
use crate::common;
#[test]
fn child_runs_and_passes() {
    common::in_child_process(module_path!(), "child_runs_and_passes", || {
        fn deep(n: u32) -> u32 {
            if n == 0 { 0 } else { 1 + deep(n - 1) }
        }
        assert_eq!(deep(1000), 1000);
    });
}
#[test]
fn child_overflow_is_reported() {
    if std::env::var_os("MACHINERY_TEST_CHILD").is_some() {
        fn deep(n: u64, v: [u8; 1024]) -> u64 {
            if n == 0 {
                v[0] as u64
            } else {
                1 + deep(n - 1, std::hint::black_box(v))
            }
        }
        common::on_small_stack(|| {
            std::hint::black_box(deep(1_000_000, [0; 1024]));
        });
        return;
    }
    let r = std::panic::catch_unwind(|| {
        common::in_child_process(module_path!(), "child_overflow_is_reported", || {})
    });
    assert!(r.is_err());
}
