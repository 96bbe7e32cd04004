"""A whole mount session under valgrind's memcheck: mount, list, read, re-read, a missing path,
unmount. Memcheck must report no error and no definitely-lost block (--error-exitcode turns
either into the exit status).
"""

import os
import shutil
import subprocess

import pytest

import s3server
from conftest import BIN, BUCKET, HANG_GUARD, irsafs_env, is_mounted, start, wait_for

pytestmark = pytest.mark.skipif(
    shutil.which('valgrind') is None or os.environ.get('IRSAFS_SANITIZED'),
    reason='needs valgrind and an unsanitized build')


def test_mount_session_under_memcheck(tmp_path):
    server = start([])
    files = {f'dir/file-{i}': s3server.make_data(100_000 * i + 5, f'v{i}') for i in range(6)}
    for key, data in files.items():
        server.control.put(BUCKET, key, data)
    mountpoint = tmp_path / 'mnt'
    mountpoint.mkdir()
    log = tmp_path / 'memcheck.log'
    cmd = ['valgrind', '--quiet', '--leak-check=full', '--errors-for-leak-kinds=definite',
           '--error-exitcode=99', f'--log-file={log}', BIN, '-f', '--endpoint-url',
           server.endpoint, BUCKET, str(mountpoint)]
    proc = subprocess.Popen(cmd, env=irsafs_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: is_mounted(mountpoint) or proc.poll() is not None, timeout=120)
        assert is_mounted(mountpoint), log.read_text()
        assert sorted(os.listdir(mountpoint / 'dir')) == sorted(k.split('/')[1] for k in files)
        for _ in range(2):
            for key, data in files.items():
                assert (mountpoint / key).read_bytes() == data
        assert not (mountpoint / 'dir/missing').exists()
        subprocess.run(['fusermount3', '-u', str(mountpoint)], check=True, timeout=HANG_GUARD)
        status = proc.wait(120)
        assert status == 0, f'memcheck exit status {status}:\n{log.read_text()}'
    finally:
        if is_mounted(mountpoint):
            subprocess.run(['fusermount3', '-uz', str(mountpoint)], check=False)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        s3server.stop_server(server.proc)
