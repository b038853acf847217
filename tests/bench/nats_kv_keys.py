"""tests/bench/cluster-kv.sh's reference: a JetStream KV bucket at three
replicas on the reference nats-servers, filled with the same keys and
values as ours; `list` times, inside the process, what nats-py's
`keys()` does (an ordered consumer delivering the last message of each
key, headers only), read until nothing is pending; `keys()` itself
sometimes answered NoKeysError on a bucket of 1,000 keys (below). Prints
JSON.
Usage: nats_kv_keys.py PORT fill START END | PORT list"""
import asyncio, json, sys, time

import nats
from nats.js.api import ConsumerConfig, DeliverPolicy, KeyValueConfig, StorageType

PREFIX = "$KV.bench."


async def main(port: int, what: str, args: list[str]) -> None:
    nc = await nats.connect(f"nats://127.0.0.1:{port}")
    js = nc.jetstream()
    kv = await js.create_key_value(KeyValueConfig(bucket="bench", history=1, replicas=3, storage=StorageType.FILE))
    if what == "fill":
        pad = "x" * 100
        for i in range(int(args[0]), int(args[1])):
            await kv.put("k%06d" % i, json.dumps({"i": i, "pad": pad}).encode())
        out = {"set": int(args[1]) - int(args[0])}
    else:
        started = time.perf_counter()
        sub = await js.subscribe(PREFIX + ">", ordered_consumer=True, config=ConsumerConfig(
            deliver_policy=DeliverPolicy.LAST_PER_SUBJECT, headers_only=True))
        # Until the message after which nothing is pending (the bench's
        # bucket is never empty; the consumer's own info may already
        # count every message as delivered, and keys() trips on that).
        keys = []
        while True:
            msg = await sub.next_msg(timeout=5)
            keys.append(msg.subject[len(PREFIX):])
            if msg.metadata.num_pending == 0:
                break
        await sub.unsubscribe()
        out = {"keys": len(keys), "seconds": time.perf_counter() - started}
    await nc.close()
    print(json.dumps(out))


asyncio.run(main(int(sys.argv[1]), sys.argv[2], sys.argv[3:]))
