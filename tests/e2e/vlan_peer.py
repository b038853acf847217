"""A peer on VLAN 10 of the QEMU node's second NIC, which QEMU carries as
raw Ethernet frames in UDP datagrams (-netdev socket,udp=...). It asks for
the node's VLAN address with a tagged ARP request, then pings it with a
tagged ICMP echo; both answers must come back tagged with VLAN 10.

    vlan_peer.py LISTEN_PORT QEMU_PORT NODE_IP PEER_IP SECONDS
"""

import socket
import struct
import sys
import time

VID = 10
PEER_MAC = bytes.fromhex("020000000a01")
BROADCAST = b"\xff" * 6


def tagged(dst, ethertype, payload):
    """An Ethernet frame with an 802.1Q tag for VLAN 10."""
    return dst + PEER_MAC + struct.pack("!HHH", 0x8100, VID, ethertype) + payload


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def arp_request(peer_ip, node_ip):
    return struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, PEER_MAC, peer_ip, b"\0" * 6, node_ip)


def echo_request(peer_ip, node_ip, seq):
    icmp = struct.pack("!BBHHH", 8, 0, 0, 0x4152, seq) + b"alpharen-vlan"
    icmp = icmp[:2] + struct.pack("!H", checksum(icmp)) + icmp[4:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), seq, 0, 64, 1, 0, peer_ip, node_ip)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return ip + icmp


def vlan_of(frame):
    """(vid, ethertype, payload) of a tagged frame, None for an untagged one."""
    if len(frame) < 18 or frame[12:14] != b"\x81\x00":
        return None
    tci, ethertype = struct.unpack("!HH", frame[14:18])
    return tci & 0x0FFF, ethertype, frame[18:]


def main():
    listen, qemu = int(sys.argv[1]), int(sys.argv[2])
    node_ip, peer_ip = socket.inet_aton(sys.argv[3]), socket.inet_aton(sys.argv[4])
    deadline = time.monotonic() + float(sys.argv[5])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", listen))
    s.settimeout(1.0)
    node_mac, seq = None, 0
    while time.monotonic() < deadline:
        seq += 1
        if node_mac is None:
            s.sendto(tagged(BROADCAST, 0x0806, arp_request(peer_ip, node_ip)), ("127.0.0.1", qemu))
        else:
            s.sendto(tagged(node_mac, 0x0800, echo_request(peer_ip, node_ip, seq)), ("127.0.0.1", qemu))
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            try:
                frame = s.recv(2048)
            except socket.timeout:
                break
            parsed = vlan_of(frame)
            if parsed is None or parsed[0] != VID:
                continue
            _, ethertype, payload = parsed
            if ethertype == 0x0806 and len(payload) >= 28 and payload[6:8] == b"\0\2" and payload[14:18] == node_ip:
                if node_mac is None:
                    node_mac = payload[8:14]
                    print(f"tagged ARP reply from {node_mac.hex(':')} for {sys.argv[3]} on VLAN {VID}")
            elif ethertype == 0x0800 and len(payload) >= 28 and payload[12:16] == node_ip and payload[20] == 0:
                print(f"tagged ICMP echo reply from {sys.argv[3]} on VLAN {VID}")
                return 0
            elif ethertype == 0x0806 and payload[6:8] == b"\0\1" and payload[24:28] == peer_ip:
                # The node asks for us before answering the ping.
                reply = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 2, PEER_MAC, peer_ip, payload[8:14], payload[14:18])
                s.sendto(tagged(payload[8:14], 0x0806, reply), ("127.0.0.1", qemu))
    print("no tagged answer from the node on VLAN 10", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
