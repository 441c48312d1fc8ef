//! Unit tests of the priority / ageing order key.

use super::*;

#[test]
fn ageing_order_key_matches_effective_priority() {
    let d = 3_600_000;
    // Old low-priority item vs new high-priority item: order keys agree with the
    // effective priorities at any time.
    let (lb_old, t_old) = (log2_base(0.5, 100.0), 0_i64);
    let (lb_new, t_new) = (log2_base(0.9, 1_000_000.0), 20 * d);
    for now in [t_new, t_new + d, t_new + 100 * d] {
        let ko = prio_key(lb_old, t_old, d);
        let kn = prio_key(lb_new, t_new, d);
        let eo = effective_priority(lb_old, t_old, now, d);
        let en = effective_priority(lb_new, t_new, now, d);
        assert_eq!(ko > kn, eo > en, "now={now}");
    }
    // base ratio 1e6/50·0.9 ≈ 18000 ≈ 2^14.1: after 20 doublings the old one wins.
    assert!(prio_key(lb_old, t_old, d) > prio_key(lb_new, t_new, d));
    // …but not after 10.
    assert!(prio_key(lb_old, t_old, d) < prio_key(lb_new, 10 * d, d));
    // Zero base still ages.
    assert!(log2_base(0.0, 1e9).is_finite());
}
