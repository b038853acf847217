#!/usr/bin/python3
"""An HTTP server of one file that honours Range requests and breaks the
first download off half-way (the connection closed after half the body),
for resumable-download tests:

    range-server.py FILE PORT_FILE LOG

Binds 127.0.0.1 on a free port, writes the port to PORT_FILE, and appends
one line per request to LOG: the Range header (or "-") and what it did.
"""
import http.server
import os
import re
import sys

path, port_file, log = sys.argv[1:4]
size = os.path.getsize(path)
etag = '"%x-%x"' % (size, int(os.path.getmtime(path)))
dropped = False


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def note(self, what):
        with open(log, "a") as f:
            f.write("%s %s\n" % (self.headers.get("Range", "-"), what))

    def do_GET(self):
        global dropped
        start = 0
        m = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
        if m and self.headers.get("If-Range", etag) == etag:
            start = int(m.group(1))
            self.send_response(206)
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, size - 1, size))
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(size - start))
        self.send_header("ETag", etag)
        self.end_headers()
        with open(path, "rb") as f:
            f.seek(start)
            if not dropped and start == 0:
                dropped = True
                self.wfile.write(f.read(size // 2))
                self.wfile.flush()
                self.note("dropped at %d" % (size // 2))
                self.close_connection = True
                self.connection.shutdown(2)
                return
            while True:
                chunk = f.read(1 << 16)
                if not chunk:
                    break
                self.wfile.write(chunk)
        self.note("sent %d-%d" % (start, size))


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(port_file + ".tmp", port_file)
server.serve_forever()
