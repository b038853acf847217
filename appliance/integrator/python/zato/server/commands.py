"""``from zato.server.commands import CommandResult`` (Zato 3.2)."""

from alpharen.commands import CommandResult, Commands as CommandsFacade  # noqa: F401
