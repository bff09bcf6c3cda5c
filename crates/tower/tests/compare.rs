//! The comparison table (printed with `--nocapture`; `cargo run --example compare` prints it
//! too): redial-tower's RetryLayer against `tower::retry` retrying every error and
//! `reqwest-retry`'s default strategy, on one fault script, against a real server.

mod support;

use support::compare::{markdown, table, Contender, CONTENDERS};

#[tokio::test]
async fn only_redial_never_executes_a_post_twice() {
    let rows = table().await;
    println!("{}", markdown(&rows));
    let col = |who: Contender| CONTENDERS.iter().position(|c| *c == who).unwrap();
    for (s, cells) in &rows {
        for who in [
            Contender::Redial,
            Contender::RedialStatus,
            Contender::RedialReqwest,
        ] {
            assert!(
                cells[col(who)].executed <= 1,
                "{}: {} executed twice",
                s.name,
                who.name()
            );
        }
    }
    let reset_post = &rows[2];
    assert_eq!(
        reset_post.1[col(Contender::Redial)].reported,
        "in-doubt error (typed)"
    );
    assert_eq!(reset_post.1[col(Contender::Redial)].attempts, 1);
    assert_eq!(
        reset_post.1[col(Contender::RedialReqwest)].reported,
        "in-doubt error (typed)"
    );
    // The naive policies send a POST again after its connection died: the server applies it
    // twice. This is what the layer exists to prevent.
    assert_eq!(reset_post.1[col(Contender::TowerEveryError)].executed, 2);
    let keyed = &rows[3];
    assert_eq!(keyed.1[col(Contender::Redial)].reported, "200");
    assert_eq!(keyed.1[col(Contender::Redial)].executed, 1);
    assert_eq!(keyed.1[col(Contender::RedialReqwest)].reported, "200");
    assert_eq!(keyed.1[col(Contender::RedialReqwest)].attempts, 2);
    assert_eq!(reset_post.1[col(Contender::ReqwestRetry)].executed, 2);
    // Refused GET: everyone retries it to success.
    for c in &rows[0].1 {
        assert_eq!(c.reported, "200");
    }
}
