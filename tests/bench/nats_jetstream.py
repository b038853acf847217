"""The pub/sub benchmarks' reference: N messages published to a JetStream
stream (file storage, each publish waits for the server's ack) and
consumed by one pull consumer that acks each, in the same process. Prints
publish rate, end-to-end rate and publish->consume latencies as JSON.
Usage: nats_jetstream.py PORT N [RUN]
With RUN, the stream and consumer are set like the cluster's queues
(alpharen_cluster::pubsub): a work queue with three replicas and a 120 s
duplicate window, each publish carrying a message id (RUN.i), a durable
consumer with explicit acks, a 30 s ack wait and 10,000 acks pending."""
import asyncio, json, sys, time

import nats
from nats.js.api import ConsumerConfig, RetentionPolicy, StreamConfig


async def main(port: int, n: int, run: str | None) -> None:
    nc = await nats.connect(f"nats://127.0.0.1:{port}")
    js = nc.jetstream()
    if run is None:
        await js.add_stream(name="ORDERS", subjects=["orders"], storage="file")
        sub = await js.pull_subscribe("orders", durable="bench")
    else:
        await js.add_stream(StreamConfig(
            name="BENCH_QUEUES", subjects=["orders"], storage="file", num_replicas=3,
            retention=RetentionPolicy.WORK_QUEUE, duplicate_window=120))
        sub = await js.pull_subscribe("orders", durable="bench", config=ConsumerConfig(
            ack_wait=30, max_ack_pending=10_000, max_deliver=-1))
    lat = []

    async def consume():
        while len(lat) < n:
            for m in await sub.fetch(100, timeout=10):
                lat.append((time.monotonic() - float(m.data)) * 1000)
                await m.ack()

    consumer = asyncio.create_task(consume())
    t0 = time.monotonic()
    for i in range(n):
        headers = None if run is None else {"Nats-Msg-Id": f"{run}.{i}"}
        await js.publish("orders", str(time.monotonic()).encode(), headers=headers)
    t1 = time.monotonic()
    await consumer
    t2 = time.monotonic()
    lat.sort()
    print(json.dumps({
        "publish_per_s": n / (t1 - t0),
        "end_to_end_per_s": n / (t2 - t0),
        "p50_ms": lat[len(lat) // 2],
        "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))],
    }))
    await nc.close()


asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else None))
