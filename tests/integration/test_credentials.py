"""The credential lifecycle of irsafs: web identity (IRSA) through STS
AssumeRoleWithWebIdentity, container credentials (EKS Pod Identity) and IMDSv2, served by
tests/s3server.py on the same port as S3.

What is checked: the first credentials and their retries at mount time; permanent failures
ending the mount at once with one line; renewal ahead of expiry while files are read and
listed continuously; token rotation by atomic rename; S3 refusing credentials mid-run
(revocation); STS throttling during a renewal; the order of the credential chain; and that no
secret ever reaches the log, an error message or the command line.

Run: cd /work/main && make && IRSAFS_BIN=$PWD/build/irsafs /usr/bin/python3 -m pytest -q \\
         tests/integration/test_credentials.py

Every irsafs and server started here is stopped, and every mount taken down, whatever the
outcome (conftest's Mounts, the `servers` fixture and the Readers context manager). Waiting
is polling with generous hang guards; nothing asserts on elapsed time. Credential lifetimes
are short (SHORT_LIFETIME seconds) so that several renewals happen within a test: irsafs
renews at min(5 min, half the lifetime) before expiry.
"""

import base64
import collections
import functools
import hashlib
import itertools
import json
import os
import random
import re
import secrets
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

import s3server
from conftest import (BUCKET, HANG_GUARD, closed_port, irsafs_env, irsafs_pids,
                      is_mounted, start)

ACCOUNT = '123456789012'
ROLE_ARN = f'arn:aws:iam::{ACCOUNT}:role/irsafs/bucket-reader'
OTHER_ROLE_ARN = f'arn:aws:iam::{ACCOUNT}:role/somebody-else'
SESSION_NAME = 'irsafs-credential-tests'
SHORT_LIFETIME = 20        # seconds: renewed about every 10 s
CACHE_SIZE = '16M'         # irsafs's smallest block cache, a third of the files read
RENEWAL_GUARD = 90.0       # seconds to wait for a renewal that is due within ~15 s
STS_OP = 'AssumeRoleWithWebIdentity'
IMDS_OPS = ('IMDSToken', 'IMDSRoleName', 'IMDSCredentials')


# ---------------------------------------------------------------------------------------------
# The bucket: files whose content every reader can check


def _build_files():
    files = {}

    def add(path, size):
        files[path] = (size, f'credentials:{path}')

    for i in range(8):
        add(f'data/small-{i}.txt', 1 + 997 * i)
    for i in range(4):
        add(f'data/medium-{i}.bin', 200_000 + 77_777 * i)
    add('data/large.bin', 3 * 1024 * 1024 + 17)
    add('data/empty.bin', 0)
    for j in range(3):
        for k in range(4):
            add(f'tree/dir-{j}/file-{k}.bin', 1000 * (k + 1) + j)
    # Three times the block cache of the mounts (CACHE_SIZE): reads keep reaching S3.
    for i in range(12):
        add(f'bulk/part-{i:02d}.bin', 4 * 1024 * 1024 - 1000 * i)
    # Read at most once each, so that reading one surely reaches S3 (lookup and GET).
    for i in range(300):
        add(f'fresh/f-{i:03d}.bin', 4096 + i)
    return files


FILES = _build_files()
READ_PATHS = sorted(path for path in FILES if not path.startswith('fresh/'))
FRESH_PATHS = sorted(path for path in FILES if path.startswith('fresh/'))


def fresh_then_again():
    """FRESH_PATHS, then over again: for loops of unknown length (with --metadata-ttl 0 an
    open asks S3 anyway, to look the name up)."""
    return itertools.cycle(FRESH_PATHS)


def _build_dirs():
    dirs = collections.defaultdict(set)
    for path in FILES:
        parts = path.split('/')
        for depth in range(len(parts)):
            dirs['/'.join(parts[:depth])].add(parts[depth])
    return dict(dirs)


DIRS = _build_dirs()   # '' is the root; directory -> its entry names
LISTED_DIRS = sorted(directory for directory in DIRS if not directory.startswith('fresh'))


def content(path):
    size, seed = FILES[path]
    return s3server.make_data(size, seed)


@functools.lru_cache(maxsize=None)
def expected_digest(path):
    return FILES[path][0], hashlib.sha256(content(path)).hexdigest()


def load_bucket(server):
    items = [{'key': path, 'size': size, 'seed': seed} for path, (size, seed) in FILES.items()]
    assert server.control.bulk(BUCKET, items) == len(items)


# ---------------------------------------------------------------------------------------------
# Tokens, servers and environments


def make_token(subject='irsafs'):
    """A fresh JWT-shaped web identity token (about 900 characters, like a projected
    service-account token); the server compares it with its token file, never checks it."""
    def part(value):
        raw = value if isinstance(value, bytes) else json.dumps(value).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip('=')
    now = int(time.time())
    claims = {'aud': ['sts.amazonaws.com'], 'exp': now + 86400, 'iat': now,
              'iss': 'https://oidc.eks.us-east-1.amazonaws.com/id/TESTCLUSTER',
              'sub': f'system:serviceaccount:default:{subject}',
              'jti': secrets.token_hex(16)}
    return '.'.join([part({'alg': 'RS256', 'kid': secrets.token_hex(20)}), part(claims),
                     part(secrets.token_bytes(256))])


def sha256_hex(text):
    return hashlib.sha256(text.encode()).hexdigest()


class Servers:
    """Starts test servers (each loaded with FILES) and stops them all at the end."""

    def __init__(self):
        self.started = []

    def start(self, *args):
        server = start([str(arg) for arg in args])
        self.started.append(server)
        load_bucket(server)
        return server

    def stop_all(self):
        problems = []
        for server in self.started:
            s3server.stop_server(server.proc)
            if 'Traceback' in s3server.server_stderr(server.proc):
                problems.append(s3server.server_stderr(server.proc))
        self.started = []
        return problems


@pytest.fixture(name='servers')
def fixture_servers():
    manager = Servers()
    try:
        yield manager
    finally:
        problems = manager.stop_all()
    assert not problems, problems


@pytest.fixture(name='token_file')
def fixture_token_file(tmp_path):
    """The projected web identity token file, holding a fresh token."""
    path = tmp_path / 'eks.amazonaws.com' / 'serviceaccount' / 'token'
    path.parent.mkdir(parents=True)
    s3server.write_token_file(path, make_token())
    return path


def read_token(path):
    return Path(path).read_text(encoding='utf-8').strip()


def sts_server(servers, token_file, *args):
    return servers.start('--sts-token-file', token_file, *args)


def web_identity_env(server, token_file, **overrides):
    """irsafs's environment for IRSA: role and token file, STS at the test server, no static
    keys (AWS_CA_BUNDLE as the caller has it: harmless for http endpoints)."""
    settings = {'AWS_ROLE_ARN': ROLE_ARN, 'AWS_WEB_IDENTITY_TOKEN_FILE': str(token_file),
                'AWS_ENDPOINT_URL_STS': server.endpoint}
    settings.update(overrides)
    return irsafs_env(keep_ca_bundle=True, credentials=False, **settings)


def container_env(server, token_file, **overrides):
    settings = {'AWS_CONTAINER_CREDENTIALS_FULL_URI': f'{server.endpoint}/v1/credentials',
                'AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE': str(token_file)}
    settings.update(overrides)
    return irsafs_env(keep_ca_bundle=True, credentials=False, **settings)


def imds_env(server, **overrides):
    settings = {'AWS_EC2_METADATA_DISABLED': None,
                'AWS_EC2_METADATA_SERVICE_ENDPOINT': server.endpoint}
    settings.update(overrides)
    return irsafs_env(keep_ca_bundle=True, credentials=False, **settings)


def mount_options(server, *extra):
    """Listings and attributes are never trusted from cache (--metadata-ttl 0), and the block
    cache is much smaller than the files read (whose pages check_file drops from the kernel's
    cache after reading), so that reads keep reaching S3."""
    return ['--endpoint-url', server.endpoint, '--metadata-ttl', '0', '--cache-size',
            CACHE_SIZE, *extra]


def requests_of(server):
    return server.control.stats()['requests']


def issued(server, source):
    return [entry for entry in server.control.issued() if entry['source'] == source]


def token_rejections(server):
    return server.control.credential_stats()['token_rejections']


def wait_until(predicate, timeout, what, interval=0.2):
    """Poll until predicate() is true; fail the test after `timeout` seconds (a hang guard,
    not a performance bound)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f'{what}: still not the case after {timeout} s')
        time.sleep(interval)


def failed_mount(mounts, server, env, options=()):
    """Run irsafs (with --endpoint-url of `server` unless None) expecting it to refuse to
    mount; check the one-line error (the only output) and that nothing is mounted or left
    running; return the line (without its newline)."""
    mountpoint = mounts.mountpoint('failed')
    endpoint = ['--endpoint-url', server.endpoint] if server is not None else []
    status, out, err = mounts.run([*endpoint, *options, BUCKET, str(mountpoint)], env,
                                  mountpoint)
    assert status != 0, err
    assert out == ''
    assert err.startswith('irsafs: ') and err.endswith('\n') and err.count('\n') == 1, err
    assert not is_mounted(mountpoint), 'a failed start left a mount'
    assert irsafs_pids(mountpoint) == [], 'a failed start left a process'
    assert os.listdir(mountpoint) == []
    return err.rstrip('\n')


def check_file(root, path):
    """Read `path` under the mount in 1 MiB chunks, then drop its pages from the kernel's
    cache (so the next read asks irsafs again); return an error text, or None when every byte
    is right."""
    size, digest = expected_digest(path)
    hasher, got = hashlib.sha256(), 0
    with open(os.path.join(root, path), 'rb') as file:
        while True:
            chunk = file.read(1 << 20)
            if not chunk:
                break
            hasher.update(chunk)
            got += len(chunk)
        os.posix_fadvise(file.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    if (got, hasher.hexdigest()) != (size, digest):
        return f'wrong content: {got} bytes (want {size}), sha256 {hasher.hexdigest()}'
    return None


def read_all(root, paths):
    """Read and check files one after the other; any error fails the test."""
    for path in paths:
        assert check_file(root, path) is None, path


# ---------------------------------------------------------------------------------------------
# Continuous readers


class Readers:
    """Threads that read and check files, list directories and stat files through a mount,
    plus a thread running sha256sum(1) processes over batches of files, until stopped. Every
    failure (an OSError, wrong bytes, a wrong listing, a reader that hangs) is recorded with
    what was being done. Use as a context manager: leaving it stops and joins the readers."""

    def __init__(self, root, readers=4, listers=1, processes=1, paths=READ_PATHS):
        self.root = str(root)
        self.paths = list(paths)
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.failures = []
        self.counts = collections.Counter()
        self.threads = (
            [threading.Thread(target=self._reader, args=(n,), name=f'reader-{n}', daemon=True)
             for n in range(readers)]
            + [threading.Thread(target=self._lister, args=(n,), name=f'lister-{n}',
                                daemon=True) for n in range(listers)]
            + [threading.Thread(target=self._process_reader, args=(n,),
                                name=f'sha256sum-{n}', daemon=True) for n in range(processes)])

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc_info):
        self.stop()

    def stop(self):
        self.stopping.set()
        for thread in self.threads:
            thread.join(HANG_GUARD)
        hung = [thread.name for thread in self.threads if thread.is_alive()]
        if hung:
            self._fail('hang', '-', f'still busy {HANG_GUARD} s after being stopped: {hung}')

    def snapshot(self):
        with self.lock:
            return collections.Counter(self.counts)

    def keep_reading(self, seconds):
        """Let the readers work for `seconds` (the length of the workload, not a bound)."""
        time.sleep(seconds)

    def _fail(self, kind, what, detail):
        with self.lock:
            self.failures.append((time.strftime('%H:%M:%S'), kind, what, detail))

    def _count(self, kind, amount=1):
        with self.lock:
            self.counts[kind] += amount

    def _reader(self, number):
        rng = random.Random(number)
        while not self.stopping.is_set():
            path = rng.choice(self.paths)
            try:
                problem = check_file(self.root, path)
            except OSError as error:
                problem = f'{type(error).__name__}: {error}'
            if problem:
                self._fail('read', path, problem)
            else:
                self._count('reads')
                self._count('bytes', FILES[path][0])

    def _lister(self, number):
        rng = random.Random(1000 + number)
        while not self.stopping.is_set():
            directory = rng.choice(LISTED_DIRS)
            try:
                names = set(os.listdir(os.path.join(self.root, directory)))
                if names != DIRS[directory]:
                    self._fail('list', directory, f'got {sorted(names)}')
                else:
                    self._count('listings')
                path = rng.choice(self.paths)
                size = os.stat(os.path.join(self.root, path)).st_size
                if size != FILES[path][0]:
                    self._fail('stat', path, f'size {size}')
                else:
                    self._count('stats')
            except OSError as error:
                self._fail('list', directory, f'{type(error).__name__}: {error}')

    def _process_reader(self, number):
        rng = random.Random(2000 + number)
        while not self.stopping.is_set():
            batch = rng.sample(self.paths, 4)
            try:
                result = subprocess.run(['sha256sum', '--', *batch], cwd=self.root,
                                        stdin=subprocess.DEVNULL, capture_output=True,
                                        timeout=HANG_GUARD, check=False)
            except subprocess.TimeoutExpired:
                self._fail('process', ' '.join(batch), 'sha256sum hung')
                continue
            lines = result.stdout.decode('utf-8', 'replace').splitlines()
            got = {line.split('  ', 1)[1]: line.split('  ', 1)[0] for line in lines
                   if '  ' in line}
            want = {path: expected_digest(path)[1] for path in batch}
            if result.returncode != 0 or got != want:
                self._fail('process', ' '.join(batch),
                           f'status {result.returncode}, '
                           f'stderr {result.stderr.decode("utf-8", "replace")!r}, got {got}')
            else:
                self._count('process_reads', len(batch))


def assert_no_read_failures(readers, mount):
    assert not readers.failures, (
        f'{len(readers.failures)} failed reads, first ones: {readers.failures[:10]}\n'
        f'irsafs log (end):\n{mount.output()[-4000:]}')


# ---------------------------------------------------------------------------------------------
# 1. Web identity: renewals under continuous reads, and token rotation


@pytest.mark.slow
def test_web_identity_renews_under_continuous_reads_and_follows_token_rotation(
        servers, token_file, mounts):
    """60 s of reading, hashing and listing with credentials living SHORT_LIFETIME s; the
    token file is replaced (atomic rename) at 25 s and from then on STS accepts only the new
    token. No read may fail, every byte must be right, renewals must come before expiry (S3
    never refuses a token) and, once the new token is used, the old one never is again."""
    old_token = read_token(token_file)
    server = sts_server(servers, token_file, '--sts-duration', SHORT_LIFETIME)
    mount = mounts.mount(mount_options(server), web_identity_env(server, token_file))
    assert requests_of(server).get(STS_OP) == 1
    with Readers(mount.path) as readers:
        readers.keep_reading(25)
        before_rotation = readers.snapshot()
        gets_before_rotation = requests_of(server).get('GetObject', 0)
        new_token = make_token('rotated')
        s3server.write_token_file(token_file, new_token)
        readers.keep_reading(35)
    after_rotation = readers.snapshot() - before_rotation
    assert_no_read_failures(readers, mount)
    assert mount.proc.poll() is None, mount.output()[-4000:]
    for kind in ('reads', 'listings', 'stats', 'process_reads'):
        assert before_rotation[kind] > 0 and after_rotation[kind] > 0, (kind, readers.counts)

    stats = server.control.stats()
    sts = [entry for entry in stats['credentials']['issued'] if entry['source'] == 'sts']
    assert len(sts) >= 4, f'the mount and at least 3 renewals expected: {sts}'
    assert stats['credentials']['token_rejections'] == {'ExpiredToken': 0, 'InvalidToken': 0}
    # Reads reached S3 on both sides of the rotation.
    assert gets_before_rotation > 0 and stats['requests']['GetObject'] > gets_before_rotation
    assert stats['requests']['ListObjectsV2'] > 0
    assert all(entry['role_arn'] == ROLE_ARN for entry in sts)
    # Without AWS_ROLE_SESSION_NAME the session is named after the host.
    assert all(entry['session_name'].startswith('irsafs-') for entry in sts), sts
    fingerprints = [entry['web_identity_token_sha256'] for entry in sts]
    old, new = sha256_hex(old_token), sha256_hex(new_token)
    assert set(fingerprints) <= {old, new}
    assert fingerprints[0] == old and new in fingerprints, fingerprints
    first_new = fingerprints.index(new)
    assert fingerprints[first_new:] == [new] * (len(fingerprints) - first_new), fingerprints
    log = mount.output()
    assert log.count('renewed credentials source=web-identity') == len(sts) - 1, log[-4000:]
    assert 'S3 refused the credentials' not in log, log[-4000:]


class KubeletProjectedVolume:
    """A projected service-account token volume laid out as kubelet writes it: `token` is a
    symlink to ``..data/token``, ``..data`` a symlink to a timestamped directory; an update
    writes a new directory and swaps ``..data`` by renaming a new symlink over it, then
    removes the old directory."""

    def __init__(self, directory):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.generation = 0
        self.current = None

    @property
    def token_path(self):
        return self.directory / 'token'

    def write(self, token):
        self.generation += 1
        payload = self.directory / f'..2026_11_29_00_00_{self.generation:02d}.{os.getpid()}'
        payload.mkdir()
        (payload / 'token').write_text(token, encoding='utf-8')
        staging = self.directory / '..data_tmp'
        staging.symlink_to(payload.name)
        os.replace(staging, self.directory / '..data')
        if not self.token_path.is_symlink():
            self.token_path.symlink_to('..data/token')
        if self.current is not None:
            (self.current / 'token').unlink()
            self.current.rmdir()
        self.current = payload


@pytest.mark.slow
def test_web_identity_follows_a_kubelet_symlink_swap(servers, tmp_path, mounts):
    volume = KubeletProjectedVolume(tmp_path / 'serviceaccount')
    first = make_token('kubelet-1')
    volume.write(first)
    server = sts_server(servers, volume.token_path, '--sts-duration', SHORT_LIFETIME)
    mount = mounts.mount(mount_options(server), web_identity_env(server, volume.token_path))
    second = make_token('kubelet-2')
    with Readers(mount.path, readers=2, processes=0) as readers:
        volume.write(second)
        wait_until(lambda: issued(server, 'sts')[-1]['web_identity_token_sha256']
                   == sha256_hex(second), RENEWAL_GUARD, 'a renewal with the swapped token')
    assert_no_read_failures(readers, mount)
    fingerprints = [entry['web_identity_token_sha256'] for entry in issued(server, 'sts')]
    assert fingerprints[0] == sha256_hex(first) and set(fingerprints) == {
        sha256_hex(first), sha256_hex(second)}
    assert requests_of(server)[STS_OP] == len(fingerprints), 'an STS call failed'
    assert token_rejections(server) == {'ExpiredToken': 0, 'InvalidToken': 0}


# ---------------------------------------------------------------------------------------------
# 2. Transient STS failures at mount time are retried


@pytest.mark.parametrize('failure', [
    'fail-first option (503 ServiceUnavailable)',
    '400 Throttling',
    '400 IDPCommunicationError',
    '500 InternalFailure',
])
def test_one_transient_sts_failure_at_mount_is_retried(servers, token_file, mounts, failure):
    if failure.startswith('fail-first'):
        server = sts_server(servers, token_file, '--sts-fail-first', 1)
    else:
        server = sts_server(servers, token_file)
        status, code = failure.split()
        server.control.sts_fail(1, status=int(status), code=code)
    env = web_identity_env(server, token_file, AWS_ROLE_SESSION_NAME=SESSION_NAME)
    mount = mounts.mount(mount_options(server), env)
    read_all(mount.path, ['data/small-3.txt', 'tree/dir-1/file-2.bin'])
    stats = server.control.stats()
    assert stats['requests'][STS_OP] == 2
    assert stats['credentials']['injected_failures']['sts'] == 1
    (entry,) = issued(server, 'sts')
    assert (entry['role_arn'], entry['session_name']) == (ROLE_ARN, SESSION_NAME)


@pytest.mark.parametrize('token', [
    'opaque+token/with=form&special%20characters~*',
    'eyJhbGciOiJSUzI1NiJ9.' + 'x' * 4000 + '.sig',    # a long token
], ids=['form-special-characters', 'long'])
def test_any_token_text_reaches_sts_intact(servers, token_file, mounts, token):
    """The token is form-encoded in the request body: '+', '/', '=', '&' and '%' must reach
    STS unchanged (the server compares it with its file)."""
    s3server.write_token_file(token_file, token + '\n')
    server = sts_server(servers, token_file)
    mount = mounts.mount(mount_options(server), web_identity_env(server, token_file))
    read_all(mount.path, ['data/small-1.txt'])
    (entry,) = issued(server, 'sts')
    assert entry['web_identity_token_sha256'] == sha256_hex(token)


@pytest.mark.parametrize('ca_bundle', ['as-is', 'unset', 'nonexistent', 'empty'])
def test_ca_bundle_does_not_matter_for_http_credential_endpoints(servers, token_file,
                                                                 agent_token_file, mounts,
                                                                 ca_bundle):
    """With or without AWS_CA_BUNDLE (even naming no file), plain http STS and container
    endpoints work."""
    server = servers.start('--sts-token-file', token_file,
                           '--container-token-file', agent_token_file)
    value = {'as-is': os.environ.get('AWS_CA_BUNDLE'), 'unset': None,
             'nonexistent': '/nonexistent/ca-bundle.pem', 'empty': ''}[ca_bundle]
    for env in (web_identity_env(server, token_file, AWS_CA_BUNDLE=value),
                container_env(server, agent_token_file, AWS_CA_BUNDLE=value)):
        mount = mounts.mount(mount_options(server), env)
        read_all(mount.path, ['data/small-2.txt'])
        mounts.close()
    requests = requests_of(server)
    assert requests[STS_OP] == 1 and requests['ContainerCredentials'] == 1


def test_sts_failing_every_time_ends_the_mount_after_a_few_tries(servers, token_file, mounts):
    """Transient failures are retried a bounded number of times, then reported in one line,
    the only output (before b8019f8 each retry also printed an info line)."""
    server = sts_server(servers, token_file)
    server.control.sts_fail(1000, status=503, code='ServiceUnavailable')
    line = failed_mount(mounts, server, web_identity_env(server, token_file))
    assert 'ServiceUnavailable' in line and 'AssumeRoleWithWebIdentity' in line, line
    calls = requests_of(server)[STS_OP]
    assert 1 < calls < 1000, calls
    assert read_token(token_file) not in line


# ---------------------------------------------------------------------------------------------
# 3. Permanent failures end the mount at once


PERMANENT_FAILURES = {
    # name: (what to change, expected words ({token_file} is substituted), STS calls)
    'invalid token': ({'file_token': 'a-token-the-server-does-not-know-0123456789'},
                      ('InvalidIdentityToken', '{token_file}'), 1),
    'missing token file': ({'env': {'AWS_WEB_IDENTITY_TOKEN_FILE': '{missing}'}},
                           ('{missing}',), 0),
    'empty token file': ({'file_token': '\n'}, ('{token_file}', 'empty'), 0),
    'malformed role ARN': ({'env': {'AWS_ROLE_ARN': 'arn:aws:iam::1234:role/short-account'}},
                           ('AWS_ROLE_ARN', 'arn:aws:iam::1234:role/short-account'), 0),
    'role ARN of a user': ({'env': {'AWS_ROLE_ARN': f'arn:aws:iam::{ACCOUNT}:user/bob'}},
                           ('AWS_ROLE_ARN',), 0),
    'role ARN that is not an ARN': ({'env': {'AWS_ROLE_ARN': 'bucket-reader'}},
                                    ('AWS_ROLE_ARN',), 0),
    'role not allowed': ({'server_role': OTHER_ROLE_ARN}, ('AccessDenied', ROLE_ARN), 1),
    'role ARN without token file': ({'env': {'AWS_WEB_IDENTITY_TOKEN_FILE': None}},
                                    ('AWS_ROLE_ARN', 'AWS_WEB_IDENTITY_TOKEN_FILE'), 0),
    'token file without role ARN': ({'env': {'AWS_ROLE_ARN': None}},
                                    ('AWS_ROLE_ARN', 'AWS_WEB_IDENTITY_TOKEN_FILE'), 0),
    'session name too short': ({'env': {'AWS_ROLE_SESSION_NAME': 'a'}},
                               ('AWS_ROLE_SESSION_NAME',), 0),
    'session name too long': ({'env': {'AWS_ROLE_SESSION_NAME': 's' * 65}},
                              ('AWS_ROLE_SESSION_NAME',), 0),
    'session name with a space': ({'env': {'AWS_ROLE_SESSION_NAME': 'my session'}},
                                  ('AWS_ROLE_SESSION_NAME',), 0),
    'session name with a slash': ({'env': {'AWS_ROLE_SESSION_NAME': 'team/reader'}},
                                  ('AWS_ROLE_SESSION_NAME',), 0),
    'session name not ASCII': ({'env': {'AWS_ROLE_SESSION_NAME': 'sesi\u00f3n'}},
                               ('AWS_ROLE_SESSION_NAME',), 0),
}


def run_permanent_failure(servers, token_file, mounts, name, options=()):
    change, expect, sts_calls = PERMANENT_FAILURES[name]
    server_token = read_token(token_file)
    args = ['--sts-role-arn', change['server_role']] if 'server_role' in change else []
    server = sts_server(servers, token_file, *args)
    client_token_file = token_file
    if 'file_token' in change:
        # irsafs reads its own file; the server keeps its token.
        client_token_file = token_file.parent / 'client-token'
        client_token_file.write_text(change['file_token'], encoding='utf-8')
    missing = str(token_file.parent / 'no-such-dir' / 'token')
    env_changes = {name: (value.format(missing=missing) if value else value)
                   for name, value in change.get('env', {}).items()}
    env = web_identity_env(server, client_token_file, **env_changes)
    mountpoint = mounts.mountpoint('failed')
    status, out, err = mounts.run(['--endpoint-url', server.endpoint, *options, BUCKET,
                                   str(mountpoint)], env, mountpoint)
    assert not is_mounted(mountpoint) and irsafs_pids(mountpoint) == []
    words = [word.format(token_file=client_token_file, missing=missing) for word in expect]
    return status, out, err, words, server, server_token, change.get('file_token')


@pytest.mark.parametrize('name', sorted(PERMANENT_FAILURES))
def test_permanent_failure_ends_the_mount_at_once(servers, token_file, mounts, name):
    """Non-zero status, one 'irsafs:' line naming the cause, nothing mounted, no retry (the
    server saw at most the one STS call), and no token in the message."""
    status, out, err, words, server, server_token, file_token = run_permanent_failure(
        servers, token_file, mounts, name)
    assert status != 0 and out == '', (status, err)
    assert err.startswith('irsafs: ') and err.endswith('\n') and err.count('\n') == 1, err
    for word in words:
        assert word in err, (word, err)
    assert requests_of(server).get(STS_OP, 0) == PERMANENT_FAILURES[name][2]
    assert server_token not in err
    if file_token and file_token.strip():
        assert file_token.strip() not in err


# ---------------------------------------------------------------------------------------------
# 4. S3 refusing the credentials mid-run is absorbed


@pytest.mark.parametrize('code', ['InvalidToken', 'ExpiredToken'])
def test_revoked_credentials_are_renewed_and_the_read_retried(servers, token_file, mounts,
                                                              code):
    server = sts_server(servers, token_file)            # credentials live an hour
    mount = mounts.mount(mount_options(server), web_identity_env(server, token_file))
    read_all(mount.path, ['data/small-1.txt'])
    assert requests_of(server)[STS_OP] == 1
    assert server.control.revoke(code) == 1
    # Files never read before and a directory never listed: all of it has to come from S3.
    read_all(mount.path, FRESH_PATHS[:10] + ['data/small-1.txt', 'data/medium-0.bin'])
    assert set(os.listdir(mount.path / 'tree' / 'dir-2')) == DIRS['tree/dir-2']
    assert requests_of(server)[STS_OP] >= 2
    assert token_rejections(server)[code] >= 1, 'the revocation was never noticed'
    newest = issued(server, 'sts')[-1]
    assert newest['revoked'] is None
    assert mount.proc.poll() is None


def test_credentials_refused_right_after_a_renewal_are_renewed_again(servers, token_file,
                                                                     mounts):
    """Credentials refused, renewed, and the renewed ones refused as well straight away, three
    times in a row: each refusal is absorbed like the first (S3 InvalidToken/ExpiredToken
    triggers an immediate renewal and one retry; irsafs allows a burst of three such forced
    renewals). Before b8019f8 a refusal within a second of a renewal failed the read with
    EACCES."""
    server = sts_server(servers, token_file)
    mount = mounts.mount(mount_options(server), web_identity_env(server, token_file))
    read_all(mount.path, ['data/small-0.txt'])
    fresh = iter(FRESH_PATHS[200:])
    for renewals, code in enumerate(['InvalidToken', 'ExpiredToken', 'InvalidToken'], 1):
        assert server.control.revoke(code) == 1       # the current credentials, at once
        read_all(mount.path, [next(fresh)])           # a forced renewal, then the retry
        assert len(issued(server, 'sts')) == 1 + renewals
    read_all(mount.path, [next(fresh) for _ in range(5)])
    assert token_rejections(server)['InvalidToken'] >= 2
    assert token_rejections(server)['ExpiredToken'] >= 1


@pytest.mark.parametrize('code', ['InvalidToken', 'ExpiredToken'])
def test_requests_refused_together_all_wait_for_the_one_renewal(servers, token_file, mounts,
                                                                code):
    """Eight reads of different files (each its own GET) are refused at once while STS is
    slow to answer the renewal: every one waits for the renewed credentials and is retried
    with them; none fails."""
    server = sts_server(servers, token_file)
    mount = mounts.mount(mount_options(server), web_identity_env(server, token_file))
    paths = FRESH_PATHS[100:108]
    files = []
    try:
        for path in paths:                      # the lookups happen now, before the refusal
            files.append(open(mount.path / path, 'rb'))  # pylint: disable=consider-using-with
        server.control.sts_fail(0, delay=5)
        assert server.control.revoke(code) == 1
        start_together = threading.Barrier(len(files))
        results = {}

        def read(path, file):
            start_together.wait(HANG_GUARD)
            try:
                data = file.read()
                results[path] = None if data == content(path) else 'wrong bytes'
            except OSError as error:
                results[path] = errno_name(error)

        threads = [threading.Thread(target=read, args=(path, file), daemon=True)
                   for path, file in zip(paths, files)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(HANG_GUARD)
        assert not any(thread.is_alive() for thread in threads), 'a read hung'
    finally:
        for file in files:
            file.close()
    assert results == {path: None for path in paths}, (results, mount.output()[-3000:])
    assert token_rejections(server)[code] >= 1
    assert issued(server, 'sts')[-1]['revoked'] is None


# ---------------------------------------------------------------------------------------------
# 5. STS throttling during a renewal


@pytest.mark.slow
def test_sts_throttling_during_renewal_is_retried(servers, token_file, mounts):
    server = sts_server(servers, token_file, '--sts-duration', SHORT_LIFETIME)
    mount = mounts.mount(mount_options(server), web_identity_env(server, token_file))
    with Readers(mount.path) as readers:
        # Before the first renewal (due about 10 s after the mount).
        server.control.sts_fail(count=2, status=400, code='Throttling')
        assert len(issued(server, 'sts')) == 1, 'a renewal came before the injection'
        wait_until(lambda: server.control.credential_stats()['injected_failures']['sts'] == 2,
                   RENEWAL_GUARD, 'the renewal meeting both Throttling answers')
        # After the throttling, renewals succeed again (at least twice).
        wait_until(lambda: len(issued(server, 'sts')) >= 3, RENEWAL_GUARD,
                   'renewals after the throttling')
    assert_no_read_failures(readers, mount)
    assert token_rejections(server) == {'ExpiredToken': 0, 'InvalidToken': 0}
    assert requests_of(server)[STS_OP] == len(issued(server, 'sts')) + 2
    log = mount.output()
    assert 'Throttling' in log, log[-4000:]
    assert readers.counts['reads'] > 0


def try_read(root, path):
    """Read and check one file; return None, or the error (an errno name or 'wrong bytes')."""
    try:
        return check_file(root, path) and 'wrong bytes'
    except OSError as error:
        return errno_name(error)


def errno_name(error):
    return os.strerror(error.errno) if error.errno else str(error)


@pytest.mark.slow
def test_mount_recovers_after_an_sts_outage_outlasting_the_credentials(servers, token_file,
                                                                       mounts):
    """STS refuses every renewal until the credentials have expired: reads then fail (nothing
    else is possible), and once STS answers again they work again, without remounting."""
    server = sts_server(servers, token_file, '--sts-duration', SHORT_LIFETIME)
    mount = mounts.mount(mount_options(server), web_identity_env(server, token_file))
    read_all(mount.path, ['data/small-7.txt'])
    server.control.sts_fail(count=10 ** 9, status=503, code='ServiceUnavailable')
    fresh = fresh_then_again()
    wait_until(lambda: try_read(mount.path, next(fresh)) is not None, RENEWAL_GUARD,
               'reads failing once the credentials expired')
    server.control.sts_fail(0)
    wait_until(lambda: try_read(mount.path, next(fresh)) is None, RENEWAL_GUARD,
               'reads working again after the outage')
    read_all(mount.path, [next(fresh) for _ in range(20)] + READ_PATHS)
    assert issued(server, 'sts')[-1]['revoked'] is None and len(issued(server, 'sts')) >= 2
    assert mount.proc.poll() is None


@pytest.mark.slow
def test_failing_renewals_do_not_call_sts_for_every_request(servers, token_file, mounts):
    """While STS keeps failing and the credentials have expired, reads fail; they must not
    each cost an STS call (renewal attempts follow the refresher's backoff). Before b8019f8
    every S3 request forced its own STS call: thousands per second against a failing STS."""
    server = sts_server(servers, token_file, '--sts-duration', SHORT_LIFETIME)
    mount = mounts.mount(mount_options(server), web_identity_env(server, token_file))
    server.control.sts_fail(count=10 ** 9, status=503, code='ServiceUnavailable')
    fresh = fresh_then_again()
    wait_until(lambda: try_read(mount.path, next(fresh)) is not None, RENEWAL_GUARD,
               'reads failing once the credentials expired')
    calls_before = requests_of(server)[STS_OP]
    failures = [try_read(mount.path, next(fresh)) for _ in range(50)]
    calls = requests_of(server)[STS_OP] - calls_before
    assert all(failures), failures
    assert calls <= 10, f'{calls} STS calls for 50 failed reads'


# ---------------------------------------------------------------------------------------------
# 6. Container credentials (EKS Pod Identity)


@pytest.fixture(name='agent_token_file')
def fixture_agent_token_file(tmp_path):
    """The Pod Identity agent's authorization token file (the server checks it too)."""
    path = tmp_path / 'eks-pod-identity-token'
    s3server.write_token_file(path, make_token('pod-identity'))
    return path


@pytest.mark.parametrize('token_from', ['file', 'variable', 'file before variable'])
def test_pod_identity_mounts_and_reads(servers, agent_token_file, mounts, token_from):
    """The agent token comes from AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE, or from
    AWS_CONTAINER_AUTHORIZATION_TOKEN; the file wins when both are set."""
    server = servers.start('--container-token-file', agent_token_file)
    env = container_env(server, agent_token_file)
    if token_from == 'variable':
        env.pop('AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE')
        env['AWS_CONTAINER_AUTHORIZATION_TOKEN'] = read_token(agent_token_file)
    elif token_from == 'file before variable':
        env['AWS_CONTAINER_AUTHORIZATION_TOKEN'] = 'not-the-agent-token'
    mount = mounts.mount(mount_options(server), env)
    read_all(mount.path, ['data/small-0.txt', 'data/large.bin', 'tree/dir-0/file-3.bin'])
    requests = requests_of(server)
    assert requests['ContainerCredentials'] >= 1 and STS_OP not in requests
    assert len(issued(server, 'container')) == requests['ContainerCredentials']


@pytest.mark.slow
def test_pod_identity_renews_and_follows_agent_token_rotation(servers, agent_token_file,
                                                              mounts):
    """Short-lived container credentials are renewed while reading; after the agent token is
    replaced (same file, read afresh by both sides) renewals still succeed."""
    server = servers.start('--container-token-file', agent_token_file,
                           '--container-duration', SHORT_LIFETIME)
    mount = mounts.mount(mount_options(server), container_env(server, agent_token_file))
    with Readers(mount.path, readers=2, processes=0) as readers:
        wait_until(lambda: len(issued(server, 'container')) >= 2, RENEWAL_GUARD,
                   'a renewal of the container credentials')
        s3server.write_token_file(agent_token_file, make_token('pod-identity-rotated'))
        rotated_at = len(issued(server, 'container'))
        wait_until(lambda: len(issued(server, 'container')) > rotated_at, RENEWAL_GUARD,
                   'a renewal with the rotated agent token')
    assert_no_read_failures(readers, mount)
    assert token_rejections(server) == {'ExpiredToken': 0, 'InvalidToken': 0}


def test_pod_identity_with_a_wrong_token_fails_the_mount(servers, agent_token_file, mounts,
                                                         tmp_path):
    server = servers.start('--container-token-file', agent_token_file)
    wrong = tmp_path / 'wrong-token'
    s3server.write_token_file(wrong, make_token('intruder'))
    line = failed_mount(mounts, server, container_env(server, wrong))
    assert 'container credentials' in line and f'{server.endpoint}/v1/credentials' in line, line
    assert '403' in line, line
    assert read_token(wrong) not in line and read_token(agent_token_file) not in line
    assert requests_of(server)['ContainerCredentials'] == 1, 'a refusal is not retried'


def test_pod_identity_with_a_missing_token_file_names_it(servers, agent_token_file, mounts,
                                                         tmp_path):
    server = servers.start('--container-token-file', agent_token_file)
    missing = tmp_path / 'absent' / 'token'
    line = failed_mount(mounts, server, container_env(server, missing))
    assert str(missing) in line, line
    assert requests_of(server).get('ContainerCredentials', 0) == 0


def test_pod_identity_refuses_plain_http_to_a_remote_host(servers, agent_token_file, mounts):
    """Like the AWS SDKs: a full URI over plain http must point at loopback or the agent."""
    server = servers.start('--container-token-file', agent_token_file)
    env = container_env(server, agent_token_file,
                        AWS_CONTAINER_CREDENTIALS_FULL_URI='http://credentials.invalid/v1')
    line = failed_mount(mounts, server, env)
    assert 'AWS_CONTAINER_CREDENTIALS_FULL_URI' in line, line


# ---------------------------------------------------------------------------------------------
# 7. IMDSv2


@pytest.mark.slow
@pytest.mark.parametrize('slash', ['', '/'])
def test_imds_mounts_reads_and_renews(servers, mounts, slash):
    server = servers.start('--imds', '--imds-duration', SHORT_LIFETIME)
    env = imds_env(server, AWS_EC2_METADATA_SERVICE_ENDPOINT=server.endpoint + slash)
    assert 'AWS_EC2_METADATA_DISABLED' not in env
    mount = mounts.mount(mount_options(server), env)
    read_all(mount.path, ['data/small-2.txt', 'data/medium-1.bin'])
    requests = requests_of(server)
    for op in IMDS_OPS:
        assert requests.get(op, 0) >= 1, (op, requests)
    assert requests.get('IMDSOther', 0) == 0 and STS_OP not in requests
    with Readers(mount.path, readers=2, listers=0, processes=0) as readers:
        wait_until(lambda: len(issued(server, 'imds')) >= 2, RENEWAL_GUARD,
                   'a renewal of the instance credentials')
    assert_no_read_failures(readers, mount)
    assert token_rejections(server) == {'ExpiredToken': 0, 'InvalidToken': 0}


def test_imds_stays_off_when_disabled(servers, mounts):
    """AWS_EC2_METADATA_DISABLED=true: the metadata service is not asked, and the error says
    which sources were tried."""
    server = servers.start('--imds')
    line = failed_mount(mounts, server, imds_env(server, AWS_EC2_METADATA_DISABLED='true'))
    assert 'no AWS credentials found' in line, line
    assert not any(op in requests_of(server) for op in IMDS_OPS)


# ---------------------------------------------------------------------------------------------
# 8. The order of the chain, and where STS is


@pytest.fixture(name='every_source')
def fixture_every_source(servers, token_file, agent_token_file):
    """A server offering every credential source: static keys, STS, container, IMDS."""
    return servers.start('--sts-token-file', token_file,
                         '--container-token-file', agent_token_file, '--imds')


@pytest.mark.parametrize('configured,winner', [
    (('static', 'web-identity'), 'static'),
    (('static', 'web-identity', 'container', 'imds'), 'static'),
    (('web-identity', 'container', 'imds'), 'web-identity'),
    (('container', 'imds'), 'container'),
])
def test_credential_chain_order(every_source, token_file, agent_token_file, mounts,
                                configured, winner):
    server = every_source
    env = irsafs_env(keep_ca_bundle=True, credentials='static' in configured)
    if 'web-identity' in configured:
        env.update(AWS_ROLE_ARN=ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE=str(token_file),
                   AWS_ENDPOINT_URL_STS=server.endpoint)
    if 'container' in configured:
        env.update(AWS_CONTAINER_CREDENTIALS_FULL_URI=f'{server.endpoint}/v1/credentials',
                   AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=str(agent_token_file))
    if 'imds' in configured:
        env.pop('AWS_EC2_METADATA_DISABLED')
        env['AWS_EC2_METADATA_SERVICE_ENDPOINT'] = server.endpoint
    mount = mounts.mount(mount_options(server), env)
    read_all(mount.path, ['data/small-4.txt'])
    requests = requests_of(server)
    used = {'web-identity': STS_OP in requests,
            'container': 'ContainerCredentials' in requests,
            'imds': any(op in requests for op in IMDS_OPS)}
    assert used == {source: source == winner for source in used}, requests
    if winner == 'static':
        assert server.control.issued() == []


@pytest.mark.parametrize('sts_variable,generic_variable,cli,ok', [
    (None, 'good', None, True),              # AWS_ENDPOINT_URL serves S3 and STS
    ('good', 'closed', 'good', True),        # AWS_ENDPOINT_URL_STS before AWS_ENDPOINT_URL
    ('closed', 'good', None, False),
])
def test_sts_endpoint_precedence(servers, token_file, mounts, sts_variable, generic_variable,
                                 cli, ok):
    server = sts_server(servers, token_file)
    urls = {'good': server.endpoint, 'closed': f'http://127.0.0.1:{closed_port()}', None: None}
    env = web_identity_env(server, token_file, AWS_ENDPOINT_URL_STS=urls[sts_variable],
                           AWS_ENDPOINT_URL=urls[generic_variable])
    options = ['--endpoint-url', urls[cli]] if cli else []
    if ok:
        mount = mounts.mount([*options, '--metadata-ttl', '0'], env)
        read_all(mount.path, ['data/small-5.txt'])
        assert requests_of(server)[STS_OP] == 1
        return
    # A connection refused is worth retrying, a few times, then the one line.
    line = failed_mount(mounts, None, env, options)
    assert 'AssumeRoleWithWebIdentity' in line and urls['closed'] in line, line
    assert STS_OP not in requests_of(server)


# ---------------------------------------------------------------------------------------------
# Daemon mode: the refresher runs in the daemon


@pytest.mark.slow
def test_daemon_renews_web_identity_credentials(servers, token_file, mounts):
    server = sts_server(servers, token_file, '--sts-duration', SHORT_LIFETIME)
    mountpoint = mounts.mountpoint()
    status, out, err = mounts.run(mount_options(server) + [BUCKET, str(mountpoint)],
                                  web_identity_env(server, token_file), mountpoint)
    assert status == 0 and is_mounted(mountpoint), err
    with Readers(mountpoint, readers=2, processes=0) as readers:
        wait_until(lambda: len(issued(server, 'sts')) >= 3, RENEWAL_GUARD,
                   'two renewals by the daemon')
    assert not readers.failures, readers.failures[:10]
    assert token_rejections(server) == {'ExpiredToken': 0, 'InvalidToken': 0}


# ---------------------------------------------------------------------------------------------
# 9. Secrets never leak


SECRET_HEADER_RE = re.compile(
    r'(?i)\b(authorization|x-amz-security-token|x-aws-ec2-metadata-token):(.*)$', re.MULTILINE)


def secret_forms(secret):
    """The ways a secret could show up in a log: as is, percent-encoded (form bodies), and
    pieces of it (a truncated or wrapped copy)."""
    forms = {secret, quote(secret, safe=''), quote_plus(secret)}
    if len(secret) >= 48:
        forms |= {secret[:24], secret[len(secret) // 2 - 12:len(secret) // 2 + 12],
                  secret[-24:]}
    return forms


def assert_no_secrets(text, named_secrets, where):
    for name, secret in named_secrets:
        for form in secret_forms(secret):
            assert form not in text, f'{name} appears in {where}'


def assert_headers_redacted(log, headers):
    values = collections.defaultdict(set)
    for match in SECRET_HEADER_RE.finditer(log):
        values[match.group(1).lower()].add(match.group(2).strip())
    for header in headers:
        assert values[header] == {'[redacted]'}, (header, values[header])
    assert 'Signature=' not in log and 'Credential=' not in log


def server_secrets(server):
    """(name, secret) for every secret the server handed out or received."""
    found = server.control.secrets()
    named = []
    for credential in found['credentials']:
        named.append((f'secret key of {credential["access_key_id"]}',
                      credential['secret_access_key']))
        named.append((f'session token of {credential["access_key_id"]}',
                      credential['session_token']))
    named += [('an IMDS session token', token) for token in found['imds_tokens']]
    named += [('a web identity token', token) for token in found['web_identity_tokens']]
    return named, found['signatures']


def cmdline_of(pid):
    with open(f'/proc/{pid}/cmdline', 'rb') as file:
        return file.read().decode('utf-8', 'replace')


def assert_log_clean(log, server, extra_secrets, headers):
    named, signatures = server_secrets(server)
    named += extra_secrets
    assert len(named) >= 2 and signatures
    assert_no_secrets(log, named, 'the trace log')
    hex_runs = set(re.findall(r'[0-9a-f]{64}', log))
    leaked = hex_runs & set(signatures)
    assert not leaked, f'{len(leaked)} request signatures appear in the trace log'
    assert_headers_redacted(log, headers)


@pytest.mark.slow
def test_web_identity_session_never_logs_a_secret(servers, token_file, mounts):
    """A whole IRSA session at --log-level trace: mount, reads, a scheduled renewal, a token
    rotation and a renewal with the new token, a revocation and the forced renewal. Neither
    the log nor the command line holds a token, a secret key, a session token or a request
    signature; the secret headers show as '[redacted]'."""
    old_token = read_token(token_file)
    server = sts_server(servers, token_file, '--sts-duration', SHORT_LIFETIME)
    mount = mounts.mount(mount_options(server, '--log-level', 'trace'),
                         web_identity_env(server, token_file))
    read_all(mount.path, ['data/small-6.txt', 'tree/dir-2/file-0.bin'])
    fresh = iter(FRESH_PATHS)
    with Readers(mount.path, readers=1, listers=1, processes=0) as readers:
        wait_until(lambda: len(issued(server, 'sts')) >= 2, RENEWAL_GUARD, 'a renewal')
        new_token = make_token('rotated')
        s3server.write_token_file(token_file, new_token)
        wait_until(lambda: issued(server, 'sts')[-1]['web_identity_token_sha256']
                   == sha256_hex(new_token), RENEWAL_GUARD, 'a renewal with the new token')
        cmdline = cmdline_of(mount.proc.pid)
    assert_no_read_failures(readers, mount)
    count = len(issued(server, 'sts'))
    server.control.revoke()
    read_all(mount.path, [next(fresh) for _ in range(3)])
    assert len(issued(server, 'sts')) > count and token_rejections(server)['InvalidToken'] >= 1
    read_all(mount.path, [next(fresh) for _ in range(3)])
    problems = mounts.close()
    assert not problems, problems
    log = mount.output()
    assert 'renewed credentials' in log and 'S3 refused the credentials' in log, log[-3000:]
    tokens = [('the first web identity token', old_token),
              ('the rotated web identity token', new_token)]
    assert_log_clean(log, server, tokens, ('authorization', 'x-amz-security-token'))
    named, _ = server_secrets(server)
    assert_no_secrets(cmdline, named + tokens, 'the command line')


@pytest.mark.slow
def test_pod_identity_session_never_logs_a_secret(servers, agent_token_file, mounts):
    agent_token = read_token(agent_token_file)
    server = servers.start('--container-token-file', agent_token_file,
                           '--container-duration', SHORT_LIFETIME)
    mount = mounts.mount(mount_options(server, '--log-level', 'trace'),
                         container_env(server, agent_token_file))
    with Readers(mount.path, readers=1, listers=1, processes=0) as readers:
        wait_until(lambda: len(issued(server, 'container')) >= 2, RENEWAL_GUARD,
                   'a renewal')
        cmdline = cmdline_of(mount.proc.pid)
    assert_no_read_failures(readers, mount)
    server.control.revoke('ExpiredToken')
    read_all(mount.path, FRESH_PATHS[:3])
    assert token_rejections(server)['ExpiredToken'] >= 1
    problems = mounts.close()
    assert not problems, problems
    log = mount.output()
    tokens = [('the agent token', agent_token)]
    assert_log_clean(log, server, tokens, ('authorization', 'x-amz-security-token'))
    named, _ = server_secrets(server)
    assert_no_secrets(cmdline, named + tokens, 'the command line')


@pytest.mark.slow
def test_imds_session_never_logs_a_secret(servers, mounts):
    server = servers.start('--imds', '--imds-duration', SHORT_LIFETIME)
    mount = mounts.mount(mount_options(server, '--log-level', 'trace'), imds_env(server))
    with Readers(mount.path, readers=1, listers=1, processes=0) as readers:
        wait_until(lambda: len(issued(server, 'imds')) >= 2, RENEWAL_GUARD, 'a renewal')
    assert_no_read_failures(readers, mount)
    problems = mounts.close()
    assert not problems, problems
    log = mount.output()
    assert_log_clean(log, server, [],
                     ('authorization', 'x-amz-security-token', 'x-aws-ec2-metadata-token'))


@pytest.mark.parametrize('name', ['invalid token', 'role not allowed'])
def test_failed_web_identity_mount_at_trace_level_leaks_no_token(servers, token_file, mounts,
                                                                 name):
    status, _, err, words, _, server_token, file_token = run_permanent_failure(
        servers, token_file, mounts, name, options=['--log-level', 'trace'])
    assert status != 0
    diagnostics = [line for line in err.splitlines() if line.startswith('irsafs: ')]
    assert len(diagnostics) == 1, err
    for word in words:
        assert word in diagnostics[0], (word, err)
    secrets_sent = [('the server token', server_token)]
    if file_token:
        secrets_sent.append(('the token irsafs sent', file_token))
    assert_no_secrets(err, secrets_sent, 'the output of the failed mount')


def test_failed_pod_identity_mount_at_trace_level_leaks_no_token(servers, agent_token_file,
                                                                 mounts, tmp_path):
    server = servers.start('--container-token-file', agent_token_file)
    wrong = tmp_path / 'wrong-token'
    s3server.write_token_file(wrong, make_token('intruder'))
    mountpoint = mounts.mountpoint('failed')
    status, _, err = mounts.run(mount_options(server, '--log-level', 'trace')
                                + [BUCKET, str(mountpoint)], container_env(server, wrong),
                                mountpoint)
    assert status != 0 and not is_mounted(mountpoint)
    assert 'Authorization: [redacted]' in err, err
    assert_no_secrets(err, [('the token sent', read_token(wrong)),
                            ('the agent token', read_token(agent_token_file))],
                      'the output of the failed mount')
