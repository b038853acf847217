# Helpers for the dpx end-to-end tests; source after lib.sh.

# q NAME TYPE [DIG ARGS...]: short answer from the node's DNS.
q() { dig @127.0.0.1 -p "$DNS_PORT" +short +time=2 +tries=2 "$@"; }
# rcode NAME TYPE: the response code (NOERROR, REFUSED, ...).
rcode() { dig @127.0.0.1 -p "$DNS_PORT" +time=2 +tries=2 "$@" | sed -n 's/.*status: \([A-Z]*\),.*/\1/p'; }
serial() { q "$ZONE" SOA | awk '{print $3}'; }
