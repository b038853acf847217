"""``self.commands``: shell commands as Zato 3.2 runs them
(``zato.server.commands``): ``invoke`` waits and gives a
``CommandResult``; ``invoke_async`` starts the command on a thread and
gives at once a result with only the command's details; a callback
(a callable, a service's name or class) gets the finished result. The
command runs as the worker, in its sandbox: no new privileges and, where
the kernel has Landlock, read-only system directories and nothing of the
node's state."""

import datetime
import threading
import uuid
from dataclasses import dataclass

from alpharen.model import Model

TIMEOUT = 600.0
ENCODING = 'utf8'
REPLACE_CHAR = '\N{REPLACEMENT CHARACTER}'


@dataclass(init=False)
class CommandResult(Model):
    cid: str = ''
    command: str = ''
    callback: object = None
    stdin: str = ''
    stdout: str = ''
    stderr: str = ''
    is_async: bool = False
    use_pubsub: bool = False
    is_ok: bool = False
    timeout: float = TIMEOUT
    exit_code: int = -1
    len_stdout_bytes: int = 0
    len_stderr_bytes: int = 0
    encoding: str = ENCODING
    replace_char: str = REPLACE_CHAR
    is_timeout: bool = False
    timeout_msg: str = ''
    start_time_iso: str = ''
    end_time_iso: str = ''
    total_time: str = ''
    total_time_sec: float = -1.0


def _text(data, encoding, replace_char):
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        return data.decode(encoding, 'replace').replace(REPLACE_CHAR, replace_char)


class Commands:
    def __init__(self, service):
        self._service = service

    def _result(self, command, cid, stdin, timeout, encoding, replace_char, use_pubsub, callback):
        out = CommandResult.from_dict({})
        out.cid, out.command, out.stdin, out.timeout = cid, command, stdin, timeout
        out.encoding, out.replace_char, out.use_pubsub = encoding, replace_char, use_pubsub
        out.callback = callback if isinstance(callback, str) else None
        return out

    def invoke(self, command, *, cid='', timeout=TIMEOUT, callback=None, stdin='', encoding=ENCODING,
               use_pubsub=False, replace_char=REPLACE_CHAR):
        import subprocess  # on first use: a worker's start is shorter without it
        out = self._result(command, cid or 'zcmd' + uuid.uuid4().hex, stdin, timeout, encoding,
                           replace_char, use_pubsub, callback)
        start = datetime.datetime.now(datetime.timezone.utc)
        out.start_time_iso = start.isoformat()
        try:
            done = subprocess.run(command, shell=True, capture_output=True, timeout=timeout or None,
                                  input=stdin if isinstance(stdin, bytes) else stdin.encode(encoding))
        except subprocess.TimeoutExpired as e:
            out.is_timeout = True
            out.timeout_msg = str(e).replace(' seconds', ' sec.')
        else:
            out.exit_code = done.returncode
            out.is_ok = done.returncode == 0
            out.len_stdout_bytes, out.len_stderr_bytes = len(done.stdout), len(done.stderr)
            out.stdout = _text(done.stdout, encoding, replace_char)
            out.stderr = _text(done.stderr, encoding, replace_char)
        end = datetime.datetime.now(datetime.timezone.utc)
        out.end_time_iso = end.isoformat()
        out.total_time = str(end - start)
        out.total_time_sec = (end - start).total_seconds()
        if callback:
            self._callback(callback, out)
        return out

    def invoke_async(self, command, *, cid='', timeout=TIMEOUT, callback=None, stdin='', encoding=ENCODING,
                     use_pubsub=False, replace_char=REPLACE_CHAR):
        cid = cid or 'zcma' + uuid.uuid4().hex
        out = self._result(command, cid, stdin, timeout, encoding, replace_char, use_pubsub, callback)
        out.is_async = out.is_ok = True
        threading.Thread(target=self.invoke, args=(command,), daemon=True, kwargs=dict(
            cid=cid, timeout=timeout, callback=callback, stdin=stdin, encoding=encoding,
            use_pubsub=use_pubsub, replace_char=replace_char)).start()
        return out

    def _callback(self, callback, result):
        from alpharen.integrator import Service
        if callable(callback) and not (isinstance(callback, type) and issubclass(callback, Service)):
            callback(result)
            return
        target = callback.get_name() if isinstance(callback, type) else callback
        data = result.to_dict()
        data['callback'] = target
        if result.use_pubsub:
            self._service.pubsub.publish(target, data=data)
        else:
            self._service.invoke(target, data)
