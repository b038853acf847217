"""The few Zato constants services commonly import."""


class DATA_FORMAT:
    JSON = 'json'
    XML = 'xml'
    FORM_DATA = 'form'
    DICT = 'dict'


class CONTENT_TYPE:
    JSON = 'application/json'
    PLAIN_XML = 'application/xml'
