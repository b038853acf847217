# Services that fail in the ways a worker must survive.
import os
import time

from alpharen.integrator import Service


class Sleep(Service):
    name = 'test.sleep'

    def handle(self):
        time.sleep(30)


class Exit(Service):
    name = 'test.exit'

    def handle(self):
        os._exit(3)


class Alloc(Service):
    name = 'test.alloc'

    def handle(self):
        hog = []
        while True:
            hog.append(bytearray(16 << 20))


class Ok(Service):
    """Answers with the worker's pid so tests can see replacements."""
    name = 'test.ok'

    def handle(self):
        self.response.payload = {'ok': True, 'pid': os.getpid(), 'method': self.request.http.method}
