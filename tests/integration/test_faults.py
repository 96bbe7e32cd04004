"""Fault tolerance: what irsafs does when S3 (tests/s3server.py with injected faults) misbehaves.

Retried (must end with exactly the right bytes, the retries visible in the server's log, and a
retried ranged GET resuming after the bytes it already got): 500 InternalError, 503 SlowDown,
400 RequestTimeout, a reset connection (before the response, or after some body bytes), a
body cut short of its Content-Length, a stalled transfer (longer than --stall-timeout), a
first byte slower than --stall-timeout. Not a fault at all: a first byte slower than usual but
within --stall-timeout. Rejected, never served: a 206 whose Content-Range names other bytes.

Not retried: 403 (EACCES after exactly one GET), 404 on GET (ENOENT), an archived object
(EACCES, and the log names the key and the storage class problem). A fault that never clears
fails the read with EIO within a bounded time; the daemon stays up and the same read succeeds
once the fault is gone. Listing faults: retried, and EIO for a directory when they persist.

Also: TLS certificate verification (AWS_CA_BUNDLE), and the mount being private to the
mounting user unless --allow-other.

Every read goes to S3: each test mounts afresh (irsafs's block cache starts empty) and reads
with O_DIRECT (no kernel page cache) in 1 MiB reads, so that the prefetcher has runs of up to
8 MiB in flight while the faults fire. Reads run in threads under a hang guard; apart from
that guard nothing here measures time.

Run: cd /work/main && make && IRSAFS_BIN=$PWD/build/irsafs /usr/bin/python3 -m pytest -q \
         tests/integration/test_faults.py
"""

import errno
import hashlib
import mmap
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

import s3server
from conftest import (BUCKET, HANG_GUARD, irsafs_env, is_mounted, make_certificate,
                      pread_direct, start, unmount, wait_for)

MIB = 1024 * 1024
# Three large objects read together; sizes are not multiples of the block size.
BIG = {
    'big/alpha.bin': 24 * MIB + 12345,
    'big/beta.bin': 32 * MIB + 777,
    'big/gamma.bin': 20 * MIB + 3 * 4096 + 5,
}
SINGLE = 'single/one.bin'          # for the read-one-block tests
SINGLE_SIZE = 12 * MIB + 99
DIRS = ['dirs/one/', 'dirs/two/', 'dirs/three/']
# Fast retries: 5 tries within 5 s; a transfer moving nothing for 2 s has stalled.
FAST = ['--max-attempts', '5', '--max-retry-time', '5', '--stall-timeout', '2']


def data_of(key, size):
    return s3server.make_data(size, key)


def sha256(data):
    return hashlib.sha256(data).hexdigest()


EXPECTED_SHA = {key: sha256(data_of(key, size)) for key, size in BIG.items()}


@pytest.fixture(scope='module')
def fault_s3():
    """One server for the module holding every object the tests read; each test mounts
    afresh, so irsafs's cache never hides a request."""
    server = start([])
    items = [{'key': key, 'size': size, 'seed': key} for key, size in BIG.items()]
    items.append({'key': SINGLE, 'size': SINGLE_SIZE, 'seed': SINGLE})
    for prefix in DIRS:
        items += [{'key': f'{prefix}file-{i}.txt', 'data': f'{prefix}{i}\n'.encode()}
                  for i in range(3)]
    server.control.bulk(BUCKET, items)
    try:
        yield server
    finally:
        s3server.stop_server(server.proc)
    assert 'Traceback' not in s3server.server_stderr(server.proc)


@pytest.fixture
def s3(fault_s3):
    """The module's server with no fault rule and fresh statistics, for one test."""
    fault_s3.control.clear_faults()
    fault_s3.control.reset()
    yield fault_s3
    fault_s3.control.clear_faults()


def mount_fast(mounts, s3, *extra, env=None):
    return mounts.mount(['--endpoint-url', s3.endpoint, *FAST, *extra], env or irsafs_env())


# ---------------------------------------------------------------------------------------------
# Reading, under a hang guard


def guarded(functions, timeout=HANG_GUARD):
    """Run each callable in its own thread; return [(value, None) or (None, exception)] in
    order. Fails the test if any has not finished within `timeout` seconds (a hang); the
    thread is left blocked, and the mounts fixture then takes the mount down under it."""
    results = [None] * len(functions)

    def run(index, function):
        try:
            results[index] = (function(), None)
        except Exception as error:  # pylint: disable=broad-except
            results[index] = (None, error)

    threads = [threading.Thread(target=run, args=(i, f), daemon=True)
               for i, f in enumerate(functions)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    hung = [i for i, thread in enumerate(threads) if thread.is_alive()]
    if hung:
        pytest.fail(f'read(s) {hung} still blocked after {timeout} s: irsafs hangs')
    return results


def guarded_one(function, timeout=HANG_GUARD):
    """guarded() for one callable: its value, or its exception raised here."""
    value, error = guarded([function], timeout)[0]
    if error is not None:
        raise error
    return value


def read_direct(path, chunk=MIB):
    """SHA-256 (hex) of the whole file, read front to back with O_DIRECT in `chunk` reads
    into a page-aligned buffer."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    buf = mmap.mmap(-1, chunk)
    digest = hashlib.sha256()
    try:
        size = os.fstat(fd).st_size
        offset = 0
        while offset < size:
            n = os.preadv(fd, [buf], offset)
            if n == 0:
                raise AssertionError(f'{path}: end of file at {offset} of {size} bytes')
            digest.update(buf[:n])
            offset += n
        return digest.hexdigest()
    finally:
        buf.close()
        os.close(fd)





def errno_of(function):
    """Run `function` under the hang guard; the errno it failed with (None if it did not)."""
    try:
        guarded_one(function)
    except OSError as error:
        return error.errno
    return None


def log_lines(mount, *words):
    """The lines of irsafs's log that contain every one of `words`."""
    return [line for line in mount.output().splitlines() if all(w in line for w in words)]


def read_big_files(mount, timeout=HANG_GUARD):
    """Read every BIG object at once, one thread each; assert each one's bytes."""
    keys = list(BIG)
    results = guarded([lambda key=key: read_direct(mount.path / key) for key in keys],
                      timeout)
    for key, (digest, error) in zip(keys, results):
        assert error is None, f'{key}: {error!r}\n{mount.output()[-3000:]}'
        assert digest == EXPECTED_SHA[key], f'{key}: wrong bytes'


# ---------------------------------------------------------------------------------------------
# The server's log


def settled_log(control):
    """The server's log once every faulted request has ended there (a request the server cut
    or stalled is logged when its handler ends, which may be after the client's retry)."""
    def settled():
        stats = control.stats()
        fired = sum(rule['fired'] for rule in stats.get('faults', []))
        return stats['log'] if sum('fault' in e for e in stats['log']) >= fired else None

    log = wait_for(settled, timeout=HANG_GUARD)
    assert log is not None, 'faulted requests never ended at the server'
    return log


def byte_range(entry):
    first, last = entry['range'].split('=')[1].split('-')
    return int(first), int(last)


def gets(log, key=None):
    return [e for e in log if e['op'] == 'GetObject'
            and (key is None or e['path'] == f'/{BUCKET}/{key}')]


def assert_tiled(log, key, size):
    """The GETs of `key` that were not faulted cover it exactly once (nothing fetched twice,
    nothing missing)."""
    spans = sorted(byte_range(e) for e in gets(log, key) if 'fault' not in e)
    position = 0
    for first, last in spans:
        assert first == position, (key, spans)
        position = last + 1
    assert position == size, (key, spans)


def assert_retried(log, kind):
    """Check the GETs of the BIG objects after faults of `kind`; return the faulted ones.

    'again': a faulted GET delivered nothing, and was sent again for the same range.
    'resume': it delivered the body bytes the server sent, and the next GET asked for the
    rest: its range starts right after them. 'resume-some': likewise, but the client may
    have lost some of the bytes sent (a reset discards what it had not read yet), so the next
    range starts after at least one of them and at most all of them.

    With 'again' and 'resume', every byte reached irsafs exactly once: the successful GETs
    and the delivered parts of the faulted ones tile each object. With 'resume-some' they
    cover it."""
    faulted = [e for e in gets(log) if 'fault' in e]
    for entry in faulted:
        first, last = byte_range(entry)
        if kind == 'again':
            starts = {first}
        elif kind == 'resume':
            starts = {first + entry['bytes']}
        else:
            starts = set(range(first + 1, first + entry['bytes'] + 1))
        retries = [r for r in gets(log) if r is not entry and r['path'] == entry['path']
                   and byte_range(r)[1] == last and byte_range(r)[0] in starts]
        assert retries, f'no retry of {entry} starting at {min(starts)}..{max(starts)}'
    for key, size in BIG.items():
        spans = []
        for entry in gets(log, key):
            first, last = byte_range(entry)
            if 'fault' not in entry:
                assert entry['status'] == 206, entry
                spans.append((first, last))
            elif kind != 'again' and entry['bytes']:
                spans.append((first, first + entry['bytes'] - 1))
        spans.sort()
        position = 0
        for first, last in spans:
            if kind == 'resume-some':
                assert first <= position, (key, spans)
            else:
                assert first == position, f'{key}: bytes fetched twice or missed: {spans}'
            position = max(position, last + 1)
        assert position == size, (key, spans)
    return faulted


# ---------------------------------------------------------------------------------------------
# Retried faults: identical bytes at the end


RETRIED = {
    # name: (rule, extra mount options, how the retry goes: see assert_retried)
    '500 InternalError': (dict(code='InternalError'), [], 'again'),
    '503 SlowDown': (dict(code='SlowDown'), [], 'again'),
    '400 RequestTimeout': (dict(code='RequestTimeout'), [], 'again'),
    'reset before the response': (dict(action='reset'), [], 'again'),
    'reset after some bytes': (dict(action='reset', after_bytes=300_001), [], 'resume-some'),
    'truncated body': (dict(action='truncate', after_bytes=1_000_003), [], 'resume'),
    # No byte at all after the headers: cut after --stall-timeout.
    'stall after the headers': (dict(action='stall', after_bytes=0, seconds=60),
                                ['--max-retry-time', '30'], 'resume'),
    # Some bytes, then none for far longer than --stall-timeout (2 s).
    'stall mid-body': (dict(action='stall', after_bytes=200_000, seconds=60),
                       ['--max-retry-time', '30'], 'resume'),
    # The answer would start after 5 s: cut after 2 s; what the server sends later is lost.
    'first byte slower than the stall timeout': (dict(action='delay', seconds=5),
                                                 ['--max-retry-time', '30'], 'again'),
}
PREFETCH_RUN = 4 * MIB   # a GET at least this large is a prefetch run (of up to 8 MiB)


@pytest.mark.parametrize('name', list(RETRIED))
def test_retried_fault(mounts, s3, name):
    """Three large files read at once, 1 MiB at a time, while one of the first GETs and two
    prefetch runs (GETs of 4 MiB or more) fail: identical bytes in the end, and each failed
    GET retried, a ranged GET resuming where its bytes stopped."""
    rule, options, kind = RETRIED[name]
    mount = mount_fast(mounts, s3, '--debug', *options)
    s3.control.faults([dict(op='GetObject', prefix='big/', skip=2, count=1, **rule),
                       dict(op='GetObject', prefix='big/', min_bytes=PREFETCH_RUN, count=2,
                            **rule)])
    read_big_files(mount, timeout=3 * HANG_GUARD if options else HANG_GUARD)
    assert [rule['fired'] for rule in s3.control.fault_rules()] == [1, 2]
    faulted = assert_retried(settled_log(s3.control), kind)
    assert len(faulted) == 3, faulted
    runs = [e for e in faulted if e['fault'] == 1]
    assert all(byte_range(e)[1] - byte_range(e)[0] + 1 >= PREFETCH_RUN for e in runs), runs
    if name != 'reset before the response':
        # (When a kept-alive connection dies before any byte of the response, libcurl itself
        # sends the request again on a new connection, once, below irsafs's retry loop.)
        assert 'retry' in mount.output().lower(), mount.output()[-3000:]
    assert mount.proc.poll() is None


def test_slow_first_byte_within_the_stall_timeout_is_not_a_fault(mounts, s3):
    """A first byte 1 s late with --stall-timeout 2: waited for, not retried."""
    mount = mount_fast(mounts, s3)
    s3.control.fault(op='GetObject', prefix='big/', action='delay', seconds=1, count=4)
    read_big_files(mount)
    log = settled_log(s3.control)
    delayed = [e for e in gets(log) if 'fault' in e]
    assert len(delayed) == 4 and all(e['status'] == 206 for e in delayed), delayed
    # Counting the delayed GETs in, every byte was fetched exactly once: nothing retried.
    unmarked = [{k: v for k, v in e.items() if k != 'fault'} for e in log]
    for key, size in BIG.items():
        assert_tiled(unmarked, key, size)


def test_mid_body_stall_is_cut_after_the_stall_timeout(mounts, s3):
    """--stall-timeout 2: a transfer that sends 200 kB and then nothing for 6 s (three times
    the timeout) must be cut and resumed by a new GET, not waited out."""
    mount = mount_fast(mounts, s3, '--max-retry-time', '30')
    s3.control.fault(op='GetObject', prefix=SINGLE, action='stall', after_bytes=200_000,
                     seconds=6, count=1)
    data = guarded_one(lambda: pread_direct(mount.path / SINGLE, 0, MIB))
    assert data == data_of(SINGLE, SINGLE_SIZE)[:MIB]
    log = gets(settled_log(s3.control), SINGLE)
    stalled = [e for e in log if 'fault' in e]
    assert len(stalled) == 1
    assert stalled[0]['bytes'] == 200_000, 'the stalled GET was waited out, not cut'
    assert any(byte_range(e) == (200_000, MIB - 1) for e in log), log


# ---------------------------------------------------------------------------------------------
# A wrong Content-Range


def test_wrong_content_range_is_retried(mounts, s3):
    mount = mount_fast(mounts, s3)
    s3.control.fault(op='GetObject', prefix='big/', skip=2, action='wrong_range', count=3)
    read_big_files(mount)
    faulted = assert_retried(settled_log(s3.control), 'again')
    assert len(faulted) == 3


@pytest.mark.parametrize('shift', [4096, -4096, 1])
def test_wrong_content_range_is_never_served(mounts, s3, shift):
    """Whatever irsafs does about it, the bytes of a mislabelled 206 never reach a reader: a
    read either fails or returns the right bytes; once the fault is gone, all is right."""
    mount = mount_fast(mounts, s3)
    path = mount.path / SINGLE
    expected = data_of(SINGLE, SINGLE_SIZE)
    s3.control.fault(op='GetObject', prefix=SINGLE, action='wrong_range', shift=shift,
                     count=-1)
    for offset in (0, 5 * MIB):
        try:
            data = guarded_one(lambda offset=offset: pread_direct(path, offset, MIB))
        except OSError as error:
            assert error.errno == errno.EIO
        else:
            assert data == expected[offset:offset + MIB], 'a wrong Content-Range was served'
    assert log_lines(mount, SINGLE, 'Content-Range'), mount.output()[-3000:]
    s3.control.clear_faults()
    assert guarded_one(lambda: read_direct(path)) == sha256(expected)
    assert mount.proc.poll() is None


# ---------------------------------------------------------------------------------------------
# Faults that never clear


PERSISTENT = {
    # name: (rule, most GETs the server may see with --max-attempts 5)
    '503 SlowDown': (dict(code='SlowDown'), 5),
    '500 InternalError': (dict(code='InternalError'), 5),
    # libcurl sends a request again, once, when a kept-alive connection dies before any
    # byte of the response: up to two GETs per attempt.
    'reset before the response': (dict(action='reset'), 10),
    'reset after some bytes': (dict(action='reset', after_bytes=65536), 5),
    'truncated body': (dict(action='truncate', after_bytes=100_000), 5),
    'stall': (dict(action='stall', after_bytes=0, seconds=60), 5),
}


@pytest.mark.parametrize('name', list(PERSISTENT))
def test_persistent_fault_gives_eio_then_recovers(mounts, s3, name):
    """Every GET fails: the read fails with EIO (within the hang guard), after a bounded
    number of tries; the daemon stays up, and the same read succeeds once S3 recovers."""
    rule, most = PERSISTENT[name]
    mount = mount_fast(mounts, s3)
    path = mount.path / SINGLE
    s3.control.fault(op='GetObject', prefix=SINGLE, count=-1, **rule)
    assert errno_of(lambda: pread_direct(path, 4 * MIB, MIB)) == errno.EIO
    tries = len(gets(settled_log(s3.control), SINGLE))
    assert 1 < tries <= most, f'{tries} GETs with --max-attempts 5'
    assert mount.proc.poll() is None, mount.output()
    assert is_mounted(mount.path)
    assert log_lines(mount, SINGLE, ' warn '), mount.output()[-3000:]
    s3.control.clear_faults()
    assert guarded_one(lambda: pread_direct(path, 4 * MIB, MIB)) == \
        data_of(SINGLE, SINGLE_SIZE)[4 * MIB:5 * MIB]
    assert guarded_one(lambda: read_direct(path)) == sha256(data_of(SINGLE, SINGLE_SIZE))


# ---------------------------------------------------------------------------------------------
# Final answers: never retried


def test_access_denied_is_eacces_after_one_get(mounts, s3):
    mount = mount_fast(mounts, s3)
    path = mount.path / SINGLE
    s3.control.fault(op='GetObject', prefix=SINGLE, code='AccessDenied', count=-1)
    assert errno_of(lambda: pread_direct(path, 0, MIB)) == errno.EACCES
    log = gets(settled_log(s3.control), SINGLE)
    assert [(e['status'], e['fault']) for e in log] == [(403, 0)], log
    s3.control.clear_faults()
    assert guarded_one(lambda: pread_direct(path, 0, MIB)) == \
        data_of(SINGLE, SINGLE_SIZE)[:MIB]


def test_object_deleted_after_listing_is_enoent(mounts, s3):
    key = 'gone/soon.bin'
    s3.control.put(BUCKET, key, data_of(key, 3 * MIB))
    try:
        mount = mount_fast(mounts, s3)
        path = mount.path / key
        assert os.stat(path).st_size == 3 * MIB
        fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
        try:
            assert s3.control.delete(BUCKET, key)
            s3.control.reset()
            buf = mmap.mmap(-1, MIB)
            with pytest.raises(OSError) as failure:
                guarded_one(lambda: os.preadv(fd, [buf], 0))
            assert failure.value.errno == errno.ENOENT
        finally:
            os.close(fd)
        log = gets(s3.control.stats()['log'], key)
        assert [e['status'] for e in log] == [404], log
        assert mount.proc.poll() is None
    finally:
        s3.control.delete(BUCKET, key)


@pytest.mark.parametrize('storage_class', ['GLACIER', 'DEEP_ARCHIVE'])
def test_archived_object_is_eacces_and_logged(mounts, s3, storage_class):
    key = f'archive/{storage_class.lower()} object.bin'
    s3.control.put(BUCKET, key, data_of(key, 2 * MIB), storage_class=storage_class)
    try:
        mount = mount_fast(mounts, s3)
        path = mount.path / key
        assert os.stat(path).st_size == 2 * MIB
        s3.control.reset()
        assert errno_of(lambda: pread_direct(path, 0, MIB)) == errno.EACCES
        log = gets(s3.control.stats()['log'], None)
        assert [e['status'] for e in log] == [403], log
        lines = log_lines(mount, key, 'archived storage class')
        assert len(lines) == 1 and ' error ' in lines[0], mount.output()[-2000:]
        assert 'InvalidObjectState' in lines[0], lines
    finally:
        s3.control.delete(BUCKET, key)


# ---------------------------------------------------------------------------------------------
# Listing faults


@pytest.mark.parametrize('rule', [dict(code='SlowDown', count=2),
                                  dict(code='InternalError', count=2),
                                  dict(action='reset', count=1),
                                  dict(action='truncate', after_bytes=100, count=2),
                                  dict(action='stall', after_bytes=0, seconds=60, count=1)],
                         ids=['503', '500', 'reset', 'truncated', 'stalled'])
def test_listing_fault_is_retried(mounts, s3, rule):
    mount = mount_fast(mounts, s3)
    s3.control.fault(op='ListObjectsV2', prefix='dirs/one/', **rule)
    names = guarded_one(lambda: sorted(os.listdir(mount.path / 'dirs' / 'one')))
    assert names == ['file-0.txt', 'file-1.txt', 'file-2.txt']
    lists = [e for e in settled_log(s3.control) if e['op'] == 'ListObjectsV2'
             and 'prefix=dirs%2Fone%2F' in e['query']]
    assert sorted('fault' in e for e in lists) == [False] + [True] * rule['count'], lists
    assert [e['status'] for e in lists if 'fault' not in e] == [200], lists
    assert (mount.path / 'dirs' / 'one' / 'file-1.txt').read_bytes() == b'dirs/one/1\n'


def test_persistent_listing_fault_gives_eio(mounts, s3):
    mount = mount_fast(mounts, s3)
    s3.control.fault(op='ListObjectsV2', prefix='dirs/two/', code='SlowDown', count=-1)
    assert errno_of(lambda: os.listdir(mount.path / 'dirs' / 'two')) == errno.EIO
    lists = [e for e in settled_log(s3.control) if 'prefix=dirs%2Ftwo%2F' in e['query']]
    assert 1 < len(lists) <= 5, lists
    assert mount.proc.poll() is None
    # Other directories are unaffected, and the directory lists once S3 recovers.
    assert sorted(os.listdir(mount.path / 'dirs' / 'three'))[0] == 'file-0.txt'
    s3.control.clear_faults()
    assert guarded_one(lambda: sorted(os.listdir(mount.path / 'dirs' / 'two'))) == \
        ['file-0.txt', 'file-1.txt', 'file-2.txt']


# ---------------------------------------------------------------------------------------------
# The bucket moves to another region


def test_region_change_is_followed_once(mounts):
    """S3 starts answering AuthorizationHeaderMalformed naming another region: irsafs switches
    to it once, logs it, and the read (and later listings) go on."""
    server = start([])
    key, size = 'moving/data.bin', 5 * MIB + 1
    try:
        server.control.bulk(BUCKET, [{'key': key, 'size': size, 'seed': key},
                                     {'key': 'later/listed.txt', 'data': b'later\n'}])
        mount = mount_fast(mounts, server)
        assert os.stat(mount.path / key).st_size == size
        server.control.set_region('eu-west-1')
        server.control.reset()
        assert guarded_one(lambda: read_direct(mount.path / key)) == sha256(data_of(key, size))
        assert guarded_one(lambda: os.listdir(mount.path / 'later')) == ['listed.txt']
        log = server.control.stats()['log']
        assert [e['status'] for e in log if e['status'] == 400], log
        assert all(e['status'] in (206, 200) for e in log[-2:]), log
        switches = log_lines(mount, 'region', 'eu-west-1', 'us-east-1')
        assert len(switches) == 1 and ' info ' in switches[0], mount.output()
        assert mount.proc.poll() is None
    finally:
        s3server.stop_server(server.proc)


# ---------------------------------------------------------------------------------------------
# TLS


@pytest.fixture(scope='module')
def tls_s3(tmp_path_factory):
    """An HTTPS server with a self-signed certificate: (server, its certificate, another
    self-signed certificate that did not sign it)."""
    directory = tmp_path_factory.mktemp('tls')
    cert, key = make_certificate(directory, 'server')
    wrong, _ = make_certificate(directory, 'wrong-ca')
    proc, port = s3server.start_server(['--tls-cert', str(cert), '--tls-key', str(key)])
    control = s3server.Control(port, cafile=str(cert))
    try:
        control.bulk(BUCKET, [{'key': 'secure/data.bin', 'size': 3 * MIB + 5, 'seed': 'tls'}])
        yield proc, port, control, cert, wrong
    finally:
        s3server.stop_server(proc)
    assert 'Traceback' not in s3server.server_stderr(proc)


def tls_failure(mounts, port, env):
    mountpoint = mounts.mountpoint('tls')
    status, out, err = mounts.run(['--endpoint-url', f'https://127.0.0.1:{port}',
                                   '--max-attempts', '2', BUCKET, str(mountpoint)], env,
                                  mountpoint=mountpoint)
    assert not is_mounted(mountpoint)
    return status, out, err


@pytest.mark.parametrize('ca', ['none', 'wrong'])
def test_tls_certificate_is_verified(mounts, tls_s3, ca):
    """Without AWS_CA_BUNDLE (the system CAs) or with a CA that did not sign the server's
    certificate, irsafs refuses the endpoint: one line naming TLS, status 1."""
    proc, port, control, _, wrong = tls_s3
    control.reset()
    env = irsafs_env(AWS_CA_BUNDLE=str(wrong) if ca == 'wrong' else None)
    status, out, err = tls_failure(mounts, port, env)
    assert (status, out) == (1, ''), err
    assert err.startswith('irsafs: ') and err.count('\n') == 1, err
    assert 'cannot reach the S3 endpoint' in err and 'TLS' in err, err
    failures = control.stats()['tls']['failures']
    assert failures and all('UNKNOWN_CA' in f or 'unknown ca' in f for f in failures), failures
    assert control.stats()['requests'].get('ListObjectsV2', 0) == 0


def test_tls_verification_failure_is_not_retried(mounts, tls_s3):
    _, port, control, _, _ = tls_s3
    control.reset()
    mountpoint = mounts.mountpoint('tls')
    status, _, err = mounts.run(['--endpoint-url', f'https://127.0.0.1:{port}', BUCKET,
                                 str(mountpoint)], irsafs_env(), mountpoint=mountpoint)
    assert status == 1 and 'TLS' in err, err
    assert len(control.stats()['tls']['failures']) == 1, control.stats()['tls']


def test_tls_with_the_right_ca_bundle(mounts, tls_s3):
    _, port, control, cert, _ = tls_s3
    control.reset()
    mount = mounts.mount(['--endpoint-url', f'https://127.0.0.1:{port}', *FAST],
                         irsafs_env(AWS_CA_BUNDLE=str(cert)))
    digest = guarded_one(lambda: read_direct(mount.path / 'secure' / 'data.bin'))
    assert digest == sha256(s3server.make_data(3 * MIB + 5, 'tls'))
    assert control.stats()['requests']['GetObject'] >= 1


# ---------------------------------------------------------------------------------------------
# Who may use the mount


@pytest.fixture
def public_mountpoint(mounts):
    """A mount point every user can reach (pytest's own temporary directory is private to
    root); unmounted and removed afterwards."""
    directory = Path(tempfile.mkdtemp(prefix='irsafs-public-'))
    directory.chmod(0o755)
    try:
        yield directory
    finally:
        unmount(directory)
        shutil.rmtree(directory, ignore_errors=True)


def as_nobody(*command):
    return subprocess.run(['runuser', '-u', 'nobody', '--', *command], capture_output=True,
                          text=True, timeout=HANG_GUARD, check=False)


@pytest.fixture(autouse=False)
def needs_root():
    if os.geteuid() != 0 or shutil.which('runuser') is None:
        pytest.skip('needs root and runuser to act as another user')


def test_mount_is_private_to_the_mounting_user(needs_root, public_mountpoint, mounts, s3):
    mount = mounts.mount(['--endpoint-url', s3.endpoint], irsafs_env(),
                         mountpoint=public_mountpoint)
    assert sorted(os.listdir(mount.path / 'dirs')) == ['one', 'three', 'two']
    listing = as_nobody('ls', str(mount.path))
    assert listing.returncode != 0 and 'Permission denied' in listing.stderr, listing
    reading = as_nobody('cat', str(mount.path / 'dirs' / 'one' / 'file-0.txt'))
    assert reading.returncode != 0 and 'Permission denied' in reading.stderr, reading


def test_allow_other_lets_other_users_list_and_read(needs_root, public_mountpoint, mounts, s3):
    mount = mounts.mount(['--endpoint-url', s3.endpoint, '--allow-other'], irsafs_env(),
                         mountpoint=public_mountpoint)
    listing = as_nobody('ls', str(mount.path / 'dirs' / 'one'))
    assert listing.returncode == 0, listing
    assert listing.stdout.split() == ['file-0.txt', 'file-1.txt', 'file-2.txt']
    reading = as_nobody('sha256sum', str(mount.path / SINGLE))
    assert reading.returncode == 0, reading
    assert reading.stdout.split()[0] == sha256(data_of(SINGLE, SINGLE_SIZE))
    # Read-only for them too.
    writing = as_nobody('touch', str(mount.path / 'dirs' / 'one' / 'new'))
    assert writing.returncode != 0, writing
