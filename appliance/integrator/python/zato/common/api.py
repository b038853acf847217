"""The Zato constants services commonly import (``zato.common.api``),
with Zato's values."""

# Classes that set this attribute (to any value) are not deployed.
DONT_DEPLOY_ATTR_NAME = 'zato_dont_import'

ZATO_NOT_GIVEN = b'ZATO_NOT_GIVEN'
ZATO_OK = 'ZATO_OK'
ZATO_ERROR = 'ZATO_ERROR'
ZATO_WARNING = 'ZATO_WARNING'
ZATO_NONE = 'ZATO_NONE'
ZATO_DEFAULT = 'ZATO_DEFAULT'
Zato_None = ZATO_NONE


class DATA_FORMAT:
    CSV = 'csv'
    DICT = 'dict'
    FORM_DATA = 'form'
    HL7 = 'hl7'
    JSON = 'json'
    POST = 'post'
    SOAP = 'soap'
    XML = 'xml'


Data_Format = DATA_FORMAT


class CHANNEL:
    AMQP = 'amqp'
    DELIVERY = 'delivery'
    FANOUT_CALL = 'fanout-call'
    HTTP_SOAP = 'http-soap'
    INVOKE = 'invoke'
    INVOKE_ASYNC = 'invoke-async'
    INVOKE_ASYNC_CALLBACK = 'invoke-async-callback'
    NEW_INSTANCE = 'new-instance'
    PARALLEL_EXEC_CALL = 'parallel-exec-call'
    PUBLISH = 'publish'
    SCHEDULER = 'scheduler'
    SERVICE = 'service'
    STARTUP_SERVICE = 'startup-service'
    URL_DATA = 'url-data'
    WEB_SOCKET = 'web-socket'


class CONTENT_TYPE:
    JSON = 'application/json'
    PLAIN_XML = 'application/xml'
    SOAP11 = 'text/xml'
    SOAP12 = 'application/soap+xml; charset=utf-8'


class URL_TYPE:
    SOAP = 'soap'
    PLAIN_HTTP = 'plain_http'


class SEC_DEF_TYPE:
    APIKEY = 'apikey'
    BASIC_AUTH = 'basic_auth'
    OAUTH = 'oauth'


class PARAMS_PRIORITY:
    CHANNEL_PARAMS_OVER_MSG = 'channel-params-over-msg'
    MSG_OVER_CHANNEL_PARAMS = 'msg-over-channel-params'
    DEFAULT = CHANNEL_PARAMS_OVER_MSG


class URL_PARAMS_PRIORITY:
    PATH_OVER_QS = 'path-over-qs'
    QS_OVER_PATH = 'qs-over-path'
    DEFAULT = QS_OVER_PATH


# Zato 3's message class for self.email.smtp (EMailMessage in older Zato).
from alpharen.mail import EMailMessage, SMTPMessage  # noqa: E402,F401
