"""The mechanisms behind fast reads and listings, proven by request counts at the server and by
the daemon's memory, never by timings: prefetch in parts with no byte fetched twice, one GET
per small object, single-flight fetching for concurrent readers, a hard memory cap, warm
re-reads that never reach S3, If-Match on every GET with a clean failure when the object is
replaced mid-read, and listing costs for find and ls -l.

O_DIRECT reads bypass the kernel's page cache, so they reach irsafs every time: that is how
these tests see irsafs's own cache rather than the kernel's.
"""

import errno
import math
import os
import shutil
import signal
import subprocess
import threading

import pytest

import s3server
from conftest import (BIN, BUCKET, Obj, closed_port, direct_pread, irsafs_env, scrape,
                      scrape_ok, start, value, wait_for)

MIB = 1024 * 1024
BLOCK = 256 * 1024
PART = 8 * MIB
SEQ_SIZE = 48 * MIB + 4321
BIG_SIZE = 96 * MIB
DIR_KEYS = 5000


@pytest.fixture(scope='module')
def data_server():
    """A server with default 1000-key pages holding the objects of this module."""
    server = start([])
    items = [
        {'key': 'stream/seq.bin', 'size': SEQ_SIZE, 'seed': 'seq'},
        {'key': 'stream/big.bin', 'size': BIG_SIZE, 'seed': 'big'},
        {'key': 'stream/shared.bin', 'size': 16 * MIB, 'seed': 'shared'},
        {'key': 'stream/random.bin', 'size': 64 * MIB, 'seed': 'random'},
    ]
    items += [{'key': f'small/file-{i:04d}', 'size': 1000 + 997 * i, 'seed': f'small{i}'}
              for i in range(100)]
    items += [{'key': f'wide/key-{i:05d}', 'size': i % 7, 'seed': f'w{i}'}
              for i in range(DIR_KEYS)]
    for first in range(0, len(items), 1000):
        server.control.bulk(BUCKET, items[first:first + 1000])
    try:
        yield server
    finally:
        s3server.stop_server(server.proc)


def content(key, size, seed):
    return Obj(key.encode(), size, seed=seed).content()


def gets(stats):
    return [e for e in stats['log'] if e['op'] == 'GetObject']


def parse_range(text):
    first, last = text.split('=')[1].split('-')
    return int(first), int(last)


def daemon_status(proc, field):
    with open(f'/proc/{proc.pid}/status', encoding='ascii') as status:
        for line in status:
            if line.startswith(field + ':'):
                return int(line.split()[1]) * 1024
    raise AssertionError(f'no {field} for pid {proc.pid}')


def read_all(path, chunk=MIB):
    out = bytearray()
    with open(path, 'rb') as file:
        while True:
            data = file.read(chunk)
            if not data:
                return bytes(out)
            out += data





def test_sequential_read_in_parts_without_duplicates(mounts, data_server):
    mount = mounts.mount(['--endpoint-url', data_server.endpoint], irsafs_env())
    data_server.control.reset()
    assert read_all(mount.path / 'stream/seq.bin') == content('stream/seq.bin', SEQ_SIZE, 'seq')
    requests = gets(data_server.control.stats())
    ranges = sorted(parse_range(e['range']) for e in requests)
    # Every byte exactly once: the ranges tile the object.
    position = 0
    for first, last in ranges:
        assert first == position, ranges
        position = last + 1
    assert position == SEQ_SIZE
    # Prefetch fetches in parts: a ramp of small requests, then whole 8 MiB parts.
    assert len(requests) <= math.ceil(SEQ_SIZE / PART) + 8, ranges
    assert max(last - first + 1 for first, last in ranges) == PART
    assert all(e['if_match'] for e in requests), 'every GET carries If-Match'


def test_small_objects_take_one_get_each(mounts, data_server):
    mount = mounts.mount(['--endpoint-url', data_server.endpoint], irsafs_env())
    os.listdir(mount.path / 'small')
    data_server.control.reset()
    for i in range(100):
        name = f'small/file-{i:04d}'
        assert read_all(mount.path / name) == content(name, 1000 + 997 * i, f'small{i}')
    assert data_server.control.stats()['requests'] == {'GetObject': 100}


def test_warm_reread_sends_nothing(mounts, data_server):
    mount = mounts.mount(['--endpoint-url', data_server.endpoint], irsafs_env())
    expected = content('stream/seq.bin', SEQ_SIZE, 'seq')
    assert read_all(mount.path / 'stream/seq.bin') == expected
    data_server.control.reset()
    for _ in range(2):
        assert read_all(mount.path / 'stream/seq.bin') == expected
    assert data_server.control.stats()['requests'] == {}, 'a warm re-read reached the server'


def test_concurrent_readers_share_one_fetch(mounts, data_server):
    mount = mounts.mount(['--endpoint-url', data_server.endpoint], irsafs_env())
    path = mount.path / 'stream/shared.bin'
    os.stat(path)
    expected = content('stream/shared.bin', 16 * MIB, 'shared')
    data_server.control.reset()
    results = []

    def reader():
        fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
        try:
            results.append(direct_pread(fd, 4 * MIB, 4 * MIB))
        finally:
            os.close(fd)

    threads = [threading.Thread(target=reader) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [expected[4 * MIB:8 * MIB]] * 8
    fetched = sum(e['bytes'] for e in gets(data_server.control.stats()))
    # Eight readers of the same 4 MiB: each block fetched once (plus at most the prefetch
    # window a sequential-looking reader may open).
    assert 4 * MIB <= fetched <= 4 * MIB + 2 * PART, fetched


def test_random_reads_fetch_only_their_blocks(mounts, data_server):
    mount = mounts.mount(['--endpoint-url', data_server.endpoint], irsafs_env())
    path = mount.path / 'stream/random.bin'
    os.stat(path)
    expected = content('stream/random.bin', 64 * MIB, 'random')
    data_server.control.reset()
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    try:
        for i in range(40):
            offset = (i * 7919 * 4096 * 13) % (64 * MIB - 4096)
            offset -= offset % 4096
            assert direct_pread(fd, 4096, offset) == expected[offset:offset + 4096]
    finally:
        os.close(fd)
    fetched = sum(e['bytes'] for e in gets(data_server.control.stats()))
    assert fetched <= 40 * BLOCK, f'{fetched} bytes for 40 random 4 KiB reads'


@pytest.mark.skipif(bool(os.environ.get('IRSAFS_SANITIZED')),
                    reason='sanitizers add their own memory')
def test_memory_stays_under_a_small_cap(mounts, data_server):
    cap = 16 * MIB
    mount = mounts.mount(['--endpoint-url', data_server.endpoint, '--cache-size', '16M'],
                         irsafs_env())
    assert read_all(mount.path / 'stream/big.bin') == content('stream/big.bin', BIG_SIZE, 'big')
    peak = daemon_status(mount.proc, 'VmHWM')
    assert peak <= cap + 32 * MIB, f'peak RSS {peak >> 20} MiB with a 16 MiB cache'


def test_object_replaced_mid_read(mounts, data_server):
    """The ETag is pinned at open: after the object is replaced, the open file fails with
    ESTALE rather than mixing versions, and a new open sees the new object."""
    size = 40 * MIB
    old = content('x', size, 'v1')
    new = content('x', size + 5, 'v2')
    data_server.control.put(BUCKET, 'change/obj.bin', old)
    mount = mounts.mount(['--endpoint-url', data_server.endpoint, '--metadata-ttl', '0'],
                         irsafs_env())
    path = mount.path / 'change/obj.bin'
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    try:
        assert direct_pread(fd, BLOCK, 0) == old[:BLOCK]
        data_server.control.put(BUCKET, 'change/obj.bin', new)
        # Far from what was fetched so far: this block must come from S3, where the object
        # no longer matches the pinned ETag.
        with pytest.raises(OSError) as failure:
            direct_pread(fd, BLOCK, 36 * MIB)
        assert failure.value.errno == errno.ESTALE
    finally:
        os.close(fd)
    log = data_server.control.stats()['log']
    assert any(e['op'] == 'GetObject' and e['status'] == 412 for e in log)
    assert all(e['if_match'] for e in log if e['op'] == 'GetObject')
    assert wait_for(lambda: read_all(path) == new, timeout=10), 'the new version is never seen'


def test_listing_costs_for_find_and_ls(mounts, data_server):
    mount = mounts.mount(['--endpoint-url', data_server.endpoint, '--metadata-ttl', '60'],
                         irsafs_env())
    data_server.control.reset()
    found = subprocess.run(['find', str(mount.path / 'wide')], capture_output=True, check=True,
                           timeout=120).stdout.splitlines()
    assert len(found) == DIR_KEYS + 1
    listing = subprocess.run(['ls', '-l', str(mount.path / 'wide')], capture_output=True,
                             check=True, timeout=120).stdout.splitlines()
    assert len(listing) == DIR_KEYS + 1
    requests = data_server.control.stats()['requests']
    # The directory itself is found in the root listing, then listed once: 1 + 5 pages.
    assert requests == {'ListObjectsV2': 1 + math.ceil(DIR_KEYS / 1000)}, requests


# ---------------------------------------------------------------------------------------------
# The kernel's read-ahead: how large the reads are that reach irsafs


def bdi_read_ahead_kb(path):
    dev = os.stat(path).st_dev
    with open(f'/sys/class/bdi/{os.major(dev)}:{os.minor(dev)}/read_ahead_kb',
              encoding='ascii') as file:
        return int(file.read())


def fuse_reads(port):
    return value(scrape(port), 'irsafs_fuse_operations_total', op='read')


@pytest.mark.parametrize('args, kib', [([], 1024), (['--read-ahead', '256K'], 256),
                                       (['-o', 'read_ahead=0'], 128)],
                         ids=['default', '256K', 'kernel-default'])
def test_read_ahead_sets_the_size_of_kernel_reads(mounts, data_server, args, kib):
    """irsafs sets its mount's read-ahead (1 MiB unless told; 0 leaves the kernel's 128 KiB),
    and a buffered sequential read then reaches it in requests of about that size."""
    port = closed_port()
    mount = mounts.mount(['--endpoint-url', data_server.endpoint, '--metrics-addr', str(port),
                          *args], irsafs_env())
    # Set once FUSE's INIT is answered, which can be just after the mount shows up.
    assert wait_for(lambda: bdi_read_ahead_kb(mount.path) == kib), \
        (bdi_read_ahead_kb(mount.path), mount.output())
    assert wait_for(lambda: scrape_ok(port)), mount.output()
    before = fuse_reads(port)
    assert read_all(mount.path / 'stream' / 'seq.bin', chunk=4 * MIB) == \
        content('stream/seq.bin', SEQ_SIZE, 'seq')
    reads = fuse_reads(port) - before
    print(f'read-ahead {kib} KiB: {reads} FUSE reads for {SEQ_SIZE} bytes')
    # FUSE caps one read at 1 MiB; the window ramps up from the first read, hence the slack.
    assert SEQ_SIZE / MIB <= reads <= SEQ_SIZE / (kib * 1024) * 1.25 + 16, reads


def test_read_ahead_without_a_writable_sys(mounts, data_server, tmp_path):
    """Where /sys is read-only (an unprivileged container) the mount still works, with the
    kernel's read size, and an explicit --read-ahead says why it was not applied."""
    if not shutil.which('unshare'):
        pytest.skip('needs util-linux unshare')
    mnt = mounts.mountpoint()
    log = tmp_path / 'irsafs.log'
    # A private mount namespace where only this namespace's view of /sys is read-only.
    script = ('mount -o remount,bind,ro /sys && '
              f'exec "$0" -f --endpoint-url {data_server.endpoint} --read-ahead 2M '
              f'--log-file {log} {BUCKET} {mnt}')
    proc = subprocess.Popen(['unshare', '-m', '--propagation', 'private', 'sh', '-c', script,
                             BIN], env=irsafs_env(), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: 'mounted' in log.read_text() if log.exists() else False), \
            log.read_text() if log.exists() else f'no log; status {proc.poll()}'
        text = log.read_text()
        assert 'kernel read-ahead left at its default' in text, text
        assert 'wanted_kib=2048' in text and 'Read-only file system' in text, text
        line = next(l for l in text.splitlines() if 'read-ahead' in l)
        assert ' warn ' in line, line
        # The mount lives in that namespace only; read through it there.
        data = subprocess.run(['nsenter', '-t', str(proc.pid), '-m', '--', 'cat',
                               str(mnt / 'small' / 'file-0003')], capture_output=True,
                              check=True, timeout=60).stdout
        assert data == content('small/file-0003', 1000 + 997 * 3, 'small3')
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text() if log.exists() else ''
