#!/usr/bin/python3
"""Benchmark irsafs against s3fs, rclone mount and the limits of the machine, on a local S3
server (tests/s3server.py) served raw over loopback and shaped like S3
(tests/bench/shaped_server.py: time to first byte, per-connection bandwidth).

    make bench          # the full run (3 runs of everything, 1 GiB object); or:
    /usr/bin/python3 tests/bench/bench.py [--quick] [--publish] [--runs N] [--big-mb N]
        [--modes raw,shaped] [--systems irsafs,s3fs,rclone,memfs,curl,curl-n]
        [--phases seq,rand4k,small,find,ls] [--out DIR]

Settings also come from the environment (the command line wins): BENCH_RUNS (3),
BENCH_BIG_MB (1024), BENCH_SMALL_FILES (1000), BENCH_DIR_KEYS (20000), BENCH_FIO_SECONDS (10),
BENCH_MODES, BENCH_SYSTEMS, BENCH_PHASES (seq,rand4k,small,find,ls), BENCH_CONNECTIONS (16: curl -n streams, irsafs's default
--max-connections), BENCH_FIRST_BYTE_MS (20), BENCH_BANDWIDTH_MBPS (100), BENCH_TIMEOUT
(seconds one measured command may take before it counts as failed, 300), BENCH_OUT
(build/bench), IRSAFS_BIN, MEMFS_BIN, BENCH_IRSAFS_ARGS (extra irsafs options, split on
spaces, e.g. "--cache-size 1G").

Writes OUT/results.json (every run of every figure, request counts, errors), OUT/table.md
(also printed at the end) and OUT/chart.png (gnuplot); with --publish also copies table.md and
chart.png to tests/bench/results/. Every mount gets a fresh mount point under OUT/mnt/, and
whatever is mounted or started is unmounted and stopped on exit, error, Ctrl-C or SIGTERM.
Nothing asserts on timings: the machine may be noisy; the figures are reported as measured.
See tests/bench/README.md for what each row and column means.
"""

import argparse
import hashlib
import json
import os
import platform
import random
import re
import resource
import select
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / 'tests'))
import s3server  # noqa: E402  pylint: disable=wrong-import-position

AKID, SECRET = 'AKIDTEST', 'secrettest'
REGION = 'us-east-1'
BUCKET = 'bench'
BIG_KEY = 'big/big.bin'
SMALL_DIR = 'small'
MANY_DIR = 'many'
SMALL_MIN, SMALL_MAX = 16 * 1024, 256 * 1024
MiB = 1024 * 1024
GiB = 1024 * MiB
PROXY_VARS = ('http_proxy', 'https_proxy', 'all_proxy', 'no_proxy', 'ftp_proxy')

# Columns: the systems under test, then the limits.
PEERS = ('s3fs', 'rclone')
FUSE_SYSTEMS = ('irsafs', 's3fs', 'rclone', 'memfs')
ALL_SYSTEMS = ('irsafs', 's3fs', 'rclone', 'memfs', 'curl', 'curl-n')
MODES = ('raw', 'shaped')
# Phases: seq = rows 1, 2, 7, 8 (one mount each run); rand4k = row 3; small = row 4;
# find = row 5; ls = row 6.
PHASES = ('seq', 'rand4k', 'small', 'find', 'ls')

OP_SHORT = {'ListObjectsV2': 'LIST', 'GetObject': 'GET', 'HeadObject': 'HEAD',
            'HeadBucket': 'HEADB', 'ListObjects': 'LISTv1'}


def column_label(system, config):
    if system == 'curl':
        return 'curl ×1'
    if system == 'curl-n':
        return f'curl ×{config["connections"]}'
    return system


# Rows: id -> (number, title, unit, better). Order is the table's order.
def row_specs(config):
    big = human_size(config['big_bytes'])
    return {
        'cold_seq': ('1', f'{big} sequential read, cold (fresh mount)', 'MB/s', 'higher'),
        'warm_seq': ('2', f'{big} re-read, warm (same mount)', 'MB/s', 'higher'),
        'warm_requests': ('2', 'warm re-read: requests reaching the server', 'requests',
                          'lower'),
        'warm_resident': ('2', 'warm re-read: file in page cache just before it (fincore)',
                          '%', 'higher'),
        'rand4k': ('3', f'random 4 KiB reads, fio {config["fio_jobs"]} jobs psync, '
                        f'{config["fio_seconds"]} s', 'IOPS', 'higher'),
        'small_s': ('4', f'{config["small_files"]:,} small files, 8 parallel readers',
                    's', 'lower'),
        'small_rate': ('4', f'{config["small_files"]:,} small files, 8 parallel readers',
                       'files/s', 'higher'),
        'find': ('5', f'find over {config["dir_keys"]:,} keys (fresh mount)', 's', 'lower'),
        'ls': ('6', f'ls -l over {config["dir_keys"]:,} keys (fresh mount)', 's', 'lower'),
        'peak_rss': ('7', 'peak RSS after row 1 (VmHWM)', 'MiB', 'lower'),
        'idle_rss': ('7', 'idle RSS after mounting (VmRSS)', 'MiB', 'lower'),
        'cpu': ('8', 'CPU per GiB read in row 1 (user+sys)', 's/GiB', 'lower'),
    }


# Which rows produce request counts, and which columns each row has.
ROW_SYSTEMS = {
    'cold_seq': ALL_SYSTEMS,
    'warm_seq': ('irsafs', 's3fs', 'rclone', 'memfs'),
    'warm_requests': ('irsafs', 's3fs', 'rclone', 'memfs'),
    'warm_resident': ('irsafs', 's3fs', 'rclone', 'memfs'),
    'rand4k': ('irsafs', 's3fs', 'rclone'),
    'small_s': ('irsafs', 's3fs', 'rclone'),
    'small_rate': ('irsafs', 's3fs', 'rclone'),
    'find': ('irsafs', 's3fs', 'rclone'),
    'ls': ('irsafs', 's3fs', 'rclone'),
    'peak_rss': ('irsafs', 's3fs', 'rclone', 'memfs'),
    'idle_rss': ('irsafs', 's3fs', 'rclone', 'memfs'),
    'cpu': ('irsafs', 's3fs', 'rclone', 'memfs', 'curl', 'curl-n'),
}
REQUEST_ROWS = ('cold_seq', 'warm_seq', 'rand4k', 'small_s', 'find', 'ls')
# Rows reported for information only: no best peer, no ratio.
INFO_ROWS = ('warm_resident',)


def limit_for(row, mode):
    """The column a row's irsafs figure is compared with as its limit, or None."""
    if row == 'cold_seq':
        return 'curl' if mode == 'raw' else 'curl-n'
    if row == 'warm_seq':
        return 'memfs'
    return None


def human_size(n):
    if n % GiB == 0:
        return f'{n // GiB} GiB'
    if n % MiB == 0:
        return f'{n // MiB} MiB'
    return f'{n} B'


# ---------------------------------------------------------------------------------------------
# Process and mount bookkeeping: everything started is registered here and torn down by
# cleanup(), which runs in a finally block and on SIGTERM/SIGHUP/SIGINT.


class Interrupted(Exception):
    pass


def _on_signal(signum, _frame):
    raise Interrupted(f'received signal {signum}')


class Reaper:
    def __init__(self):
        self.commands = []   # short-lived measurement commands (own process group)
        self.daemons = []    # mounted filesystems' processes
        self.servers = []    # S3 servers
        self.mounts = []     # mount points

    @staticmethod
    def kill_group(proc):
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                pass

    @staticmethod
    def stop(proc, grace=10.0):
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    pass

    def cleanup(self):
        old = {s: signal.signal(s, signal.SIG_IGN) for s in
               (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        try:
            for proc in self.commands:
                self.kill_group(proc)
            self.commands.clear()
            for path in list(self.mounts):
                unmount(path)
            self.mounts.clear()
            for proc in self.daemons:
                self.stop(proc)
            self.daemons.clear()
            for proc in self.servers:
                self.stop(proc)
            self.servers.clear()
        finally:
            for s, handler in old.items():
                signal.signal(s, handler)


REAPER = Reaper()


def mounted_paths():
    paths = set()
    with open('/proc/mounts', 'rb') as file:
        for line in file:
            parts = line.split(b' ')
            if len(parts) > 1:
                paths.add(parts[1].decode('utf-8', 'replace').replace('\\040', ' '))
    return paths


def is_mounted(path):
    return os.path.realpath(path) in mounted_paths()


def wait_for(predicate, timeout, interval=0.02):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)
        interval = min(interval * 1.5, 0.25)


def unmount(path):
    """fusermount3 -u (retried while busy), then -uz. True when nothing is mounted there."""
    path = str(path)
    deadline = time.monotonic() + 10
    while is_mounted(path) and time.monotonic() < deadline:
        subprocess.run(['fusermount3', '-u', path], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30,
                       check=False)
        if wait_for(lambda: not is_mounted(path), 1):
            break
    if is_mounted(path):
        subprocess.run(['fusermount3', '-uz', path], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30,
                       check=False)
    gone = wait_for(lambda: not is_mounted(path), 10)
    if gone and path in REAPER.mounts:
        REAPER.mounts.remove(path)
    return gone


class CommandFailed(Exception):
    pass


def run_command(args, timeout, env=None, shell=False):
    """Run a measurement command in its own process group; return (seconds, stdout, stderr).
    Raises CommandFailed on a non-zero exit or a timeout (the group is killed)."""
    out = tempfile.TemporaryFile()
    err = tempfile.TemporaryFile()
    start = time.perf_counter()
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env,
                            shell=shell, start_new_session=True,
                            executable='/bin/bash' if shell else None)
    REAPER.commands.append(proc)
    try:
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            Reaper.kill_group(proc)
            raise CommandFailed(f'timeout after {timeout:.0f} s') from None
        elapsed = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode('utf-8', 'replace')
        stderr = err.read().decode('utf-8', 'replace')
        if proc.returncode != 0:
            raise CommandFailed(f'exit status {proc.returncode}: {stderr.strip()[-300:]}')
        return elapsed, stdout, stderr
    finally:
        Reaper.kill_group(proc)   # stragglers of a pipeline
        if proc in REAPER.commands:
            REAPER.commands.remove(proc)
        out.close()
        err.close()


# ---------------------------------------------------------------------------------------------
# /proc readings


CLK_TCK = os.sysconf('SC_CLK_TCK')


def page_cache_bytes(path):
    """Bytes of `path` in the page cache (util-linux fincore), or None when unknown. The
    host may reclaim page cache proactively (e.g. DAMON pageout in a VM): a warm re-read then
    has to fetch the missing pages again, and this tells it apart from a file system that
    drops its cache."""
    if not shutil.which('fincore'):
        return None
    try:
        _, stdout, _ = run_command(['fincore', '--bytes', '--noheadings', '--output', 'RES',
                                    str(path)], 30)
        return int(stdout.split()[0])
    except (CommandFailed, ValueError, IndexError):
        return None


def load_average():
    try:
        with open('/proc/loadavg', encoding='ascii') as file:
            return ' '.join(file.read().split()[:3])
    except OSError:
        return '?'


def cpu_seconds(pid):
    with open(f'/proc/{pid}/stat', 'rb') as file:
        stat = file.read()
    fields = stat[stat.rindex(b')') + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def status_kib(pid, field):
    with open(f'/proc/{pid}/status', encoding='ascii', errors='replace') as file:
        for line in file:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    raise KeyError(field)


def children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# ---------------------------------------------------------------------------------------------
# Servers


class Server:
    def __init__(self, mode, config, out_dir):
        self.mode = mode
        script = REPO / 'tests' / 's3server.py'
        args = ['--bucket', BUCKET, '--region', REGION, '--credentials', f'{AKID}:{SECRET}']
        if mode == 'shaped':
            script = HERE / 'shaped_server.py'
            args += ['--first-byte-ms', str(config['first_byte_ms']),
                     '--bandwidth-mbps', str(config['bandwidth_mbps'])]
        self.log_path = out_dir / 'logs' / f'server-{mode}.log'
        self.log = open(self.log_path, 'wb')   # pylint: disable=consider-using-with
        self.proc = subprocess.Popen([sys.executable, str(script), *args],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self.log, start_new_session=True)
        REAPER.servers.append(self.proc)
        line = b''
        deadline = time.monotonic() + 30
        while not line.endswith(b'\n'):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self.proc.stdout], [], [], remaining)[0]:
                raise RuntimeError(f'{script.name} did not start; see {self.log_path}')
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            if not chunk:
                raise RuntimeError(f'{script.name} exited; see {self.log_path}')
            line += chunk
        self.port = json.loads(line)['port']
        self.endpoint = f'http://127.0.0.1:{self.port}'
        self.control = s3server.Control(self.port, timeout=600)

    def stop(self):
        Reaper.stop(self.proc)
        if self.proc in REAPER.servers:
            REAPER.servers.remove(self.proc)
        self.proc.stdout.close()
        self.log.close()

    def reset(self):
        self.control.reset()

    def snapshot(self):
        """S3 request counts by operation, statuses, bytes sent, and the log when short."""
        stats = self.control.stats()
        requests = {op: n for op, n in stats['requests'].items()
                    if op not in s3server.CREDENTIAL_OPS}
        result = {'requests': requests, 'total': sum(requests.values()),
                  'statuses': stats['statuses'], 'bytes_sent': stats['bytes_sent']}
        if 0 < len(stats['log']) <= 40:
            result['log'] = stats['log']
        return result


def small_sizes(config):
    rng = random.Random(20260101)
    return [rng.randint(SMALL_MIN, SMALL_MAX) for _ in range(config['small_files'])]


def load_dataset(server, config):
    control = server.control
    control.bulk(BUCKET, [{'key': BIG_KEY, 'size': config['big_bytes'], 'seed': 'bench-big'}])
    items = [{'key': f'{SMALL_DIR}/file-{i:05d}.bin', 'size': size, 'seed': f'small-{i}'}
             for i, size in enumerate(small_sizes(config))]
    items += [{'key': f'{MANY_DIR}/key-{i:06d}', 'size': (i % 4) * 8, 'seed': f'many-{i}'}
              for i in range(config['dir_keys'])]
    for first in range(0, len(items), 2000):
        control.bulk(BUCKET, items[first:first + 2000])


# ---------------------------------------------------------------------------------------------
# Systems: how each one is mounted (or, for curl, read directly)


def clean_env(**extra):
    env = {name: value for name, value in os.environ.items()
           if not name.startswith('AWS_') and not name.startswith('RCLONE_')
           and name.lower() not in PROXY_VARS}
    env.update(extra)
    return env


# irsafs sets its mount's kernel read-ahead (--read-ahead, 1 MiB by default), which makes the
# kernel send it 1 MiB reads instead of 128 KiB ones. memfs gets the same, to stay the ceiling.
IRSAFS_READ_AHEAD_KIB = 1024


def set_read_ahead(path, kib):
    os.statvfs(path)  # answered only after FUSE's INIT, when the kernel fixes the read-ahead
    dev = os.stat(path).st_dev
    with open(f'/sys/class/bdi/{os.major(dev)}:{os.minor(dev)}/read_ahead_kb', 'w',
              encoding='ascii') as file:
        file.write(f'{kib}\n')


class Mount:
    """One mounted filesystem: its process, mount point and log."""

    counter = 0

    def __init__(self, system, server, config, out_dir):
        Mount.counter += 1
        self.system = system
        self.path = out_dir / 'mnt' / f'{server.mode}-{system}-{Mount.counter:03d}'
        self.path.mkdir(parents=True, exist_ok=False)
        self.log_path = out_dir / 'logs' / f'{server.mode}-{system}-{Mount.counter:03d}.log'
        args, env = mount_command(system, self.path, server, config, out_dir)
        self.log = open(self.log_path, 'wb')   # pylint: disable=consider-using-with
        self.log.write(('$ ' + shlex.join(args) + '\n').encode())
        self.log.flush()
        REAPER.mounts.append(str(self.path))
        self.proc = subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=self.log, start_new_session=True)
        REAPER.daemons.append(self.proc)
        ok = wait_for(lambda: is_mounted(self.path) or self.proc.poll() is not None, 60)
        if not is_mounted(self.path):
            status = self.proc.poll()
            self.close()
            raise CommandFailed(f'{system} did not mount (status {status}, waited '
                                f'{"" if ok else "60 s, "}log {self.log_path}): '
                                f'{self.log_tail()}')
        self.pid = self.proc.pid
        if system == 'memfs':
            self.big = self.path / 'big.bin'
            set_read_ahead(self.path, IRSAFS_READ_AHEAD_KIB)
        else:
            self.big = self.path / BIG_KEY

    def log_tail(self):
        try:
            lines = self.log_path.read_text(errors='replace').strip().splitlines()[1:]
        except OSError:
            return ''
        return ' | '.join(lines[-3:])[-400:]

    def close(self):
        unmount(self.path)
        # A FUSE daemon exits once unmounted; give it time, then stop it.
        if self.proc.poll() is None:
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                Reaper.stop(self.proc)
        if self.proc in REAPER.daemons:
            REAPER.daemons.remove(self.proc)
        self.log.close()
        try:
            self.path.rmdir()
        except OSError:
            pass


def mount_command(system, mnt, server, config, out_dir):
    if system == 'irsafs':
        args = [config['irsafs_bin'], '-f', '--endpoint-url', server.endpoint,
                *config['irsafs_args'], BUCKET, str(mnt)]
        return args, clean_env(AWS_ACCESS_KEY_ID=AKID, AWS_SECRET_ACCESS_KEY=SECRET)
    if system == 's3fs':
        passwd = out_dir / 's3fs.passwd'
        if not passwd.exists():
            passwd.write_text(f'{AKID}:{SECRET}\n')
            passwd.chmod(0o600)
        opts = (f'url={server.endpoint},use_path_request_style,passwd_file={passwd},ro,'
                f'listobjectsv2,endpoint={REGION},sigv4')
        return ['s3fs', BUCKET, str(mnt), '-f', '-o', opts], clean_env()
    if system == 'rclone':
        env = clean_env(RCLONE_CONFIG_BENCH_TYPE='s3', RCLONE_CONFIG_BENCH_PROVIDER='Other',
                        RCLONE_CONFIG_BENCH_ENDPOINT=server.endpoint,
                        RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=AKID,
                        RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=SECRET,
                        RCLONE_CONFIG_BENCH_REGION=REGION,
                        RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE='true',
                        RCLONE_CONFIG_BENCH_LIST_VERSION='2')
        args = ['rclone', 'mount', f'bench:{BUCKET}', str(mnt), '--config', '/dev/null',
                '--read-only', '--vfs-cache-mode', 'off', '--use-server-modtime']
        return args, env
    if system == 'memfs':
        return [config['memfs_bin'], '-s', str(config['big_bytes']), '-n', 'big.bin',
                str(mnt)], clean_env()
    raise ValueError(system)


def available(system, config):
    """None when `system` can run here, else why not."""
    if system == 'irsafs':
        binary = config['irsafs_bin']
        return None if os.access(binary, os.X_OK) else f'{binary} not built'
    if system == 'memfs':
        binary = config['memfs_bin']
        return None if os.access(binary, os.X_OK) else f'{binary} not built'
    tool = {'s3fs': 's3fs', 'rclone': 'rclone', 'curl': 'curl', 'curl-n': 'curl'}[system]
    return None if shutil.which(tool) else f'{tool} not installed'


# ---------------------------------------------------------------------------------------------
# Results


class Results:
    def __init__(self, config):
        self.config = config
        self.data = {'config': {k: v for k, v in config.items()}, 'modes': {},
                     'errors': [], 'timings': {}, 'load': {}}

    def cell(self, mode, row, system):
        rows = self.data['modes'].setdefault(mode, {}).setdefault('rows', {})
        return rows.setdefault(row, {}).setdefault(
            system, {'runs': [], 'requests': [], 'errors': []})

    def add(self, mode, row, system, value, requests=None):
        cell = self.cell(mode, row, system)
        cell['runs'].append(value)
        if requests is not None:
            cell['requests'].append(requests)

    def fail(self, mode, rows, system, error):
        message = str(error).strip() or type(error).__name__
        for row in rows:
            self.cell(mode, row, system)['errors'].append(message)
        self.data['errors'].append({'mode': mode, 'rows': list(rows), 'system': system,
                                    'error': message})
        log(f'    {system}: FAILED ({", ".join(rows)}): {message}')

    def failures(self, mode, row, system):
        return len(self.cell(mode, row, system)['errors'])

    def median(self, mode, row, system):
        cell = self.data['modes'].get(mode, {}).get('rows', {}).get(row, {}).get(system)
        if not cell:
            return None
        values = [v for v in cell['runs'] if v is not None]
        return statistics.median(values) if values else None

    def finalize(self):
        for mode, mode_data in self.data['modes'].items():
            for row, cells in mode_data.get('rows', {}).items():
                for system, cell in cells.items():
                    cell['median'] = self.median(mode, row, system)
                    cell['median_requests'] = median_requests(cell['requests'])


def median_requests(runs):
    if not runs:
        return None
    ops = sorted({op for run in runs for op in run['requests']})
    return {'requests': {op: statistics.median(run['requests'].get(op, 0) for run in runs)
                         for op in ops},
            'total': statistics.median(run['total'] for run in runs),
            'bytes_sent': statistics.median(run['bytes_sent'] for run in runs)}


def log(message):
    print(message, flush=True)


# ---------------------------------------------------------------------------------------------
# Measurements


def dd_read(path, size, timeout):
    """Read `path` with dd bs=1M to /dev/null; return MB/s (10^6 bytes per second)."""
    elapsed, _, stderr = run_command(['dd', f'if={path}', 'of=/dev/null', 'bs=1M'], timeout)
    match = re.search(r'^(\d+) bytes', stderr, re.M)
    copied = int(match.group(1)) if match else -1
    if copied != size:
        raise CommandFailed(f'dd read {copied} bytes, expected {size}')
    return size / elapsed / 1e6


def curl_args(server, extra=()):
    return ['curl', '-sS', '--fail', '-o', '/dev/null', '-w', '%{http_code} %{size_download}',
            '-H', 'x-amz-content-sha256: UNSIGNED-PAYLOAD',
            '--aws-sigv4', f'aws:amz:{REGION}:s3', '--user', f'{AKID}:{SECRET}',
            *extra, f'{server.endpoint}/{BUCKET}/{BIG_KEY}']


def measure_curl(server, config, streams):
    """GET the big object with `streams` parallel ranged curls (1: one plain GET); return
    (MB/s, CPU seconds of the curls)."""
    size = config['big_bytes']
    cpu0 = children_cpu()
    start = time.perf_counter()
    procs = []
    outputs = []
    try:
        for i in range(streams):
            extra = ()
            if streams > 1:
                first = size * i // streams
                last = size * (i + 1) // streams - 1
                extra = ('-r', f'{first}-{last}')
            out = tempfile.TemporaryFile()
            outputs.append(out)
            proc = subprocess.Popen(curl_args(server, extra), stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            REAPER.commands.append(proc)
            procs.append(proc)
        deadline = time.monotonic() + config['timeout']
        for proc in procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                raise CommandFailed(f'timeout after {config["timeout"]} s') from None
        elapsed = time.perf_counter() - start
        total = 0
        for proc, out in zip(procs, outputs):
            out.seek(0)
            text = out.read().decode('utf-8', 'replace').strip()
            if proc.returncode != 0:
                raise CommandFailed(f'curl exit status {proc.returncode}: {text[-300:]}')
            total += int(text.split()[-1])
        if total != size:
            raise CommandFailed(f'curl read {total} bytes, expected {size}')
        return size / elapsed / 1e6, children_cpu() - cpu0
    finally:
        for proc in procs:
            Reaper.kill_group(proc)
            if proc in REAPER.commands:
                REAPER.commands.remove(proc)
        for out in outputs:
            out.close()


def seq_session(results, mode, system, server, config, out_dir):
    """Rows 1, 2, 7 and 8 for a FUSE system: a fresh mount, idle RSS, cold read (CPU of the
    daemon), peak RSS, warm re-read (requests)."""
    rows = ('cold_seq', 'warm_seq', 'warm_requests', 'warm_resident', 'peak_rss', 'idle_rss',
            'cpu')
    size = config['big_bytes']
    mount = None
    try:
        mount = Mount(system, server, config, out_dir)
        time.sleep(0.5)   # let the daemon settle after the mount appears
        idle = status_kib(mount.pid, 'VmRSS') / 1024
        server.reset()
        cpu0 = cpu_seconds(mount.pid)
        cold = dd_read(mount.big, size, config['timeout'])
        cpu = cpu_seconds(mount.pid) - cpu0
        cold_requests = server.snapshot()
        peak = status_kib(mount.pid, 'VmHWM') / 1024
        resident = page_cache_bytes(mount.big)
        server.reset()
        warm = dd_read(mount.big, size, config['timeout'])
        warm_requests = server.snapshot()
        results.add(mode, 'cold_seq', system, cold, cold_requests)
        results.add(mode, 'warm_seq', system, warm, warm_requests)
        results.add(mode, 'warm_requests', system, warm_requests['total'])
        if resident is not None:
            results.add(mode, 'warm_resident', system, 100.0 * resident / size)
        results.add(mode, 'idle_rss', system, idle)
        results.add(mode, 'peak_rss', system, peak)
        results.add(mode, 'cpu', system, cpu / (size / GiB))
        log(f'    {system:7s} cold {cold:8.1f} MB/s  warm {warm:8.1f} MB/s  '
            f'warm requests {warm_requests["total"]}  resident '
            f'{"?" if resident is None else f"{100.0 * resident / size:.1f}%"}  idle {idle:.1f} MiB  peak {peak:.1f} MiB'
            f'  cpu {cpu / (size / GiB):.2f} s/GiB  cold requests {cold_requests["requests"]}')
    except (CommandFailed, OSError, RuntimeError, KeyError, ValueError) as error:
        results.fail(mode, rows, system, error)
    finally:
        if mount is not None:
            mount.close()


def curl_session(results, mode, system, server, config):
    streams = 1 if system == 'curl' else config['connections']
    try:
        server.reset()
        rate, cpu = measure_curl(server, config, streams)
        requests = server.snapshot()
        results.add(mode, 'cold_seq', system, rate, requests)
        results.add(mode, 'cpu', system, cpu / (config['big_bytes'] / GiB))
        log(f'    {system:7s} {rate:8.1f} MB/s  cpu {cpu / (config["big_bytes"] / GiB):.2f}'
            f' s/GiB  requests {requests["requests"]}')
    except (CommandFailed, OSError, RuntimeError, ValueError) as error:
        results.fail(mode, ('cold_seq', 'cpu'), system, error)


def fresh_mount_measure(results, mode, rows, system, server, config, out_dir, measure):
    """Mount `system` afresh, reset the server's counters, run `measure(mount)` -> {row:
    value}, record the values with the request counts, unmount."""
    mount = None
    try:
        mount = Mount(system, server, config, out_dir)
        server.reset()
        values = measure(mount)
        requests = server.snapshot()
        for row, value in values.items():
            results.add(mode, row, system, value, requests)
        shown = '  '.join(f'{row} {value:.2f}' for row, value in values.items())
        log(f'    {system:7s} {shown}  requests {requests["requests"]}')
    except (CommandFailed, OSError, RuntimeError, KeyError, ValueError) as error:
        results.fail(mode, rows, system, error)
    finally:
        if mount is not None:
            mount.close()


def measure_fio(mount, config):
    args = ['fio', '--name=rand4k', f'--filename={mount.big}', '--rw=randread', '--bs=4k',
            f'--numjobs={config["fio_jobs"]}', '--ioengine=psync',
            f'--runtime={config["fio_seconds"]}', '--time_based', '--readonly',
            '--invalidate=1', '--group_reporting', '--output-format=json']
    _, stdout, _ = run_command(args, config['fio_seconds'] + config['timeout'])
    report = json.loads(stdout[stdout.index('{'):])
    job = report['jobs'][0]
    if job.get('error'):
        raise CommandFailed(f'fio error {job["error"]}')
    return {'rand4k': job['read']['iops']}


def measure_small(mount, config):
    directory = mount.path / SMALL_DIR
    script = (f'set -o pipefail; find {shlex.quote(str(directory))} -type f -print0 '
              f'| xargs -0 -P8 -n25 cat > /dev/null')
    elapsed, _, _ = run_command(script, config['timeout'], shell=True)
    return {'small_s': elapsed, 'small_rate': config['small_files'] / elapsed}


def measure_listing(mount, config, command, expected_lines, row):
    directory = shlex.quote(str(mount.path / MANY_DIR))
    script = f'set -o pipefail; {command} {directory} | wc -l'
    elapsed, stdout, _ = run_command(script, config['timeout'], shell=True)
    lines = int(stdout.strip() or 0)
    if lines != expected_lines:
        raise CommandFailed(f'{command} printed {lines} lines, expected {expected_lines}')
    return {row: elapsed}


def run_mode(results, mode, config, out_dir, systems):
    log(f'\n=== {mode} server' + (f' ({config["first_byte_ms"]:g} ms to first byte, '
                                   f'{config["bandwidth_mbps"]:g} MB/s per connection)'
                                   if mode == 'shaped' else ' (loopback, no shaping)'))
    started = time.monotonic()
    load_before = load_average()
    server = Server(mode, config, out_dir)
    try:
        t0 = time.monotonic()
        load_dataset(server, config)
        log(f'  dataset loaded in {time.monotonic() - t0:.1f} s')
        fuse = [s for s in systems if s in FUSE_SYSTEMS]
        curls = [s for s in systems if s in ('curl', 'curl-n')]
        fs_only = [s for s in fuse if s != 'memfs']
        runs = config['runs']
        timing = {}

        def skip(row, system):
            # After two failures (or one timeout) a system sits out the rest of a row.
            cell = results.cell(mode, row, system)
            return len(cell['errors']) >= 2 or any('timeout' in e for e in cell['errors'])

        t0 = time.monotonic()
        for run in range(runs if 'seq' in config['phases'] else 0):
            log(f'  rows 1, 2, 7, 8 (sequential read), run {run + 1}/{runs}')
            for system in fuse:
                if not skip('cold_seq', system):
                    seq_session(results, mode, system, server, config, out_dir)
            for system in curls:
                if not skip('cold_seq', system):
                    curl_session(results, mode, system, server, config)
        timing['seq'] = time.monotonic() - t0

        phases = [
            ('rand4k', ('rand4k',), lambda m: measure_fio(m, config)),
            ('small', ('small_s', 'small_rate'), lambda m: measure_small(m, config)),
            ('find', ('find',), lambda m: measure_listing(m, config, 'find',
                                                          config['dir_keys'] + 1, 'find')),
            ('ls', ('ls',), lambda m: measure_listing(m, config, 'ls -l',
                                                      config['dir_keys'] + 1, 'ls')),
        ]
        titles = {'rand4k': 'row 3 (random 4 KiB reads)', 'small': 'row 4 (small files)',
                  'find': 'row 5 (find)', 'ls': 'row 6 (ls -l)'}
        for name, rows, measure in phases:
            if name not in config['phases']:
                continue
            t0 = time.monotonic()
            for run in range(runs):
                log(f'  {titles[name]}, run {run + 1}/{runs}')
                for system in fs_only:
                    if not skip(rows[0], system):
                        fresh_mount_measure(results, mode, rows, system, server, config,
                                            out_dir, measure)
            timing[name] = time.monotonic() - t0
    finally:
        server.stop()
    if 'Traceback' in server.log_path.read_text(errors='replace'):
        results.data['errors'].append({'mode': mode, 'system': 'server',
                                       'error': f'tracebacks in {server.log_path}'})
    timing['total'] = time.monotonic() - started
    results.data['timings'][mode] = timing
    results.data['load'][mode] = {'before': load_before, 'after': load_average()}
    log(f'  {mode} done in {timing["total"]:.0f} s')


# ---------------------------------------------------------------------------------------------
# Report: table.md and chart.png


def fmt(value, unit):
    if value is None:
        return None
    if unit in ('MB/s', 'IOPS', 'files/s'):
        return f'{value:,.0f}' if value >= 100 else f'{value:,.1f}'
    if unit == 'requests':
        return f'{value:g}'
    if unit == 's':
        return f'{value:.2f}' if value < 100 else f'{value:.0f}'
    if unit == '%':
        if value in (0, 100):
            return f'{value:.0f}'
        return '>99.99' if 99.995 <= value < 100 else f'{value:.2f}'
    if unit == 'MiB':
        return f'{value:.1f}'
    if unit == 's/GiB':
        return f'{value:.2f}'
    return f'{value:g}'


def ratio(a, b, better):
    """irsafs / other as text; None when not computable."""
    if a is None or b is None:
        return None
    if b == 0:
        return '0 vs 0' if a == 0 else None
    return f'{a / b:.2f}×'


def cell_text(results, mode, row, system, unit):
    cell = results.data['modes'].get(mode, {}).get('rows', {}).get(row, {}).get(system)
    if cell is None:
        return '—'
    value = results.median(mode, row, system)
    ok = len([v for v in cell['runs'] if v is not None])
    failed = len(cell['errors'])
    text = fmt(value, unit)
    if text is None:
        return 'timeout' if any('timeout' in e for e in cell['errors']) else 'fail'
    runs = [v for v in cell['runs'] if v is not None]
    if unit in ('requests', '%') and len(set(runs)) > 1:
        # A median hides the odd run out; for these rows every run matters.
        text += ' [' + ', '.join(fmt(v, unit) for v in runs) + ']'
    if failed:
        text += f' ({ok}/{ok + failed})'
    return text


def best_peer(results, mode, row, better):
    candidates = [(results.median(mode, row, p), p) for p in PEERS]
    candidates = [(v, p) for v, p in candidates if v is not None]
    if not candidates:
        return None, None
    value, peer = (max if better == 'higher' else min)(candidates)
    return peer, value


def requests_text(summary):
    if not summary:
        return '—'
    ops = summary['requests']
    parts = [f'{OP_SHORT.get(op, op)} {n:g}' for op, n in sorted(ops.items()) if n]
    text = ', '.join(parts) if parts else '0'
    sent = summary['bytes_sent']
    if sent:
        text += f'; {sent / MiB:,.1f} MiB' if sent < GiB else f'; {sent / GiB:.2f} GiB'
    return text


def render_table(results, config):
    specs = row_specs(config)
    systems = [s for s in ALL_SYSTEMS if s in config['systems']]
    lines = []
    meta = results.data['meta']
    lines.append('# irsafs benchmark')
    lines.append('')
    lines.append(f'{meta["finished"]} · {meta["machine"]} · '
                 f'median of {config["runs"]} run(s) · object {human_size(config["big_bytes"])}, '
                 f'{config["small_files"]:,} small files ({SMALL_MIN // 1024}–'
                 f'{SMALL_MAX // 1024} KiB), {config["dir_keys"]:,} keys in one directory · '
                 f'{meta["duration_s"] / 60:.1f} min in all')
    lines.append('')
    lines.append('↑ higher is better, ↓ lower is better. "irsafs / best peer" compares with the '
                 'better of s3fs and rclone; "limit" is curl ×1 for the raw cold read, '
                 f'curl ×{config["connections"]} (parallel ranged GETs) for the shaped cold '
                 'read, and memfs (a do-nothing FUSE file system) for the warm re-read. '
                 '"(k/n)": only k of n runs succeeded.')
    for mode in config['modes']:
        if mode not in results.data['modes']:
            continue
        lines.append('')
        if mode == 'raw':
            lines.append('## Raw loopback (tests/s3server.py as is)')
        else:
            lines.append(f'## Shaped ({config["first_byte_ms"]:g} ms to first byte, '
                         f'{config["bandwidth_mbps"]:g} MB/s per connection)')
        load = results.data['load'].get(mode)
        timing = results.data['timings'].get(mode, {})
        if load:
            lines.append('')
            lines.append(f'{timing.get("total", 0) / 60:.1f} min; load average (1/5/15 min) '
                         f'{load["before"]} before, {load["after"]} after (2 CPUs shared with '
                         'other work: figures are noisy).'.replace('2 CPUs', f'{os.cpu_count()} '
                                                                   'CPUs'))
        lines.append('')
        header = ['#', 'Measure', 'Unit'] + [column_label(s, config) for s in systems] + \
                 ['Best peer', 'irsafs / best peer', 'Limit', 'irsafs / limit']
        lines.append('| ' + ' | '.join(header) + ' |')
        lines.append('|' + '|'.join(['---'] * 3 + ['---:'] * len(systems)
                                    + ['---', '---:', '---', '---:']) + '|')
        for row, (number, title, unit, better) in specs.items():
            arrow = '↑' if better == 'higher' else '↓'
            cells = [number, title, f'{unit} {arrow}']
            for system in systems:
                if system in ROW_SYSTEMS[row]:
                    cells.append(cell_text(results, mode, row, system, unit))
                else:
                    cells.append('')
            if row in INFO_ROWS:
                lines.append('| ' + ' | '.join(cells + ['—'] * 4) + ' |')
                continue
            mine = results.median(mode, row, 'irsafs')
            peer, peer_value = best_peer(results, mode, row, better)
            cells.append(f'{peer} {fmt(peer_value, unit)}' if peer else '—')
            cells.append(ratio(mine, peer_value, better) or '—')
            limit = limit_for(row, mode)
            limit_value = results.median(mode, row, limit) if limit in systems else None
            if limit and limit_value is not None:
                cells.append(f'{column_label(limit, config)} {fmt(limit_value, unit)}')
                cells.append(ratio(mine, limit_value, better) or '—')
            else:
                cells += ['—', '—']
            lines.append('| ' + ' | '.join(cells) + ' |')
        lines.append('')
        lines.append(f'Requests that reached the server ({mode}; median per run, counted from '
                     'a reset just before the measured command; bytes = response bytes sent)')
        lines.append('')
        req_systems = [s for s in systems]
        lines.append('| # | Measure | ' + ' | '.join(column_label(s, config)
                                                  for s in req_systems) + ' |')
        lines.append('|---|---|' + '|'.join(['---'] * len(req_systems)) + '|')
        for row in REQUEST_ROWS:
            number, title, _, _ = specs[row]
            cells = [number, title]
            for system in req_systems:
                cell = results.data['modes'][mode].get('rows', {}).get(row, {}).get(system)
                if system not in ROW_SYSTEMS[row] or cell is None:
                    cells.append('')
                else:
                    cells.append(requests_text(median_requests(cell['requests'])))
            lines.append('| ' + ' | '.join(cells) + ' |')
    errors = results.data['errors']
    if errors:
        lines.append('')
        lines.append('## Failures')
        lines.append('')
        for error in errors:
            rows = ', '.join(error.get('rows', []))
            text = error['error'].replace('|', '\\|').replace('\n', ' ')
            lines.append(f'- {error["mode"]} · {error["system"]}'
                         + (f' · {rows}' if rows else '') + f': {text}')
    binary = meta.get('irsafs_binary')
    if binary:
        lines.append('')
        lines.append(f'irsafs: {meta["versions"]["irsafs"]}, binary {binary["source"]} built '
                     f'{binary["mtime"]}, sha256 {binary["sha256"][:16]}… (copied to '
                     f'{binary["copy"]} before the first run, so every row measures the same '
                     'one).')
    lines.append('')
    lines.append('Setup: ' + '; '.join(f'{k}: `{v}`' for k, v in meta['commands'].items()))
    lines.append('')
    return '\n'.join(lines)


CHART_ROWS = [('cold_seq', 'cold seq'), ('warm_seq', 'warm seq'), ('rand4k', 'rand 4K'),
              ('small_s', 'small files'), ('find', 'find'), ('ls', 'ls -l'),
              ('peak_rss', 'peak RSS'), ('idle_rss', 'idle RSS'), ('cpu', 'CPU/GiB')]


def render_chart(results, config, out_dir):
    """Two panels: irsafs's advantage over the best peer per row (>1: irsafs better), and the
    sequential read throughputs of every column."""
    gnuplot = shutil.which('gnuplot')
    if not gnuplot:
        log('gnuplot not installed: no chart')
        return None
    specs = row_specs(config)
    modes = [m for m in config['modes'] if m in results.data['modes']]
    adv = out_dir / 'chart-advantage.dat'
    with open(adv, 'w', encoding='utf-8') as file:
        file.write('# row ' + ' '.join(modes) + '\n')
        for row, label in CHART_ROWS:
            values = []
            for mode in modes:
                mine = results.median(mode, row, 'irsafs')
                _, peer = best_peer(results, mode, row, specs[row][3])
                if mine and peer:
                    values.append(mine / peer if specs[row][3] == 'higher' else peer / mine)
                else:
                    values.append(float('nan'))
            file.write(f'"{label}" ' + ' '.join(f'{v:.4g}' for v in values) + '\n')
    thr = out_dir / 'chart-throughput.dat'
    series = [(m, r) for m in modes for r in ('cold_seq', 'warm_seq')]
    systems = [s for s in ALL_SYSTEMS if s in config['systems']]
    with open(thr, 'w', encoding='utf-8') as file:
        file.write('# system ' + ' '.join(f'{m}-{r}' for m, r in series) + '\n')
        for system in systems:
            values = []
            for mode, row in series:
                value = results.median(mode, row, system)
                values.append(value if value else float('nan'))
            label = column_label(system, config).replace('×', 'x')
            file.write(f'"{label}" ' + ' '.join(f'{v:.4g}' for v in values) + '\n')
    png = out_dir / 'chart.png'
    names = {'raw': 'raw loopback', 'shaped': 'shaped S3-like'}
    adv_plots = ', '.join(
        f"'{adv}' using {i + 2}:xtic(1) title '{names[m]}'" for i, m in enumerate(modes))
    thr_plots = ', '.join(
        f"'{thr}' using {i + 2}:xtic(1) title '{names[m]}, {r.split('_')[0]}'"
        for i, (m, r) in enumerate(series))
    script = f"""
set terminal pngcairo size 1200,1000 font 'sans,10'
set output '{png}'
set datafile missing 'nan'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set key below horizontal
set grid ytics
set logscale y 10
set multiplot layout 2,1 title 'irsafs benchmark ({human_size(config["big_bytes"])} object, median of {config["runs"]} run(s))'
set title 'irsafs vs best of s3fs and rclone (>1: irsafs better; lower-is-better rows inverted)'
set ylabel 'advantage (x)'
set arrow 1 from graph 0, first 1 to graph 1, first 1 nohead lw 2 lc rgb 'black'
plot {adv_plots}
unset arrow 1
set title 'Sequential read throughput per column'
set ylabel 'MB/s'
plot {thr_plots}
unset multiplot
"""
    script_path = out_dir / 'chart.gp'
    script_path.write_text(script)
    proc = subprocess.run([gnuplot, str(script_path)], capture_output=True, text=True,
                          timeout=60, check=False)
    if proc.returncode != 0:
        log(f'gnuplot failed: {proc.stderr.strip()[-500:]}')
        return None
    return png


# ---------------------------------------------------------------------------------------------
# Main


def tool_version(args):
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=20, check=False)
        text = (proc.stdout or proc.stderr).strip().splitlines()
        return text[0] if text else '?'
    except (OSError, subprocess.TimeoutExpired):
        return 'not installed'


def build_config(argv):
    env = os.environ
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--quick', action='store_true',
                        help='1 run, 256 MiB object, 200 small files, 2,000 keys, fio 3 s')
    parser.add_argument('--publish', action='store_true',
                        help='copy table.md and chart.png to tests/bench/results/')
    parser.add_argument('--runs', type=int)
    parser.add_argument('--big-mb', type=int)
    parser.add_argument('--small-files', type=int)
    parser.add_argument('--dir-keys', type=int)
    parser.add_argument('--fio-seconds', type=int)
    parser.add_argument('--modes')
    parser.add_argument('--systems')
    parser.add_argument('--phases', help='comma-separated subset of ' + ','.join(PHASES))
    parser.add_argument('--out')
    parser.add_argument('--render', metavar='RESULTS_JSON',
                        help='only redo table.md and chart.png (in --out) from a results.json')
    args = parser.parse_args(argv)
    quick = args.quick

    def pick(cli, name, full, fast):
        if cli is not None:
            return cli
        if name in env and env[name] != '':
            return type(full)(env[name])
        return fast if quick else full

    config = {
        'runs': pick(args.runs, 'BENCH_RUNS', 3, 1),
        'big_bytes': pick(args.big_mb, 'BENCH_BIG_MB', 1024, 256) * MiB,
        'small_files': pick(args.small_files, 'BENCH_SMALL_FILES', 1000, 200),
        'dir_keys': pick(args.dir_keys, 'BENCH_DIR_KEYS', 20000, 2000),
        'fio_seconds': pick(args.fio_seconds, 'BENCH_FIO_SECONDS', 10, 3),
        'fio_jobs': 4,
        'connections': int(env.get('BENCH_CONNECTIONS') or 16),
        'first_byte_ms': float(env.get('BENCH_FIRST_BYTE_MS') or 20),
        'bandwidth_mbps': float(env.get('BENCH_BANDWIDTH_MBPS') or 100),
        'timeout': float(env.get('BENCH_TIMEOUT') or (120 if quick else 300)),
        'modes': (args.modes or env.get('BENCH_MODES') or ','.join(MODES)).split(','),
        'systems': (args.systems or env.get('BENCH_SYSTEMS') or ','.join(ALL_SYSTEMS)).split(','),
        'phases': (args.phases or env.get('BENCH_PHASES') or ','.join(PHASES)).split(','),
        'out': str(Path(args.out or env.get('BENCH_OUT') or REPO / 'build' / 'bench')
                   .resolve()),
        'irsafs_bin': os.path.abspath(env.get('IRSAFS_BIN') or REPO / 'build' / 'irsafs'),
        'memfs_bin': os.path.abspath(env.get('MEMFS_BIN')
                                     or REPO / 'build' / 'bench' / 'memfs'),
        'irsafs_args': (env.get('BENCH_IRSAFS_ARGS') or '').split(),
        'quick': quick,
        'publish': args.publish,
        'render': args.render,
    }
    for mode in config['modes']:
        if mode not in MODES:
            parser.error(f'unknown mode {mode!r} (raw, shaped)')
    for phase in config['phases']:
        if phase not in PHASES:
            parser.error(f'unknown phase {phase!r} ({", ".join(PHASES)})')
    for system in config['systems']:
        if system not in ALL_SYSTEMS:
            parser.error(f'unknown system {system!r} ({", ".join(ALL_SYSTEMS)})')
    if config['runs'] < 1 or config['big_bytes'] < MiB:
        parser.error('need at least 1 run and a 1 MiB object')
    return config


def snapshot_binary(config, out_dir):
    """Copy irsafs to OUT/bin/ and use the copy: the binary under build/ may be rebuilt
    while the benchmark runs, and every row must measure the same one. Returns the
    copy's description (path, sha256) or raises RuntimeError."""
    source = config['irsafs_bin']
    target = out_dir / 'bin' / 'irsafs'
    target.parent.mkdir(parents=True, exist_ok=True)
    last_error = None
    for _ in range(20):
        try:
            shutil.copy2(source, str(target) + '.tmp')
            os.replace(str(target) + '.tmp', target)
            check = subprocess.run([str(target), '--version'], capture_output=True, text=True,
                                   timeout=20, check=False)
            if check.returncode == 0:
                digest = hashlib.sha256(target.read_bytes()).hexdigest()
                config['irsafs_bin'] = str(target)
                return {'source': source, 'copy': str(target), 'sha256': digest,
                        'mtime': time.strftime('%Y-%m-%d %H:%M:%S',
                                               time.localtime(os.stat(source).st_mtime))}
            last_error = check.stderr.strip() or f'exit status {check.returncode}'
        except OSError as error:   # being relinked right now: try again shortly
            last_error = error
        time.sleep(0.5)
    raise RuntimeError(f'cannot snapshot {source}: {last_error}')


def publish(out_dir, png):
    published = REPO / 'tests' / 'bench' / 'results'
    published.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(out_dir / 'table.md', published / 'table.md')
    if png:
        shutil.copyfile(png, published / 'chart.png')
    log(f'published table.md{" and chart.png" if png else ""} to {published}')


def render_only(config):
    """Re-render table.md and chart.png from a results.json (no measurement)."""
    out_dir = Path(config['out'])
    out_dir.mkdir(parents=True, exist_ok=True)
    data = json.loads(Path(config['render']).read_text())
    saved = data['config']
    results = Results(saved)
    results.data = data
    table = render_table(results, saved)
    (out_dir / 'table.md').write_text(table)
    png = render_chart(results, saved, out_dir)
    if config['publish']:
        publish(out_dir, png)
    log(table)
    return 0


def main(argv=None):
    config = build_config(argv)
    if config['render']:
        return render_only(config)
    out_dir = Path(config['out'])
    (out_dir / 'logs').mkdir(parents=True, exist_ok=True)
    (out_dir / 'mnt').mkdir(parents=True, exist_ok=True)
    for stale in (out_dir / 'logs').glob('*.log'):
        stale.unlink()
    for stale in (out_dir / 'mnt').iterdir():
        if is_mounted(stale):
            unmount(stale)
        try:
            stale.rmdir()
        except OSError:
            pass
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(signum, _on_signal)

    results = Results(config)
    binary = None
    if 'irsafs' in config['systems'] and available('irsafs', config) is None:
        try:
            binary = snapshot_binary(config, out_dir)
        except RuntimeError as error:
            log(str(error))
            config['irsafs_bin'] = str(out_dir / 'bin' / 'missing-irsafs')
    systems = []
    for system in config['systems']:
        why = available(system, config)
        if why:
            log(f'skipping {system}: {why}')
            results.data['errors'].append({'mode': 'all', 'system': system, 'error': why})
        else:
            systems.append(system)
    with open('/proc/cpuinfo', encoding='utf-8') as file:
        model = next((line.split(':', 1)[1].strip() for line in file
                      if line.startswith('model name')), platform.machine())
    meta = {
        'started': time.strftime('%Y-%m-%d %H:%M:%S %Z'),
        'machine': f'{os.cpu_count()} CPUs ({model}), Linux {platform.release()}',
        'versions': {
            'irsafs': tool_version([config['irsafs_bin'], '--version']),
            's3fs': tool_version(['s3fs', '--version']),
            'rclone': tool_version(['rclone', 'version']),
            'fio': tool_version(['fio', '--version']),
            'curl': tool_version(['curl', '--version']),
            'python': sys.version.split()[0],
        },
    }
    meta['irsafs_binary'] = binary
    results.data['meta'] = meta
    log(f'irsafs benchmark: {meta["machine"]}; runs {config["runs"]}, object '
        f'{human_size(config["big_bytes"])}, {config["small_files"]} small files, '
        f'{config["dir_keys"]} keys; modes {",".join(config["modes"])}; systems '
        f'{",".join(systems)}; output {out_dir}')
    started = time.monotonic()
    interrupted = None
    try:
        for mode in config['modes']:
            try:
                run_mode(results, mode, config, out_dir, systems)
            except (RuntimeError, OSError, s3server.http.client.HTTPException) as error:
                traceback.print_exc()
                results.data['errors'].append({'mode': mode, 'system': 'server',
                                               'error': f'{type(error).__name__}: {error}'})
    except (Interrupted, KeyboardInterrupt) as error:
        interrupted = str(error) or 'interrupted'
        log(f'\n{interrupted}: cleaning up')
    finally:
        REAPER.cleanup()
    meta['finished'] = time.strftime('%Y-%m-%d %H:%M')
    meta['duration_s'] = time.monotonic() - started
    meta['interrupted'] = interrupted
    meta['commands'] = {
        'irsafs': f'irsafs -f --endpoint-url http://127.0.0.1:PORT '
                  f'{" ".join(config["irsafs_args"])}{" " if config["irsafs_args"] else ""}'
                  f'bench MNT (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)',
        's3fs': 's3fs bench MNT -f -o url=http://127.0.0.1:PORT,use_path_request_style,'
                'passwd_file=F,ro,listobjectsv2,endpoint=us-east-1,sigv4',
        'rclone': 'rclone mount bench:bench MNT --read-only --vfs-cache-mode off '
                  '--use-server-modtime (s3 remote from RCLONE_CONFIG_BENCH_*: provider Other, '
                  'force_path_style, list_version 2)',
        'memfs': f'memfs -s {config["big_bytes"]} MNT',
        'read': 'dd if=FILE of=/dev/null bs=1M',
        'fio': f'fio --rw=randread --bs=4k --numjobs={config["fio_jobs"]} --ioengine=psync '
               f'--runtime={config["fio_seconds"]} --time_based --readonly --invalidate=1',
        'small files': 'find DIR -type f -print0 | xargs -0 -P8 -n25 cat > /dev/null',
        'find / ls': 'find DIR | wc -l; ls -l DIR | wc -l',
    }
    results.finalize()
    json_path = out_dir / 'results.json'
    json_path.write_text(json.dumps(results.data, indent=1, default=str))
    table = render_table(results, config)
    (out_dir / 'table.md').write_text(table)
    png = render_chart(results, config, out_dir)
    if config['publish'] and not interrupted:
        publish(out_dir, png)
    log('\n' + table)
    log(f'results: {json_path}, {out_dir / "table.md"}' + (f', {png}' if png else ''))
    timings = results.data['timings']
    for mode, timing in timings.items():
        log(f'{mode}: ' + ', '.join(f'{k} {v:.0f} s' for k, v in timing.items()))
    log(f'total {meta["duration_s"]:.0f} s')
    return 130 if interrupted else 0


if __name__ == '__main__':
    sys.exit(main())
