use serde_json::{Value, json};

use super::*;
use crate::data::test_data as open;

fn run(d: &Data, key: &str, cmd: &str, args: Value, now: i64) -> Result<Value, DataError> {
    let args = args.as_array().cloned().unwrap_or_default();
    d.kv_command("kvdb", key, cmd, &args, now)
}

fn ok(d: &Data, key: &str, cmd: &str, args: Value) -> Value {
    run(d, key, cmd, args, 0).expect(cmd)
}

#[test]
fn hashes_answer_as_redis_does() {
    let (_t, d) = open();
    assert_eq!(ok(&d, "h", "hset", json!(["a", "1", "b", "2"])), json!(2));
    assert_eq!(ok(&d, "h", "hset", json!(["a", "9", "c", "3"])), json!(1));
    assert_eq!(ok(&d, "h", "hget", json!(["a"])), json!("9"));
    assert_eq!(ok(&d, "h", "hget", json!(["zz"])), Value::Null);
    assert_eq!(ok(&d, "nope", "hget", json!(["a"])), Value::Null);
    assert_eq!(
        ok(&d, "h", "hgetall", json!([])),
        json!({"a": "9", "b": "2", "c": "3"})
    );
    assert_eq!(ok(&d, "nope", "hgetall", json!([])), json!({}));
    assert_eq!(ok(&d, "h", "hkeys", json!([])), json!(["a", "b", "c"]));
    assert_eq!(ok(&d, "h", "hvals", json!([])), json!(["9", "2", "3"]));
    assert_eq!(ok(&d, "h", "hlen", json!([])), json!(3));
    assert_eq!(ok(&d, "h", "hexists", json!(["b"])), json!(true));
    assert_eq!(ok(&d, "h", "hmget", json!(["a", "x"])), json!(["9", null]));
    assert_eq!(ok(&d, "h", "hsetnx", json!(["a", "0"])), json!(false));
    assert_eq!(ok(&d, "h", "hincrby", json!(["n", 5])), json!(5));
    assert_eq!(ok(&d, "h", "hincrby", json!(["n", -7])), json!(-2));
    assert_eq!(ok(&d, "h", "hincrby", json!(["b", 1])), json!(3));
    assert_eq!(ok(&d, "h", "hget", json!(["b"])), json!("3"));
    assert_eq!(ok(&d, "h", "hdel", json!(["a", "b", "x"])), json!(2));
    assert_eq!(ok(&d, "h", "hdel", json!(["c", "n"])), json!(2));
    // The last field gone, the key is gone.
    assert_eq!(ok(&d, "h", "type", json!([])), json!("none"));
    ok(&d, "s", "hset", json!(["f", "text"]));
    let e = run(&d, "s", "hincrby", json!(["f", 1]), 0).unwrap_err();
    assert_eq!(e.to_string(), "ERR hash value is not an integer");
}

#[test]
fn lists_push_pop_range_trim_and_remove() {
    let (_t, d) = open();
    assert_eq!(ok(&d, "l", "rpush", json!(["a", "b"])), json!(2));
    assert_eq!(ok(&d, "l", "lpush", json!(["x", "y"])), json!(4));
    assert_eq!(
        ok(&d, "l", "lrange", json!([0, -1])),
        json!(["y", "x", "a", "b"])
    );
    assert_eq!(ok(&d, "l", "lrange", json!([1, 2])), json!(["x", "a"]));
    assert_eq!(ok(&d, "l", "lrange", json!([-2, 100])), json!(["a", "b"]));
    assert_eq!(ok(&d, "l", "lrange", json!([5, 10])), json!([]));
    assert_eq!(ok(&d, "l", "lindex", json!([-1])), json!("b"));
    assert_eq!(ok(&d, "l", "lpop", json!([])), json!("y"));
    assert_eq!(ok(&d, "l", "rpop", json!([2])), json!(["b", "a"]));
    assert_eq!(ok(&d, "l", "llen", json!([])), json!(1));
    assert_eq!(ok(&d, "nope", "lpop", json!([])), Value::Null);
    assert_eq!(ok(&d, "nope", "lpop", json!([2])), Value::Null);
    assert_eq!(ok(&d, "nope", "llen", json!([])), json!(0));
    ok(&d, "r", "rpush", json!(["a", "b", "a", "c", "a"]));
    assert_eq!(ok(&d, "r", "lrem", json!([-2, "a"])), json!(2));
    assert_eq!(
        ok(&d, "r", "lrange", json!([0, -1])),
        json!(["a", "b", "c"])
    );
    assert_eq!(ok(&d, "r", "lrem", json!([0, "zz"])), json!(0));
    assert_eq!(ok(&d, "r", "ltrim", json!([1, -1])), json!(true));
    assert_eq!(ok(&d, "r", "lrange", json!([0, -1])), json!(["b", "c"]));
    assert_eq!(ok(&d, "r", "ltrim", json!([5, 6])), json!(true));
    assert_eq!(ok(&d, "r", "type", json!([])), json!("none"));
    assert_eq!(ok(&d, "l", "lpop", json!([])), json!("x"));
    assert_eq!(ok(&d, "l", "type", json!([])), json!("none"));
}

#[test]
fn sets_and_wrong_types() {
    let (_t, d) = open();
    assert_eq!(ok(&d, "s", "sadd", json!(["b", "a", "b"])), json!(2));
    assert_eq!(ok(&d, "s", "sadd", json!(["a"])), json!(0));
    assert_eq!(ok(&d, "s", "smembers", json!([])), json!(["a", "b"]));
    assert_eq!(ok(&d, "s", "sismember", json!(["a"])), json!(true));
    assert_eq!(ok(&d, "s", "scard", json!([])), json!(2));
    assert_eq!(ok(&d, "s", "srem", json!(["a", "z"])), json!(1));
    for (cmd, args) in [
        ("hget", json!(["a"])),
        ("lpush", json!(["a"])),
        ("get", json!([])),
    ] {
        let e = run(&d, "s", cmd, args, 0).unwrap_err();
        assert_eq!(e.code(), "wrong_type", "{cmd}");
        assert!(e.to_string().starts_with("WRONGTYPE"), "{e}");
    }
    // A string set through the plain KV is a Redis string.
    d.kv_set("kvdb", "str", &KvValue::Json(json!("v")), None, 0)
        .expect("set");
    assert_eq!(ok(&d, "str", "get", json!([])), json!({"json": "v"}));
    assert_eq!(ok(&d, "str", "type", json!([])), json!("string"));
    assert_eq!(
        run(&d, "str", "sadd", json!(["x"]), 0).unwrap_err().code(),
        "wrong_type"
    );
    // And the plain KV reads a hash as its JSON.
    ok(&d, "h", "hset", json!(["f", "1"]));
    assert_eq!(
        d.kv_get("kvdb", "h", 0).expect("get"),
        Some(KvValue::Json(json!({"f": "1"})))
    );
    let e = run(&d, "h", "hset", json!(["odd"]), 0).unwrap_err();
    assert_eq!(e.code(), "invalid_params");
    assert_eq!(
        run(&d, "h", "zadd", json!([]), 0).unwrap_err().code(),
        "method_not_found"
    );
}

#[test]
fn expiry_ttl_and_persist() {
    let (_t, d) = open();
    assert_eq!(run(&d, "h", "ttl", json!([]), 0).expect("ttl"), json!(-2));
    assert_eq!(
        run(&d, "h", "expire", json!([10]), 0).expect("e"),
        json!(false)
    );
    run(&d, "h", "hset", json!(["f", "1"]), 0).expect("hset");
    assert_eq!(run(&d, "h", "ttl", json!([]), 0).expect("ttl"), json!(-1));
    assert_eq!(
        run(&d, "h", "expire", json!([10]), 0).expect("e"),
        json!(true)
    );
    assert_eq!(
        run(&d, "h", "ttl", json!([]), 1_400).expect("ttl"),
        json!(9)
    );
    assert_eq!(
        run(&d, "h", "pttl", json!([]), 1_400).expect("ttl"),
        json!(8_600)
    );
    // Changing the hash keeps its expiry, as in Redis.
    run(&d, "h", "hset", json!(["g", "2"]), 2_000).expect("hset");
    assert_eq!(
        run(&d, "h", "ttl", json!([]), 2_000).expect("ttl"),
        json!(8)
    );
    assert_eq!(
        run(&d, "h", "hlen", json!([]), 10_000).expect("hlen"),
        json!(0)
    );
    run(&d, "h", "hset", json!(["f", "1"]), 11_000).expect("hset");
    run(&d, "h", "expire", json!([10]), 11_000).expect("expire");
    assert_eq!(
        run(&d, "h", "persist", json!([]), 11_000).expect("p"),
        json!(true)
    );
    assert_eq!(
        run(&d, "h", "persist", json!([]), 11_000).expect("p"),
        json!(false)
    );
    assert_eq!(
        run(&d, "h", "hlen", json!([]), 30_000).expect("hlen"),
        json!(1)
    );
    assert_eq!(
        run(&d, "h", "expire", json!([0]), 30_000).expect("e"),
        json!(true)
    );
    assert_eq!(
        run(&d, "h", "type", json!([]), 30_000).expect("t"),
        json!("none")
    );
}

#[test]
fn redis_ranges() {
    assert_eq!(range(0, -1, 3), Some(0..3));
    assert_eq!(range(-100, 100, 3), Some(0..3));
    assert_eq!(range(2, 1, 3), None);
    assert_eq!(range(0, -1, 0), None);
    assert_eq!(range(-1, -1, 3), Some(2..3));
}
