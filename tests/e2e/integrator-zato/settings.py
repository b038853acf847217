# self.user_config: what Zato reads from user_config files, here from
# [integrator.user_config]; the token is a secret from the secret store.
from zato.server.service import Service


class CrmSettings(Service):
    def handle(self):
        api = self.user_config.crm.api
        self.response.payload = {'url': api.url, 'retries': api.retries, 'token_start': api.token[:4]}
