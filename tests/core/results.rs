//! `noncancelled_results_from_futs` and `find_and_apply_result`: every rule and edge.

use crate::common;

use machinery::helpers::{self as hp, FutureStatus};

fn futs<const N: usize>() -> [hp::Fut<u32>; N] {
    std::array::from_fn(|_| hp::Fut::new())
}

fn group(err: &hp::Error) -> &hp::ErrorGroup {
    err.downcast_ref::<hp::ErrorGroup>()
        .expect("an error group")
}

// ---- noncancelled_results_from_futs

#[test]
fn an_empty_list_gives_no_error_and_no_results() {
    let (err, results) = hp::noncancelled_results_from_futs::<u32, hp::Fut<u32>>(&[]);
    assert!(err.is_none());
    assert!(results.is_empty());
}

#[test]
fn pending_and_cancelled_futures_are_ignored() {
    let [a, b, c] = futs();
    b.cancel();
    let (err, results) = hp::noncancelled_results_from_futs(&[a, b, c]);
    assert!(err.is_none());
    assert!(results.is_empty());
}

#[test]
fn results_come_back_in_the_order_of_the_futures() {
    let [a, b, c, d] = futs();
    c.set_result(3);
    a.set_result(1);
    d.cancel();
    let (err, results) = hp::noncancelled_results_from_futs(&[a, b, c, d]);
    assert!(err.is_none());
    assert_eq!(results, [1, 3]);
}

#[test]
fn one_error_is_returned_as_itself() {
    let [a, b] = futs();
    let boom = hp::Error::msg("boom");
    a.set_exception(boom.clone());
    b.set_result(2);
    let (err, results) = hp::noncancelled_results_from_futs(&[a, b]);
    assert!(err.unwrap().same(&boom));
    assert_eq!(results, [2]);
}

#[test]
fn clones_of_one_error_count_once() {
    let [a, b, c] = futs();
    let boom = hp::Error::msg("boom");
    a.set_exception(boom.clone());
    c.set_exception(boom.clone());
    let (err, results) = hp::noncancelled_results_from_futs(&[a, b, c]);
    assert!(err.unwrap().same(&boom));
    assert!(results.is_empty());
}

#[test]
fn distinct_errors_with_equal_text_form_a_group_in_future_order() {
    let [a, b, c, d] = futs();
    let (first, second, third) = (
        hp::Error::msg("same text"),
        hp::Error::msg("same text"),
        hp::Error::msg("other"),
    );
    a.set_exception(first.clone());
    b.set_exception(second.clone());
    c.set_exception(first.clone());
    d.set_exception(third.clone());
    let (err, _) = hp::noncancelled_results_from_futs(&[a, b, c, d]);
    let err = err.unwrap();
    assert_eq!(err.to_string(), "Futures failed (3 sub-exceptions)");
    let errors = &group(&err).errors;
    assert_eq!(errors.len(), 3);
    assert!(errors[0].same(&first));
    assert!(errors[1].same(&second));
    assert!(errors[2].same(&third));
}

#[test]
fn a_mixed_list_gives_the_errors_and_the_results() {
    let [a, b, c, d, e] = futs();
    a.set_result(1);
    b.set_exception(hp::Error::msg("x"));
    c.cancel();
    e.set_result(5);
    let (err, results) = hp::noncancelled_results_from_futs(&[a, b, c, d, e]);
    assert_eq!(err.unwrap().to_string(), "x");
    assert_eq!(results, [1, 5]);
}

#[test]
fn takes_trait_objects_and_tasks_alike() {
    let fut = hp::Fut::new();
    fut.set_result(1u32);
    let viewed: [&dyn FutureStatus<u32>; 1] = [&fut];
    let (err, results) = hp::noncancelled_results_from_futs(viewed.iter().copied());
    assert!(err.is_none());
    assert_eq!(results, [1]);

    let rt = common::current_thread();
    let tasks = rt.block_on(async {
        let t = vec![
            hp::Task::spawn(async { 7u32 }),
            hp::Task::spawn(async { 8 }),
        ];
        for task in &t {
            task.wait().await;
        }
        t
    });
    let (err, results) = hp::noncancelled_results_from_futs(&tasks);
    assert!(err.is_none());
    assert_eq!(results, [7, 8]);
}

// ---- find_and_apply_result

#[test]
fn a_cancelled_final_cancels_every_future_and_reports_no_change() {
    let final_fut = hp::Fut::new();
    let [a, b] = futs();
    b.set_result(2);
    final_fut.cancel();
    assert!(!hp::find_and_apply_result(
        &final_fut,
        &[a.clone(), b.clone()]
    ));
    assert!(a.cancelled());
    assert_eq!(
        b.result().unwrap(),
        2,
        "a finished future cannot be cancelled"
    );
}

#[test]
fn a_final_error_goes_to_the_pending_futures() {
    let final_fut = hp::Fut::new();
    let [a, b, c] = futs();
    let boom = hp::Error::msg("boom");
    final_fut.set_exception(boom.clone());
    b.set_result(2);
    c.cancel();
    assert!(!hp::find_and_apply_result(
        &final_fut,
        &[a.clone(), b.clone(), c.clone()]
    ));
    assert!(a.exception().unwrap().unwrap().same(&boom));
    assert_eq!(b.result().unwrap(), 2);
    assert!(c.cancelled());
}

#[test]
fn a_final_result_goes_to_the_pending_futures_and_reports_no_change() {
    let final_fut = hp::Fut::new();
    let [a, b] = futs();
    final_fut.set_result(9);
    b.set_result(2);
    assert!(!hp::find_and_apply_result(
        &final_fut,
        &[a.clone(), b.clone()]
    ));
    assert_eq!(a.result().unwrap(), 9);
    assert_eq!(b.result().unwrap(), 2);
    assert_eq!(final_fut.result().unwrap(), 9);
}

#[test]
fn an_error_among_the_futures_goes_to_final_and_the_pending_ones() {
    let final_fut = hp::Fut::new();
    let [a, b, c] = futs();
    let boom = hp::Error::msg("boom");
    a.set_result(1);
    b.set_exception(boom.clone());
    assert!(hp::find_and_apply_result(
        &final_fut,
        &[a.clone(), b, c.clone()]
    ));
    assert!(final_fut.exception().unwrap().unwrap().same(&boom));
    assert!(c.exception().unwrap().unwrap().same(&boom));
    assert_eq!(a.result().unwrap(), 1, "errors win over results");
}

#[test]
fn several_distinct_errors_reach_final_as_one_group() {
    let final_fut = hp::Fut::new();
    let [a, b, c] = futs();
    a.set_exception(hp::Error::msg("one"));
    b.set_exception(hp::Error::msg("two"));
    assert!(hp::find_and_apply_result(&final_fut, &[a, b, c.clone()]));
    let on_final = final_fut.exception().unwrap().unwrap();
    assert_eq!(group(&on_final).errors.len(), 2);
    assert!(c.exception().unwrap().unwrap().same(&on_final));
}

#[test]
fn the_first_result_in_order_wins() {
    let final_fut = hp::Fut::new();
    let [a, b, c, d] = futs();
    c.set_result(3);
    b.set_result(2);
    d.cancel();
    assert!(hp::find_and_apply_result(
        &final_fut,
        &[a.clone(), b, c, d.clone()]
    ));
    assert_eq!(final_fut.result().unwrap(), 2);
    assert_eq!(a.result().unwrap(), 2);
    assert!(d.cancelled());
}

#[test]
fn a_cancelled_future_cancels_final_when_nothing_else_finished() {
    let final_fut = hp::Fut::new();
    let [a, b] = futs();
    b.cancel();
    assert!(hp::find_and_apply_result(&final_fut, &[a.clone(), b]));
    assert!(final_fut.cancelled());
    assert!(!a.done(), "pending futures are left alone");
}

#[test]
fn all_pending_changes_nothing() {
    let final_fut = hp::Fut::new();
    let [a, b] = futs();
    assert!(!hp::find_and_apply_result(
        &final_fut,
        &[a.clone(), b.clone()]
    ));
    assert!(!final_fut.done() && !a.done() && !b.done());
}

#[test]
fn an_empty_list_changes_nothing() {
    let final_fut = hp::Fut::<u32>::new();
    assert!(!hp::find_and_apply_result(&final_fut, &[]));
    assert!(!final_fut.done());

    final_fut.set_result(1);
    assert!(!hp::find_and_apply_result(&final_fut, &[]));
    let cancelled = hp::Fut::<u32>::new();
    cancelled.cancel();
    assert!(!hp::find_and_apply_result(&cancelled, &[]));
}

#[test]
fn a_second_call_after_final_changed_only_reports_no_change() {
    let final_fut = hp::Fut::new();
    let [a, b] = futs();
    a.set_result(1);
    assert!(hp::find_and_apply_result(
        &final_fut,
        &[a.clone(), b.clone()]
    ));
    assert!(!hp::find_and_apply_result(&final_fut, &[a, b.clone()]));
    assert_eq!(b.result().unwrap(), 1);
}
