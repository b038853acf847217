# Helpers for the dpx end-to-end tests; source after lib.sh.

# free_dns_port: a port free for both UDP and TCP on 127.0.0.1.
free_dns_port() {
  python3 -c '
import socket
for _ in range(50):
    t = socket.socket(); t.bind(("127.0.0.1", 0)); p = t.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", p)); print(p); break
    except OSError:
        pass
    finally:
        u.close(); t.close()'
}

# q NAME TYPE [DIG ARGS...]: short answer from the node's DNS.
q() { dig @127.0.0.1 -p "$DNS_PORT" +short +time=2 +tries=2 "$@"; }
# rcode NAME TYPE: the response code (NOERROR, REFUSED, ...).
rcode() { dig @127.0.0.1 -p "$DNS_PORT" +time=2 +tries=2 "$@" | sed -n 's/.*status: \([A-Z]*\),.*/\1/p'; }
serial() { q "$ZONE" SOA | awk '{print $3}'; }
