# A declarative model as Zato users write them (genesisng's schema/room.py):
# a unique constraint, an enum, float, numeric, jsonb, uuid and timestamps,
# a hybrid property and an asdict() helper.
import enum
from datetime import datetime

from sqlalchemy import Column, DateTime, Enum, Float, Integer, Numeric, String, UniqueConstraint, func
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.ext.hybrid import hybrid_property

from models import Base


class RoomKind(str, enum.Enum):
    single = 'single'
    double = 'double'
    suite = 'suite'


class Room(Base):
    __tablename__ = 'room'
    __table_args__ = (UniqueConstraint('floor_no', 'room_no', name='uq_room_floor_no_room_no'),)

    id = Column(Integer, primary_key=True)
    floor_no = Column(Integer, nullable=False)
    room_no = Column(Integer, nullable=False)
    name = Column(String(100), index=True)
    kind = Column(Enum(RoomKind, name='room_kind'), nullable=False, default=RoomKind.single)
    supplement = Column(Float, nullable=False, default=0)
    price = Column(Numeric(10, 2), nullable=False, default=0)
    extras = Column(JSONB, nullable=False, default=dict)
    uuid = Column(UUID(as_uuid=True), nullable=False, server_default=func.gen_random_uuid())
    created = Column(DateTime, default=datetime.now, server_default=func.now())
    deleted = Column(DateTime, default=None)

    @hybrid_property
    def number(self):
        return '%d%02d' % (self.floor_no, self.room_no)

    def asdict(self):
        return {'id': self.id, 'floor_no': self.floor_no, 'room_no': self.room_no, 'name': self.name,
                'kind': self.kind.value, 'supplement': self.supplement, 'price': str(self.price),
                'extras': self.extras, 'uuid': str(self.uuid), 'number': self.number,
                'created': self.created.isoformat(), 'types': {
                    'price': type(self.price).__name__, 'uuid': type(self.uuid).__name__,
                    'kind': type(self.kind).__name__, 'created': type(self.created).__name__}}
