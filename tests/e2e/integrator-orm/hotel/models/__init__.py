# The project's models package, as genesisng's schema package: one
# declarative Base for every model.
from sqlalchemy.orm import declarative_base

Base = declarative_base()
