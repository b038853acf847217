# Services written as genesisng's services/room.py: SQLAlchemy's ORM on
# the outgoing SQL connection named in the user config, session.query()
# with filters, add and commit, rollback on IntegrityError.
from contextlib import closing
from http.client import CONFLICT, CREATED, NOT_FOUND, OK

from sqlalchemy import and_, func, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session as SASession
from zato.server.service import Float, Integer, Service

from models.room import Room, RoomKind


class Get(Service):
    class SimpleIO:
        input_required = (Integer('id'))

    def handle(self):
        conn = self.user_config.hotel.database.connection
        with closing(self.outgoing.sql.get(conn).session()) as session:
            room = session.query(Room).\
                filter(and_(Room.id == self.request.input.id, Room.deleted.is_(None))).\
                one_or_none()
            if room is None:
                self.response.status_code = NOT_FOUND
                return
            self.response.status_code = OK
            self.response.payload = room.asdict()


class List(Service):
    def handle(self):
        floor = int(self.request.http.GET.get('floor', 0))
        pattern = self.request.http.GET.get('name', '%')
        with closing(self.outgoing.sql.get('hotel').session()) as session:
            rooms = session.query(Room).\
                filter(Room.floor_no >= floor, Room.name.like(pattern), Room.deleted.is_(None)).\
                order_by(Room.floor_no, Room.room_no).all()
            self.response.payload = [r.asdict() for r in rooms]


class Create(Service):
    class SimpleIO:
        input_required = (Integer('floor_no'), Integer('room_no'), Float('supplement'))
        input_optional = ('name', 'kind', 'price', 'extras')

    def handle(self):
        inp = self.request.input
        room = Room(floor_no=inp.floor_no, room_no=inp.room_no, supplement=inp.supplement,
                    name=inp.name or None, kind=RoomKind(inp.kind or 'single'),
                    price=inp.price or '0', extras=inp.extras or {})
        session = self.outgoing.sql.get('hotel').session()
        try:
            session.add(room)
            session.commit()
            self.response.status_code = CREATED
            self.response.payload = room.asdict()
        except IntegrityError as e:
            session.rollback()
            self.response.status_code = CONFLICT
            self.response.payload = {'error': type(e.orig).__name__, 'sqlstate': e.orig.sqlstate}
        finally:
            session.close()


class Swap(Service):
    """Moves room A to B's number and B to A's in one transaction; the
    unique constraint makes the first update fail when both exist, and
    nothing of the transaction stays."""

    def handle(self):
        a, b = self.request.payload['a'], self.request.payload['b']
        with closing(self.outgoing.sql.get('hotel').session()) as session:
            first = session.query(Room).filter(Room.id == a).one()
            second = session.query(Room).filter(Room.id == b).one()
            first.name = 'moving'
            session.flush()
            try:
                first.floor_no, first.room_no = second.floor_no, second.room_no
                session.commit()
            except IntegrityError as e:
                session.rollback()
                self.response.status_code = CONFLICT
                self.response.payload = {'rolled_back': True, 'sqlstate': e.orig.sqlstate}
                return
        self.response.payload = {'rolled_back': False}


class Stats(Service):
    def handle(self):
        with closing(self.outgoing.sql.get('hotel').session()) as session:
            self.response.payload = {
                'count': session.query(func.count(Room.id)).scalar(),
                'suites': session.query(Room).filter(Room.kind == RoomKind.suite).count(),
                'sea': session.query(Room).filter(text("name LIKE 'Sea%'")).count(),
                'floor1': session.execute('SELECT count(*) FROM room WHERE floor_no = %(f)s', {'f': 1}).scalar(),
                'named': session.execute(text('SELECT count(*) FROM room WHERE floor_no = :f'), {'f': 1}).scalar(),
                'session': '%s.%s' % (type(session).__module__, type(session).__name__),
                'is_orm': isinstance(session, SASession),
            }
