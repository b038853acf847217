# Python 3 syntax, Python 2 modules.
import urllib2

from zato.server.service import Service


class Fetch(Service):
    def handle(self):
        self.response.payload = urllib2.urlopen('http://127.0.0.1/').read()
