//! Batched placement (issue 20): a batch decides every order exactly as the same requests one by
//! one would, refusals included.

mod common;

use common::{TestApp, World, id_number, imei, phone};
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use std::time::Duration;

/// Orders per batch, and per round of the sequence.
const ROUND: usize = 16;
const ROUNDS: usize = 3;

/// Two stores; providers `wld` (no confirmation) and `cfm` (confirmation required); two banks with
/// little room; customers 1-6 with lines of a few holds each (customer 2 at both providers,
/// customers 5-6 only at `cfm`); customer 9 has no line.
fn spec() -> common::world::WorldSpec {
    World::empty()
        .provider("wld", json!({}))
        .provider("cfm", json!({"hold_confirmation": "required"}))
        .bank("bk1", json!({"exposure_limit": "21000"}))
        .bank("bk2", json!({"priority": 2, "exposure_limit": "14000"}))
        .store("st", "440305")
        .store("st2", "440306")
        .product(json!({"id": "p12", "name": "12期", "pricing": "interest", "terms": [{"months": 12, "rate": "0.18"}],
                        "providers": ["wld", "cfm"], "regions": ["44"], "min_principal": "500", "max_principal": "20000"}))
        .line("wld", 1, "6000")
        .line("wld", 2, "9000")
        .line("cfm", 2, "7000")
        .line("wld", 3, "12000")
        .line("wld", 4, "20000")
        .line("cfm", 5, "8000")
        .line("cfm", 6, "15000")
}

/// One request of the sequence: which store, which key, which body.
#[derive(Debug, Clone)]
struct Step {
    store: &'static str,
    key: String,
    body: Value,
}

fn body(no: &str, seed: u64, price: &str) -> Value {
    json!({"out_order_no": no, "product_id": "p12", "term_months": 12,
           "customer": {"id_number": id_number(seed), "phone": phone(seed)},
           "device": {"sku": "phone", "imei": imei(seed), "price": price}, "down_payment": "999"})
}

/// A random sequence: most orders new, some reusing an out_order_no (of this round or an earlier
/// one), and from the second round some reusing an earlier round's key (same body: a replay;
/// another body: refused). Keys are unique within a round: two requests of one key in one batch
/// are in flight together (409), which one by one they are not.
fn sequence(seed: u64) -> Vec<Vec<Step>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut rounds: Vec<Vec<Step>> = Vec::new();
    let mut n = 0;
    for round in 0..ROUNDS {
        let mut steps: Vec<Step> = Vec::new();
        while steps.len() < ROUND {
            let earlier: Vec<&Step> = rounds.iter().flatten().collect();
            if round > 0 && rng.gen_bool(0.2) {
                let old = earlier[rng.gen_range(0..earlier.len())].clone();
                if steps.iter().any(|s| s.key == old.key) {
                    continue;
                }
                let reused = if rng.gen_bool(0.5) { old.clone() } else { Step { body: body("OTHER", 1, "3999"), ..old } };
                steps.push(reused);
                continue;
            }
            n += 1;
            let store = if rng.gen_bool(0.7) { "st" } else { "st2" };
            let no = if n > 3 && rng.gen_bool(0.15) { format!("N-{}", rng.gen_range(1..n)) } else { format!("N-{n}") };
            let customer = [1, 2, 2, 3, 4, 5, 6, 9][rng.gen_range(0..8)];
            let price = ["1999", "3999", "5999"][rng.gen_range(0..3)];
            steps.push(Step { store, key: format!("k-{n}"), body: body(&no, customer, price) });
        }
        rounds.push(steps);
    }
    rounds
}

/// An answer without what differs between two worlds by nature: ids, times, request ids.
fn comparable(status: u16, replayed: bool, body: &Value) -> Value {
    fn strip(v: &Value) -> Value {
        match v {
            Value::Object(m) => m
                .iter()
                .filter(|(k, _)| {
                    !matches!(k.as_str(), "id" | "order_id" | "hold_id" | "credit_line_id" | "request_id" | "line_id")
                        && !k.ends_with("_at")
                        && !k.ends_with("deadline")
                })
                .map(|(k, v)| (k.clone(), strip(v)))
                .collect(),
            Value::Array(a) => Value::Array(a.iter().map(strip).collect()),
            other => other.clone(),
        }
    }
    json!({"status": status, "replayed": replayed, "body": strip(body)})
}

async fn post(w: &World, step: &Step) -> Value {
    let r = w.key(step.store).post_idem("/v1/orders", step.body.clone(), &step.key).await;
    comparable(r.status, r.header("Idempotent-Replayed").is_some(), &r.body)
}

fn gauge(app: &TestApp, kind: &str) -> i64 {
    app.state.deps.metrics.gauges.with_label_values(&[kind]).get()
}

/// Every line's and bank's balances, in the spec's order.
async fn balances(w: &World) -> Vec<Value> {
    let mut out = Vec::new();
    for line in &w.lines {
        let l = w.admin.get(&format!("/v1/credit-lines/{line}")).await.expect(200);
        out.push(json!([l["provider_id"], l["held"], l["available"]]));
    }
    for bank in ["bk1", "bk2"] {
        let b = w.admin.get(&format!("/v1/admin/banks/{bank}")).await.expect(200);
        out.push(json!([bank, b["exposure_used"]]));
    }
    out
}

/// One round as one batch: request `i` is sent once the `i` before it wait in the batcher's
/// queue, so the batch's arrival order is the sequence's; the last one fills the batch.
async fn batched_round(app: &TestApp, w: &World, steps: &[Step]) -> Vec<Value> {
    let placed_before = gauge(app, creditphone::service::orders::BATCHED_GAUGE);
    let send = |i: usize| async move {
        for _ in 0..2000 {
            if gauge(app, creditphone::service::orders::WAITING_GAUGE) == i as i64 {
                return post(w, &steps[i]).await;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        panic!("request {i} never found the {i} before it queued");
    };
    let answers = futures_util::future::join_all((0..steps.len()).map(send)).await;
    let placed = gauge(app, creditphone::service::orders::BATCHED_GAUGE) - placed_before;
    assert_eq!(placed, steps.len() as i64, "the round was placed as one batch");
    answers
}

async fn verify_ok(w: &World) {
    let v = w.admin.get("/v1/admin/ledger/verify").await.expect(200);
    assert_eq!(v["violations"], json!([]), "{v}");
}

#[actix_web::test]
async fn a_batch_answers_and_books_exactly_as_the_same_orders_one_by_one() {
    let rounds = sequence(20);
    let alone = TestApp::start_with(|s| s.orders.batch_max = 1).await;
    let batched = TestApp::start_with(|s| {
        s.orders.batch_max = ROUND;
        s.orders.batch_window_us = 10_000_000;
        s.orders.batch_wait_when_idle = true;
    })
    .await;
    let (wa, wb) = (spec().build(&alone).await, spec().build(&batched).await);
    let mut seen = Vec::new();
    for (round, steps) in rounds.iter().enumerate() {
        let mut expected = Vec::new();
        for step in steps {
            expected.push(post(&wa, step).await);
        }
        let got = batched_round(&batched, &wb, steps).await;
        for (i, (e, g)) in expected.iter().zip(&got).enumerate() {
            assert_eq!(g, e, "round {round}, request {i} ({:?}): batched (left) vs alone (right)", steps[i]);
        }
        assert_eq!(balances(&wb).await, balances(&wa).await, "round {round}: balances batched (left) vs alone (right)");
        seen.extend(expected);
    }
    // The sequence is worth comparing: every kind of answer occurs in it.
    let mut kinds = std::collections::BTreeSet::new();
    for a in &seen {
        let code = a["body"]["error"]["code"].as_str().map(str::to_string);
        kinds.insert(code.unwrap_or_else(|| a["body"]["status"].as_str().unwrap_or("?").to_string()));
        if a["replayed"] == json!(true) {
            kinds.insert("replayed".to_string());
        }
    }
    for kind in [
        "awaiting_funding",
        "awaiting_hold_confirmation",
        "no_matching_credit_line",
        "no_funding_bank",
        "already_exists",
        "idempotency_key_reused",
        "replayed",
    ] {
        assert!(kinds.contains(kind), "the sequence has a {kind} answer: {kinds:?}");
    }
    verify_ok(&wa).await;
    verify_ok(&wb).await;
}

/// `/metrics` times each step of a batch's transaction and of an order placed alone
/// (`creditphone_order_batch_stage_seconds{stage}`): where an order's time goes under load.
#[actix_web::test]
async fn metrics_time_each_step_of_a_batch_and_of_an_order_placed_alone() {
    let app = TestApp::start_with(|s| {
        s.orders.batch_max = 2;
        s.orders.batch_window_us = 2_000_000;
        s.orders.batch_wait_when_idle = true;
    })
    .await;
    let w = spec().build(&app).await;
    let pair = [
        Step { store: "st", key: "steps-1".into(), body: body("steps-1", 1, "3999") },
        Step { store: "st", key: "steps-2".into(), body: body("steps-2", 3, "3999") },
    ];
    for answer in batched_round(&app, &w, &pair).await {
        assert_eq!(answer["status"], json!(201), "{answer}");
    }
    // Alone in the batcher's window: a batch of one, placed by the single path.
    let alone = post(&w, &Step { store: "st", key: "steps-3".into(), body: body("steps-3", 4, "3999") }).await;
    assert_eq!(alone["status"], json!(201), "{alone}");
    let metrics = app.state.deps.metrics.render();
    let timed = |stage: &str| {
        let prefix = format!("creditphone_order_batch_stage_seconds_count{{stage=\"{stage}\"}} ");
        metrics.lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|n| n.parse::<f64>().ok()).unwrap_or(0.0)
    };
    for stage in ["connection", "begin", "read", "lock", "write", "commit"] {
        assert_eq!(timed(stage), 1.0, "the batch of two timed its step {stage} once");
    }
    for stage in ["alone_claimed", "alone_loaded", "alone_reserved", "alone_applied", "alone_committed"] {
        assert_eq!(timed(stage), 1.0, "the order placed alone timed its step {stage} once");
    }
}
