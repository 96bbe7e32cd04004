"""Shared fixtures of the irsafs mount tests: the binary, a controlled environment, the local S3
server (tests/s3server.py) loaded with the reference dataset, and mounts that are always taken
down again.

Run: cd /work/main && make && IRSAFS_BIN=$PWD/build/irsafs /usr/bin/python3 -m pytest -q \
         tests/integration

Rules every test follows:
  * irsafs runs with a copy of os.environ from which every AWS_* variable (and any proxy
    setting) was removed; the test then sets exactly what it wants.
  * Every mount goes through a `Mounts` object whose finalizer unmounts (fusermount3 -u, then
    -uz) and kills, by PID, the irsafs processes the test started; a session finalizer sweeps
    any mount left under pytest's base temporary directory.
  * Waiting is polling with generous timeouts; nothing asserts on elapsed time.
"""

import base64
import math
import mmap
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / 'tests'))
import s3server  # noqa: E402  pylint: disable=wrong-import-position

BIN = os.path.abspath(os.environ.get('IRSAFS_BIN') or str(REPO / 'build' / 'irsafs'))
AKID, SECRET = 'AKIDTEST', 'secrettest'
BUCKET = 'test-bucket'
PAGE_SIZE = 100
HANG_GUARD = 30.0      # seconds: a subprocess taking longer than this is hung, not slow
MOUNT_TIMEOUT = 30.0   # seconds to wait for a mount to appear or disappear
PROXY_VARS = ('http_proxy', 'https_proxy', 'all_proxy', 'no_proxy', 'ftp_proxy')
# Captured at import: other test modules may scrub AWS_* from os.environ for the session.
CALLER_CA_BUNDLE = os.environ.get('AWS_CA_BUNDLE')


def pytest_configure(config):
    config.addinivalue_line(
        'markers', 'slow: waits through real credential lifetimes (10 s to 60 s each); make '
        'check runs these once, under AddressSanitizer, and the rest both plain and sanitized')


# ---------------------------------------------------------------------------------------------
# Small utilities


def wait_for(predicate, timeout=MOUNT_TIMEOUT, interval=0.02):
    """Poll `predicate` until it returns a true value (returned) or `timeout` passes (None)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)
        interval = min(interval * 1.5, 0.25)


def _unescape_mount_field(text):
    # /proc/mounts escapes space, tab, newline and backslash as \ooo.
    out, i = bytearray(), 0
    raw = text.encode('utf-8', 'surrogateescape')
    while i < len(raw):
        if raw[i:i + 1] == b'\\' and raw[i + 1:i + 4].isdigit():
            out.append(int(raw[i + 1:i + 4], 8))
            i += 4
        else:
            out.append(raw[i])
            i += 1
    return bytes(out)


def mount_table():
    """Return [(mount point bytes, fstype, options)] from /proc/mounts."""
    rows = []
    with open('/proc/mounts', 'rb') as file:
        for line in file.read().decode('utf-8', 'surrogateescape').splitlines():
            parts = line.split(' ')
            if len(parts) >= 4:
                rows.append((_unescape_mount_field(parts[1]), parts[2], parts[3]))
    return rows


def mount_entry(path):
    """The /proc/mounts row (mount point, type, options) for `path`, or None."""
    want = os.fsencode(os.path.realpath(path))
    for row in mount_table():
        if row[0] == want:
            return row
    return None


def is_mounted(path):
    return mount_entry(path) is not None


def unmount(path):
    """Unmount `path` if it is mounted: fusermount3 -u (retried while busy), then -uz.
    Returns True when nothing is mounted there any more."""
    if not is_mounted(path):
        return True
    deadline = time.monotonic() + 10
    while is_mounted(path) and time.monotonic() < deadline:
        subprocess.run(['fusermount3', '-u', str(path)], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=HANG_GUARD,
                       check=False)
        if wait_for(lambda: not is_mounted(path), timeout=1):
            return True
    subprocess.run(['fusermount3', '-uz', str(path)], stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=HANG_GUARD,
                   check=False)
    return bool(wait_for(lambda: not is_mounted(path), timeout=10))


def process_state(pid):
    """The state letter of process `pid` ('R', 'S', 'Z', ...) or None when it is gone."""
    try:
        with open(f'/proc/{pid}/stat', 'rb') as file:
            stat = file.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat[stat.rindex(b')') + 2:][:1].decode()


def process_alive(pid):
    """True while `pid` exists and is not a zombie (a zombie has exited; only its parent,
    possibly init, has not collected it yet)."""
    return process_state(pid) not in (None, 'Z')


def irsafs_pids(mountpoint):
    """PIDs of live irsafs processes (the binary under test) whose argv names `mountpoint`."""
    want = os.fsencode(str(mountpoint))
    found = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open(f'/proc/{entry}/cmdline', 'rb') as file:
                argv = file.read().split(b'\0')
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) == b'irsafs' and want in argv \
                and process_alive(int(entry)):
            found.append(int(entry))
    return found


def require_binary():
    if not (os.path.isfile(BIN) and os.access(BIN, os.X_OK)):
        pytest.fail(f'{BIN} is not an executable: run make, or set IRSAFS_BIN')


def closed_port():
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def irsafs_env(keep_ca_bundle=False, credentials=True, **overrides):
    """A copy of os.environ without any AWS_* or proxy variable, with the server's default
    credential unless credentials=False; overrides set variables (None removes one).
    keep_ca_bundle=True puts AWS_CA_BUNDLE back as the caller's environment had it.
    The EC2 metadata service is off: whatever answers at 169.254.169.254 on the machine
    running the tests must not take part (tests of it point it at the local server)."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith('AWS_') and name.lower() not in PROXY_VARS}
    env['AWS_EC2_METADATA_DISABLED'] = 'true'
    if keep_ca_bundle and CALLER_CA_BUNDLE is not None:
        env['AWS_CA_BUNDLE'] = CALLER_CA_BUNDLE
    if credentials:
        env['AWS_ACCESS_KEY_ID'] = AKID
        env['AWS_SECRET_ACCESS_KEY'] = SECRET
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


# ---------------------------------------------------------------------------------------------
# The naming model, implemented independently of the C code


def component_ok(component):
    """Whether one key component (bytes, no '/') can be a file name."""
    if component in (b'', b'.', b'..') or len(component) > 255 or b'\0' in component:
        return False
    try:
        component.decode('utf-8', 'strict')
    except UnicodeDecodeError:
        return False
    return True


def expected_tree(keys, prefix=b''):
    """What a mount of `prefix` shows for `keys` (bytes): (dirs, files), dirs a set of path
    tuples (() is the root), files a dict path tuple -> key.

    A key under the prefix is split at '/'. Walking its components from the top, each one
    followed by a '/' is a directory (a common prefix, or the key is a `dir/` marker); the walk
    stops at the first component that cannot be a name, hiding the rest of the key. The last
    component, when not empty, is a file, unless a directory has the same path (shadowing).
    """
    dirs, files = {()}, {}
    for key in keys:
        if not key.startswith(prefix):
            continue
        *dir_parts, leaf = key[len(prefix):].split(b'/')
        path, visible = (), True
        for component in dir_parts:
            if not component_ok(component):
                visible = False
                break
            path += (component,)
            dirs.add(path)
        if visible and leaf and component_ok(leaf):
            files[path + (leaf,)] = key
    return dirs, {path: key for path, key in files.items() if path not in dirs}


def list_pages(keys, prefix):
    """LIST requests the server needs for one delimiter listing of `prefix` (bytes) at
    PAGE_SIZE entries a page: every key without a further '/' and every common prefix is one
    entry."""
    entries = set()
    for key in keys:
        if key.startswith(prefix):
            rest = key[len(prefix):]
            cut = rest.find(b'/')
            entries.add(key if cut < 0 else prefix + rest[:cut + 1])
    return max(1, math.ceil(len(entries) / PAGE_SIZE))


def fs_path(root, path):
    """The bytes file system path of a path tuple under mount point `root`."""
    return os.path.join(os.fsencode(str(root)), *path) if path else os.fsencode(str(root))


# ---------------------------------------------------------------------------------------------
# The reference dataset

MTIME_BASE = 1_600_000_000
BIG_DIR_KEYS = 2550
LARGE_SIZE = 32 * 1024 * 1024 + 12345
BOUNDARY_SIZES = (0, 1, 4095, 4096, 4097, 131071, 131072, 131073,
                  1024 * 1024 - 1, 1024 * 1024, 1024 * 1024 + 1)
DEEP_LEVELS = 12

SPECIAL_NAMES = [
    'with space', ' leading space', 'trailing space ', 'plus+sign', 'a+b c', 'percent%',
    'percent%41', 'percent%2F', 'question?mark', 'hash#tag', 'amp&ersand', 'equals=sign',
    'tilde~', "single'quote", 'double"quote', '[brackets]', '{braces}', '(parens)', 'star*',
    'dollar$', 'back\\slash', 'co:lon', 'bang!', 'at@', 'comma,', 'semi;colon', 'caret^',
    'pipe|', 'back`tick', '<xml>&amp;', 'caf\u00e9', 'cafe\u0301', '\u4e2d\u6587\u6587\u4ef6',
    'Z\u0351\u0300\u0301algo', 'emoji \U0001f600', '\U0001f680', 'flag \U0001f1eb\U0001f1f7',
    'tab\there', 'new\nline', 'ctl\x01char', 'del\x7f', '.hidden', '..dots', '...', '-dash',
    'ends.', 'x' * 255, '\u00e9' * 127, '\U0001f600' * 63,
    "all +%?#&=~'\"[]{}()*$\\:!@,;",
]
SPECIAL_DIRS = [
    'dir with space', 'dir+plus', 'dir%25', 'dir?#&=', 'd\u00edr \u4e2d\u6587 \U0001f600',
    'quote\'"dir', '[{(*$\\:!@,;)}]', 'e\u0301 combining',
]


@dataclass
class Obj:
    key: bytes
    size: int
    seed: str = None
    data: bytes = None
    mtime: int = 0

    def content(self):
        return self.data if self.data is not None else s3server.make_data(self.size, self.seed)


@dataclass
class Dataset:
    objects: dict = field(default_factory=dict)   # key bytes -> Obj

    def add(self, key, size=None, data=None, mtime=None):
        key = key if isinstance(key, bytes) else key.encode()
        index = len(self.objects)
        if data is not None:
            size = len(data)
        elif size is None:
            size = 0  # a zero-byte object, e.g. a `dir/` marker
        obj = Obj(key, size, seed=None if data is not None else f'obj-{index}', data=data,
                  mtime=MTIME_BASE + 7 * index if mtime is None else mtime)
        self.objects[key] = obj
        return obj

    @property
    def keys(self):
        return list(self.objects)

    def bulk_items(self):
        for obj in self.objects.values():
            item = {'key_b64': base64.b64encode(obj.key).decode(), 'mtime': obj.mtime}
            if obj.data is not None:
                item['data'] = obj.data
            else:
                item.update(size=obj.size, seed=obj.seed)
            yield item


def build_dataset():
    ds = Dataset()
    # Names that stress URL encoding, XML escaping, signing and Unicode handling.
    for i, name in enumerate(SPECIAL_NAMES):
        ds.add(f'special/{name}', size=i + 1)
    for name in SPECIAL_DIRS:
        ds.add(f'special/{name}/inner file.txt', size=33)
        ds.add(f'special/{name}/{name}', size=5)
    ds.add('root file with space & plus+.txt', size=10)
    ds.add('\U0001f680 rocket dir/\u4e2d\u6587/\u00e9t\u00e9.txt', size=17)
    # A deep tree, with a file at every level and an empty directory at the bottom.
    path = 'deep'
    for level in range(1, DEEP_LEVELS + 1):
        path += f'/level {level:02d}'
        ds.add(f'{path}/file-{level:02d}.bin', size=level * 100)
    ds.add(f'{path}/empty-leaf/')
    ds.add(f'{path}/\u00e9\u00e8 \U0001f600/leaf.txt', size=3)
    # One directory of BIG_DIR_KEYS keys (small, several of them empty).
    for i in range(BIG_DIR_KEYS):
        ds.add(f'big/item-{i:05d}', size=i % 5)
    # Zero-byte directory markers.
    ds.add('emptydir/')
    ds.add('markers/')
    ds.add('markers/file.txt', size=12)
    ds.add('markers/empty/')
    ds.add('markers/sub/')
    ds.add('markers/sub/x.txt', size=7)
    ds.add('markers/nested/empty/')
    # Shadowing: a directory hides a file of the same name.
    ds.add('x', size=10)
    ds.add('x/y', size=11)
    ds.add('shadow/name', size=9)
    ds.add('shadow/name/')
    ds.add('shadow/file-only', size=4)
    # ... also when the file and the directory come back in different LIST pages.
    ds.add('pages/s', size=8)
    for i in range(150):
        ds.add(f'pages/s-{i:03d}', size=1)
    ds.add('pages/s/inner', size=6)
    ds.add('pages/t', size=8)
    ds.add('pages/t/')
    # Pages that end on names whose continuation tokens (base64) hold '+', '/' and '=', and
    # one that ends on a common prefix.
    for i in range(350):
        suffix = {99: '~?', 199: '?~', 299: '?~/child'}.get(i, '')
        ds.add(f'tokens/{i:03d}{suffix}', size=2)
    # Keys that cannot be file names, next to siblings that must survive.
    for key in ['a//b', './x', '../y', 'd/./e', 'd/../e', 'd/ok']:
        ds.add(key, size=3)
    for key in [b'bad/a//b', b'bad//lead-empty', b'bad/./x', b'bad/../y', b'bad/d/./e',
                b'bad/d/../e', b'bad/d/ok-2.txt', b'bad/' + b'L' * 256,
                b'bad/' + b'M' * 256 + b'/child', b'bad/' + '\u00e9'.encode() * 128,
                b'bad/nul\x00key', b'bad/nul-dir\x00/x', b'bad/\xff\xfeinvalid',
                b'bad/overlong\xc0\xaf', b'bad/surrogate\xed\xa0\x80',
                b'bad/truncated\xe4\xb8', b'bad/dir\xff/child', b'bad/trail//',
                b'bad/ok-1.txt', b'bad/zz-last.txt', b'nul\x00root', b'\xc3(invalid-root']:
        ds.add(key, size=4)
    # Sizes around block and request boundaries, and one large file.
    for size in BOUNDARY_SIZES:
        ds.add(f'sizes/size-{size}', size=size)
    ds.add('large/big.bin', size=LARGE_SIZE)
    # Modification times at the edges.
    ds.add('mtimes/epoch', size=1, mtime=0)
    ds.add('mtimes/y2038', size=1, mtime=2 ** 31)
    ds.add('mtimes/y2100', size=1, mtime=4102444800)
    ds.add('mtimes/explicit data', data=b'explicit bytes\n')
    return ds


DATASET = build_dataset()


# ---------------------------------------------------------------------------------------------
# Servers


@dataclass
class Server:
    proc: object
    port: int
    control: object

    @property
    def endpoint(self):
        return f'http://127.0.0.1:{self.port}'


def start(args):
    proc, port = s3server.start_server(args)
    return Server(proc, port, s3server.Control(port, timeout=120))


@pytest.fixture(scope='session')
def s3():
    """The main server: pages of PAGE_SIZE entries, DATASET in BUCKET."""
    server = start(['--page-size', str(PAGE_SIZE)])
    try:
        items = list(DATASET.bulk_items())
        for first in range(0, len(items), 1000):
            assert server.control.bulk(BUCKET, items[first:first + 1000]) == \
                len(items[first:first + 1000])
        yield server
    finally:
        s3server.stop_server(server.proc)
    assert 'Traceback' not in s3server.server_stderr(server.proc)


@pytest.fixture(scope='session')
def dataset():
    return DATASET


# ---------------------------------------------------------------------------------------------
# Mounts


class Mounts:
    """Starts irsafs and guarantees that what it mounted is unmounted and what it started is
    gone, whatever the test did. Use run() for a command expected to exit (errors, daemon
    mode), mount() for a foreground mount the test then uses."""

    def __init__(self, tmp_factory):
        self.tmp_factory = tmp_factory
        self.mountpoints = []
        self.procs = []
        self.logs = []

    def mountpoint(self, name='mnt'):
        path = self.tmp_factory.mktemp(name)
        self.mountpoints.append(path)
        return path

    def _log(self):
        log = tempfile.TemporaryFile()
        self.logs.append(log)
        return log

    def run(self, args, env, mountpoint=None, timeout=HANG_GUARD, cwd=None):
        """Run irsafs to completion (hang guard: `timeout`); return (returncode, stdout,
        stderr) with text decoded. Output goes to files, so a daemon that kept them open could
        not hang the test."""
        require_binary()
        if mountpoint is not None and mountpoint not in self.mountpoints:
            self.mountpoints.append(mountpoint)
        out, err = self._log(), self._log()
        proc = subprocess.Popen([BIN, *args], env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=err, cwd=cwd)
        self.procs.append(proc)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            pytest.fail(f'irsafs {args} did not finish within {timeout} s (hang)')
        out.seek(0)
        err.seek(0)
        return (proc.returncode, out.read().decode('utf-8', 'replace'),
                err.read().decode('utf-8', 'replace'))

    def mount(self, args, env, mountpoint=None, bucket=BUCKET):
        """Mount in the foreground (-f) and wait until the mount is live; returns a
        ForegroundMount. Fails the test with irsafs's output if it exits first."""
        require_binary()
        mountpoint = mountpoint or self.mountpoint()
        if mountpoint not in self.mountpoints:
            self.mountpoints.append(mountpoint)
        log = self._log()
        proc = subprocess.Popen([BIN, '-f', *args, bucket, str(mountpoint)], env=env,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        self.procs.append(proc)
        mounted = wait_for(lambda: is_mounted(mountpoint) or proc.poll() is not None)
        if not is_mounted(mountpoint):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.seek(0)
            pytest.fail(f'irsafs {args} did not mount (status {proc.returncode}, '
                        f'waited: {bool(mounted)}):\n{log.read().decode("utf-8", "replace")}')
        return ForegroundMount(Path(mountpoint), proc, log)

    def close(self):
        """Unmount everything and make sure every irsafs started here has ended; returns a
        list of problems (empty when all went cleanly). Safe to call more than once."""
        problems = []
        for mountpoint in self.mountpoints:
            if not unmount(mountpoint):
                problems.append(f'could not unmount {mountpoint}')
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                    problems.append(f'irsafs pid {proc.pid} had to be killed')
        # Daemons (forked by an irsafs we started) are found by their exact mount point.
        for mountpoint in self.mountpoints:
            for pid in irsafs_pids(mountpoint):
                if not wait_for(lambda pid=pid: not process_alive(pid), timeout=10):
                    os.kill(pid, signal.SIGKILL)
                    problems.append(f'irsafs daemon pid {pid} had to be killed')
        return problems

    def finish(self):
        problems = self.close()
        for log in self.logs:
            log.close()
        return problems


@dataclass
class ForegroundMount:
    path: Path
    proc: object
    log: object

    def output(self):
        self.log.seek(0)
        return self.log.read().decode('utf-8', 'replace')


@pytest.fixture
def mounts(tmp_path_factory, no_mount_left_behind):
    """Function-scoped Mounts; everything is torn down after the test."""
    manager = Mounts(tmp_path_factory)
    yield manager
    problems = manager.finish()
    assert not problems, problems


@pytest.fixture(scope='session')
def session_mounts(tmp_path_factory, no_mount_left_behind):
    """Session-scoped Mounts (requesting the safety net makes it run after this one)."""
    manager = Mounts(tmp_path_factory)
    yield manager
    problems = manager.finish()
    assert not problems, problems


@pytest.fixture(scope='session')
def main_mount(s3, session_mounts):
    """The dataset mounted read-only in the foreground with default options. AWS_CA_BUNDLE is
    left as the caller's environment has it (harmless for an http endpoint)."""
    return session_mounts.mount(['--endpoint-url', s3.endpoint],
                                irsafs_env(keep_ca_bundle=True))


@pytest.fixture(scope='session', autouse=True)
def no_mount_left_behind(tmp_path_factory):
    """Safety net: after the session, nothing may stay mounted under pytest's temporary
    directory (a leftover is unmounted lazily and reported)."""
    yield
    base = os.fsencode(str(tmp_path_factory.getbasetemp().resolve())) + b'/'
    leftovers = [row[0] for row in mount_table() if row[0].startswith(base)]
    for path in leftovers:
        unmount(os.fsdecode(path))
    assert not leftovers, f'mounts left behind: {leftovers}'


# ---------------------------------------------------------------------------------------------
# Helpers several test modules share


def direct_pread(fd, size, offset):
    """One O_DIRECT read from an open fd (size and offset multiples of 4096): the bytes read.
    O_DIRECT bypasses the kernel's page cache, so every such read reaches irsafs."""
    buf = mmap.mmap(-1, size)
    try:
        return bytes(buf[:os.preadv(fd, [buf], offset)])
    finally:
        buf.close()


def pread_direct(path, offset, size):
    """direct_pread of a path."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    try:
        return direct_pread(fd, size, offset)
    finally:
        os.close(fd)


def make_certificate(directory, name='cert'):
    """A self-signed certificate for localhost and 127.0.0.1; returns (cert, key) paths."""
    cert, key = directory / f'{name}.pem', directory / f'{name}-key.pem'
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2',
                    '-subj', '/CN=localhost',
                    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
                    '-keyout', str(key), '-out', str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')


def scrape(port):
    """The metrics as {(name, labels): value}; also checks the exposition format."""
    with urllib.request.urlopen(f'http://127.0.0.1:{port}/metrics', timeout=10) as resp:
        assert resp.status == 200
        assert resp.headers['Content-Type'].startswith('text/plain; version=0.0.4')
        text = resp.read().decode()
    samples, typed = {}, set()
    for line in text.splitlines():
        if line.startswith('# TYPE '):
            typed.add(line.split()[2])
            continue
        if line.startswith('#') or not line:
            continue
        match = SAMPLE.match(line)
        assert match, f'not a sample line: {line!r}'
        name, labels, value = match.groups()
        base = re.sub(r'_(bucket|sum|count)$', '', name)
        assert name in typed or base in typed, f'{name} has no TYPE line'
        samples[(name, labels or '')] = float(value)
    return samples


def value(samples, name, **labels):
    want = ','.join(f'{k}="{v}"' for k, v in labels.items())
    for (n, lab), v in samples.items():
        if n == name and all(f'{k}="{val}"' in lab for k, val in labels.items()):
            return v
    raise KeyError(f'{name}{{{want}}}')


def scrape_ok(port):
    try:
        return scrape(port)
    except OSError:
        return None
