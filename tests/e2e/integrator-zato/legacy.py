# Python 2, as some published Zato services still are.
from zato.server.service import Service


class Legacy(Service):
    def handle(self):
        print "hello"
