"""Concurrency stress: for a bounded time, dozens of threads read overlapping ranges of many
files (through the page cache and with O_DIRECT, which reaches irsafs every time), others walk
the tree while listings expire, and reader processes are killed mid-read so the kernel sends
FUSE interrupts. Every byte is checked; at the end the daemon must still answer, unmount
cleanly and exit 0. A small cache and few connections make eviction and queuing constant.

STRESS_SECONDS (default 20) sets the duration.
"""

import mmap
import os
import random
import signal
import subprocess
import threading
import time

import pytest

import s3server
from conftest import BUCKET, HANG_GUARD, irsafs_env, is_mounted, start, wait_for

DURATION = float(os.environ.get('STRESS_SECONDS', '20'))
KIB, MIB = 1024, 1024 * 1024


def build_files():
    rng = random.Random(7)
    files = {}
    for i in range(48):
        size = rng.choice([0, 1, 4095, 64 * KIB, 300 * KIB, 1 * MIB + 17, 3 * MIB, 9 * MIB + 5])
        files[f'data/d{i % 6}/file-{i:02d}.bin'] = (size, f'stress{i}')
    files['data/big.bin'] = (40 * MIB + 3, 'stressbig')
    return files


FILES = build_files()


@pytest.fixture(scope='module')
def stress_server():
    server = start(['--page-size', '7'])
    server.control.bulk(BUCKET, [{'key': key, 'size': size, 'seed': seed}
                                 for key, (size, seed) in FILES.items()])
    try:
        yield server
    finally:
        s3server.stop_server(server.proc)


def test_stress(mounts, stress_server):
    mount = mounts.mount(['--endpoint-url', stress_server.endpoint, '--cache-size', '32M',
                          '--max-connections', '6', '--metadata-ttl', '1'], irsafs_env())
    root = mount.path
    contents = {key: s3server.make_data(size, seed) for key, (size, seed) in FILES.items()}
    expected_dirs = {os.path.dirname(key) for key in FILES} | {'data'}
    keys = sorted(FILES)
    failures = []
    counts = {'reads': 0, 'walks': 0, 'kills': 0}
    lock = threading.Lock()
    deadline = time.monotonic() + DURATION

    def fail(message):
        with lock:
            if len(failures) < 20:
                failures.append(message)

    def reader(seed, direct):
        rng = random.Random(seed)
        while time.monotonic() < deadline:
            key = rng.choice(keys)
            data = contents[key]
            flags = os.O_RDONLY | (os.O_DIRECT if direct else 0)
            try:
                fd = os.open(root / key, flags)
            except OSError as error:
                fail(f'open {key}: {error}')
                continue
            try:
                for _ in range(rng.randint(1, 6)):
                    if direct:
                        offset = rng.randrange(0, max(len(data), 1) + 8192) & ~4095
                        size = rng.choice([4096, 64 * KIB, 256 * KIB, MIB])
                        buf = mmap.mmap(-1, size)
                        try:
                            got = bytes(buf[:os.preadv(fd, [buf], offset)])
                        finally:
                            buf.close()
                    else:
                        offset = rng.randrange(0, max(len(data), 1) + 100)
                        size = rng.choice([1, 100, 4096, 70000, 300 * KIB, 2 * MIB])
                        got = os.pread(fd, size, offset)
                    if got != data[offset:offset + size]:
                        fail(f'{key}: wrong bytes at {offset}+{size} (direct={direct})')
                    with lock:
                        counts['reads'] += 1
            except OSError as error:
                fail(f'read {key}: {error}')
            finally:
                os.close(fd)

    def walker():
        while time.monotonic() < deadline:
            seen_files, seen_dirs = set(), set()
            for dirpath, dirnames, filenames in os.walk(root / 'data'):
                rel = os.path.relpath(dirpath, root)
                seen_dirs.add(rel)
                seen_files.update(os.path.join(rel, name) for name in filenames)
                for name in filenames:
                    os.stat(os.path.join(dirpath, name))
            if seen_files != set(FILES) or seen_dirs != expected_dirs:
                fail(f'walk saw {len(seen_files)} files, {len(seen_dirs)} dirs')
            with lock:
                counts['walks'] += 1

    def killer():
        rng = random.Random(99)
        while time.monotonic() < deadline:
            path = root / ('data/big.bin' if rng.random() < 0.5 else rng.choice(keys))
            proc = subprocess.Popen(['dd', f'if={path}', 'of=/dev/null', 'bs=1M',
                                     'iflag=direct' if rng.random() < 0.5 else 'iflag=fullblock'],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0.01, 0.2))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            with lock:
                counts['kills'] += 1

    threads = [threading.Thread(target=reader, args=(i, i % 2 == 0)) for i in range(24)]
    threads += [threading.Thread(target=walker) for _ in range(2)]
    threads += [threading.Thread(target=killer) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DURATION + HANG_GUARD)
        assert not thread.is_alive(), 'a stress thread hung: deadlock?'

    assert not failures, failures
    assert counts['reads'] > 100 and counts['walks'] > 1 and counts['kills'] > 5, counts
    # Still alive and answering, then a clean exit.
    assert mount.proc.poll() is None, mount.output()
    assert (root / 'data/big.bin').read_bytes()[:4096] == contents['data/big.bin'][:4096]
    subprocess.run(['fusermount3', '-u', str(root)], check=True, timeout=HANG_GUARD)
    assert mount.proc.wait(HANG_GUARD) == 0, mount.output()
    assert wait_for(lambda: not is_mounted(root))
