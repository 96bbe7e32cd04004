"""Running irsafs the way a pod or a host does: the mount(8) helper and fstab, the ready file and
log file, a prompt clean exit on SIGTERM even while reads hang on a stalled S3, and a pod
simulated with mount namespaces: the sidecar's mount must propagate to the app container's
namespace and disappear from both when the sidecar is told to stop.
"""

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

import s3server
from conftest import (BIN, BUCKET, HANG_GUARD, REPO, irsafs_env, irsafs_pids, is_mounted,
                      process_alive, start, unmount, wait_for)

FILES = {'hello.txt': b'hello from the bucket\n', 'data/a.bin': s3server.make_data(3 << 20, 'a'),
         'data/b.bin': s3server.make_data(40 << 20, 'b')}


@pytest.fixture(scope='module')
def server():
    srv = start([])
    for key, data in FILES.items():
        srv.control.put(BUCKET, key, data)
    try:
        yield srv
    finally:
        s3server.stop_server(srv.proc)


# ---------------------------------------------------------------------------------------------
# mount -t fuse.irsafs and fstab


@pytest.fixture
def mount_helper(tmp_path):
    """Installs packaging/mount.irsafs as /sbin/mount.fuse.irsafs for the test (mount(8) only
    looks there), pointing at the binary under test; removes it afterwards."""
    target = Path('/sbin/mount.fuse.irsafs')
    if target.exists() or target.is_symlink():
        pytest.skip(f'{target} already exists on this machine')
    script = (REPO / 'packaging/mount.irsafs').read_text()
    target.write_text(script.replace('@BINDIR@', os.path.dirname(BIN)))
    target.chmod(0o755)
    try:
        yield target
    finally:
        target.unlink()


def run(cmd, env=None, **kwargs):
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=HANG_GUARD,
                          **kwargs)


def test_mount_t_fuse_irsafs_with_o_options(mounts, server, mount_helper):
    mnt = mounts.mountpoint()
    opts = (f'endpoint_url={server.endpoint},prefix=data/,file_mode=0400,_netdev,nofail,'
            'x-systemd.automount,rw')
    result = run(['mount', '-t', 'fuse.irsafs', BUCKET, str(mnt), '-o', opts], irsafs_env())
    assert result.returncode == 0, result.stderr
    assert is_mounted(mnt)
    assert sorted(os.listdir(mnt)) == ['a.bin', 'b.bin']
    assert (mnt / 'a.bin').read_bytes() == FILES['data/a.bin']
    assert (os.stat(mnt / 'a.bin').st_mode & 0o777) == 0o400
    fields = [line.split() for line in open('/proc/mounts', encoding='utf-8')
              if line.split()[1] == str(mnt)][0]
    assert fields[2] == 'fuse.irsafs' and fields[3].startswith('ro')
    assert run(['umount', str(mnt)]).returncode == 0
    assert wait_for(lambda: not is_mounted(mnt))


def test_fstab_line(mounts, server, mount_helper, tmp_path):
    mnt = mounts.mountpoint()
    fstab = tmp_path / 'fstab'
    fstab.write_text(f'{BUCKET} {mnt} fuse.irsafs '
                     f'endpoint_url={server.endpoint},allow_other,_netdev,noauto 0 0\n')
    result = run(['mount', '--fstab', str(fstab), str(mnt)], irsafs_env())
    assert result.returncode == 0, result.stderr
    assert (mnt / 'hello.txt').read_bytes() == FILES['hello.txt']
    assert 'allow_other' in [line for line in open('/proc/mounts', encoding='utf-8')
                             if str(mnt) in line][0]


def test_mount_helper_reports_failure(mounts, server, mount_helper):
    mnt = mounts.mountpoint()
    result = run(['mount', '-t', 'fuse.irsafs', 'no-such-bucket', str(mnt), '-o',
                  f'endpoint_url={server.endpoint}'], irsafs_env())
    assert result.returncode != 0
    assert 'NoSuchBucket' in result.stderr
    assert not is_mounted(mnt)


# ---------------------------------------------------------------------------------------------
# The ready file and the log file


def test_ready_file_and_log_file_in_daemon_mode(mounts, server, tmp_path):
    mnt = mounts.mountpoint()
    ready, log = tmp_path / 'ready', tmp_path / 'irsafs.log'
    status, _, err = mounts.run(['--endpoint-url', server.endpoint, '--ready-file', str(ready),
                                 '--log-file', str(log), '--debug', BUCKET, str(mnt)],
                                irsafs_env(), mnt)
    assert status == 0, err
    assert ready.exists(), 'the ready file must exist once the command returns'
    pid = int(ready.read_text().split()[0])
    assert ready.read_text().split()[1] == str(mnt)
    assert (mnt / 'hello.txt').read_bytes() == FILES['hello.txt']
    os.kill(pid, signal.SIGTERM)
    assert wait_for(lambda: not process_alive(pid), timeout=HANG_GUARD)
    assert not is_mounted(mnt)
    assert not ready.exists(), 'the ready file must go when the mount goes'
    text = log.read_text()
    assert 'main: mounted bucket=test-bucket' in text and 'signal=Terminated' in text, text


# ---------------------------------------------------------------------------------------------
# SIGTERM while reads hang


class StallingProxy:
    """A TCP proxy to the server that, once stalled, stops passing responses on: every request
    in flight then hangs as on a stalled S3."""

    def __init__(self, port):
        self.target = port
        self.stalled = threading.Event()
        self.listener = socket.create_server(('127.0.0.1', 0))
        self.port = self.listener.getsockname()[1]
        self.sockets = []
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(('127.0.0.1', self.target))
            self.sockets += [client, upstream]
            threading.Thread(target=self.pipe, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self.pipe, args=(upstream, client, True), daemon=True).start()

    def pipe(self, source, sink, response):
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                while response and self.stalled.is_set():
                    time.sleep(0.05)
                sink.sendall(data)
        except OSError:
            pass

    def close(self):
        self.listener.close()
        for sock in self.sockets:
            sock.close()


def test_sigterm_with_reads_hanging_on_a_stalled_s3(mounts, server):
    proxy = StallingProxy(server.port)
    try:
        mount = mounts.mount(['--endpoint-url', f'http://127.0.0.1:{proxy.port}'], irsafs_env())
        os.listdir(mount.path / 'data')
        proxy.stalled.set()
        readers = [subprocess.Popen(['dd', f'if={mount.path / "data" / name}', 'of=/dev/null',
                                     'bs=1M', 'iflag=direct'], stderr=subprocess.DEVNULL)
                   for name in ('a.bin', 'b.bin', 'b.bin')]
        time.sleep(1)
        assert all(reader.poll() is None for reader in readers), 'the reads should hang'
        started = time.monotonic()
        mount.proc.send_signal(signal.SIGTERM)
        status = mount.proc.wait(HANG_GUARD)
        took = time.monotonic() - started
        print(f'exit after SIGTERM with 3 hanging reads: {took:.2f} s')
        assert status == 0, mount.output()
        # Without cancellation the GETs would hang for the stall timeout (10 s) and more.
        assert took < 8, f'irsafs took {took:.1f} s to stop'
        for reader in readers:
            assert reader.wait(HANG_GUARD) != 0, 'a hanging read must fail, not succeed'
        assert wait_for(lambda: not is_mounted(mount.path))
    finally:
        proxy.close()


# ---------------------------------------------------------------------------------------------
# A pod, simulated with mount namespaces


def nsrun(pid, cmd, **kwargs):
    """Run cmd in the mount namespace of pid."""
    return run(['nsenter', '-t', str(pid), '-m', '--', *cmd], **kwargs)


@pytest.mark.skipif(shutil.which('unshare') is None or shutil.which('nsenter') is None,
                    reason='needs util-linux unshare and nsenter')
def test_pod_mount_propagation(server, tmp_path):
    """The sidecar namespace has a shared directory (Bidirectional); the app namespace is made
    from it and sees that directory as a slave (HostToContainer). A mount made by irsafs in the
    sidecar must appear in the app, stay out of the host, and vanish from both on SIGTERM."""
    shared = tmp_path / 'volume'
    mnt = shared / 's3'
    mnt.mkdir(parents=True)
    sidecar = app = daemon = None
    try:
        sidecar = subprocess.Popen(['unshare', '-m', '--propagation', 'private', 'sleep',
                                    'infinity'])
        assert wait_for(lambda: os.readlink(f'/proc/{sidecar.pid}/ns/mnt')
                        != os.readlink('/proc/self/ns/mnt'))
        # The pod volume: a shared mount in the sidecar's namespace.
        for cmd in (['mount', '--bind', str(shared), str(shared)],
                    ['mount', '--make-shared', str(shared)]):
            result = nsrun(sidecar.pid, cmd)
            assert result.returncode == 0, result.stderr
        # The app container: a copy of the sidecar's namespace where the volume is a slave.
        app = subprocess.Popen(['nsenter', '-t', str(sidecar.pid), '-m', '--', 'unshare', '-m',
                                '--propagation', 'unchanged', 'sh', '-c',
                                f'mount --make-slave {shared} && exec sleep infinity'])
        assert wait_for(lambda: os.readlink(f'/proc/{app.pid}/ns/mnt')
                        != os.readlink(f'/proc/{sidecar.pid}/ns/mnt'))
        assert wait_for(lambda: 'master:' in nsrun(app.pid, ['cat',
                                                             '/proc/self/mountinfo']).stdout)
        # The sidecar mounts the bucket (as a daemon, with a ready file) after the app exists.
        ready = tmp_path / 'ready'
        result = nsrun(sidecar.pid, [BIN, '--endpoint-url', server.endpoint, '--ready-file',
                                     str(ready), BUCKET, str(mnt)], env=irsafs_env())
        assert result.returncode == 0, result.stderr
        daemon = int(ready.read_text().split()[0])
        seen = nsrun(app.pid, ['cat', str(mnt / 'hello.txt')])
        assert seen.stdout == FILES['hello.txt'].decode(), seen.stderr
        assert nsrun(app.pid, ['mountpoint', '-q', str(mnt)]).returncode == 0
        assert not is_mounted(mnt), 'the mount leaked into the host namespace'
        # Kubernetes stops the sidecar: SIGTERM.
        os.kill(daemon, signal.SIGTERM)
        assert wait_for(lambda: not process_alive(daemon), timeout=HANG_GUARD)
        for pid in (sidecar.pid, app.pid):
            assert wait_for(lambda pid=pid: nsrun(pid, ['mountpoint', '-q', str(mnt)])
                            .returncode != 0), f'the mount is still there in {pid}'
        gone = nsrun(app.pid, ['ls', str(mnt)])
        assert gone.returncode == 0 and gone.stdout == '', 'a dead mount was left behind'
    finally:
        if daemon and process_alive(daemon):
            os.kill(daemon, signal.SIGKILL)
        for proc in (app, sidecar):
            if proc:
                proc.kill()
                proc.wait()
        unmount(mnt)
        for pid in irsafs_pids(mnt):
            os.kill(pid, signal.SIGKILL)


def test_restart_over_a_dead_mount(mounts, server):
    """An irsafs killed without SIGTERM leaves a dead mount ("Transport endpoint is not
    connected"); the next irsafs on the same mount point detaches it and mounts."""
    first = mounts.mount(['--endpoint-url', server.endpoint], irsafs_env())
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(HANG_GUARD)
    with pytest.raises(OSError) as dead:
        os.stat(first.path / 'hello.txt')
    assert dead.value.errno == 107  # ENOTCONN
    # The dead mount still shows in /proc/mounts: wait for the file to be readable instead.
    second = mounts.mount(['--endpoint-url', server.endpoint], irsafs_env(),
                          mountpoint=first.path)

    def readable():
        try:
            return (second.path / 'hello.txt').read_bytes() == FILES['hello.txt']
        except OSError:
            return False

    assert wait_for(readable, timeout=HANG_GUARD), second.output()
    assert 'detached a dead mount' in second.output()
