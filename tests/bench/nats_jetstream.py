"""The pub/sub benchmark's reference: N messages published to a JetStream
stream (file storage, each publish waits for the server's ack) and
consumed by one pull consumer that acks each, in the same process. Prints
publish rate, end-to-end rate and publish->consume latencies as JSON.
Usage: nats_jetstream.py PORT N"""
import asyncio, json, sys, time

import nats


async def main(port: int, n: int) -> None:
    nc = await nats.connect(f"nats://127.0.0.1:{port}")
    js = nc.jetstream()
    await js.add_stream(name="ORDERS", subjects=["orders"], storage="file")
    sub = await js.pull_subscribe("orders", durable="bench")
    lat = []

    async def consume():
        while len(lat) < n:
            for m in await sub.fetch(100, timeout=10):
                lat.append((time.monotonic() - float(m.data)) * 1000)
                await m.ack()

    consumer = asyncio.create_task(consume())
    t0 = time.monotonic()
    for _ in range(n):
        await js.publish("orders", str(time.monotonic()).encode())
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


asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
