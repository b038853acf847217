"""free-ports.py N: prints N loopback ports, each free now for TCP and UDP.

Tests run in parallel and bind their ports a moment after choosing them.
Ports from the kernel's ephemeral range (bind to port 0) can be handed to
two tests in that moment, or to any client's outgoing socket; two nodes on
one DNS port then share it (SO_REUSEPORT) and answer each other's queries.
So the ports come from below the ephemeral range, and a registry under a
lock keeps a port handed out in the last hour from being handed out again.
"""

import fcntl
import os
import random
import socket
import sys
import time

REGISTRY = "/tmp/alpharen-test-ports"
HOLD = 3600


def ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free(port):
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        s = socket.socket(socket.AF_INET, kind)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        finally:
            s.close()
    return True


def main():
    want = int(sys.argv[1])
    low, high = 20000, min(ephemeral_low(), 32768) - 1
    with open(REGISTRY + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        now = time.time()
        held = {}
        try:
            with open(REGISTRY) as f:
                for line in f:
                    port, at = line.split()
                    if now - float(at) < HOLD:
                        held[int(port)] = float(at)
        except (OSError, ValueError):
            held = {}
        candidates = [p for p in range(low, high + 1) if p not in held]
        random.shuffle(candidates)
        out = []
        for p in candidates:
            if len(out) == want:
                break
            if free(p):
                out.append(p)
        if len(out) < want:
            sys.exit(f"free-ports.py: only {len(out)} of {want} free ports in {low}-{high}")
        held.update((p, now) for p in out)
        with open(REGISTRY + ".tmp", "w") as f:
            f.writelines(f"{p} {at}\n" for p, at in held.items())
        os.replace(REGISTRY + ".tmp", REGISTRY)
    print(*out)


main()
