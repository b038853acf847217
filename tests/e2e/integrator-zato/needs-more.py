# Several problems: each is reported by the one deploy.
import redis
import xmltodict
from zato.common.odb.model import Cluster
from zato.server.service import Service


class NeedsMore(Service):
    def handle(self):
        self.sso.user.search(self.cid)
