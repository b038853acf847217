"""``sqlalchemy.sql.text``: a statement for an outgoing SQL session."""


class TextClause:
    """SQL text with ``:name`` placeholders and, optionally, values bound
    with ``bindparams(name=value)``."""

    def __init__(self, text):
        self.text = text
        self._alpharen_bound = {}

    def bindparams(self, **values):
        clause = TextClause(self.text)
        clause._alpharen_bound = dict(self._alpharen_bound, **values)
        return clause

    def __str__(self):
        return self.text


def text(sql):
    return TextClause(sql)
