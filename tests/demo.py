#!/usr/bin/python3
"""`make demo`: start a local S3 endpoint with a sample bucket, mount it with irsafs, show it.

    demo.py start IRSAFS_BIN   start the server, fill the bucket, mount, print a tour
    demo.py stop               unmount and stop the server (what `make demo-stop` runs)

Everything lives under build/demo/: the mount point mnt/, the server's pid and port, and the
daemon's log. The mount and the server stay up after `start` so the mount can be explored.
"""

import json
import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import s3server  # noqa: E402

ROOT = os.path.dirname(HERE)
DEMO = os.path.join(ROOT, 'build', 'demo')
MNT = os.path.join(DEMO, 'mnt')
PIDFILE = os.path.join(DEMO, 'server.pid')
PORTFILE = os.path.join(DEMO, 'server.port')
BUCKET = 'irsafs-demo'
AKID, SECRET = 'AKIDDEMO', 'demo-secret-not-for-real-use'


def sample_objects():
    """A small bucket that shows what irsafs does with real-world keys."""
    readme = ('Hello from S3!\n\nThis file is an object in the bucket "irsafs-demo", served by\n'
              'a local S3 endpoint and read through an irsafs FUSE mount.\n')
    items = [
        {'key': 'README.txt', 'data': readme.encode()},
        {'key': 'models/resnet50/weights.bin', 'size': 48 << 20, 'seed': 'weights'},
        {'key': 'models/resnet50/config.json',
         'data': json.dumps({'layers': 50, 'classes': 1000}, indent=2).encode() + b'\n'},
        {'key': 'datasets/2026/11/part-0000.csv', 'data': b'id,label\n1,cat\n2,dog\n'},
        {'key': 'datasets/2026/11/part-0001.csv', 'data': b'id,label\n3,bird\n'},
        {'key': 'reports/Q3 summary (final).txt', 'data': b'Names with spaces work.\n'},
        {'key': 'reports/caf\u00e9 men\u00fc \U0001f370.txt', 'data': b'So does unicode.\n'},
        {'key': 'empty-dir/', 'data': b''},
    ]
    items += [{'key': f'logs/day-{i:03d}.log', 'size': 1000 + i, 'seed': f'log{i}'}
              for i in range(120)]
    return items


def mounted(path):
    with open('/proc/mounts', encoding='utf-8') as mounts:
        return any(line.split()[1] == path for line in mounts)


def stop():
    if mounted(MNT):
        subprocess.run(['fusermount3', '-u', MNT], check=False)
        print(f'unmounted {MNT}')
    if os.path.exists(PIDFILE):
        with open(PIDFILE, encoding='utf-8') as f:
            pid = int(f.read())
        try:
            os.kill(pid, signal.SIGTERM)
            print(f'stopped the local S3 server (pid {pid})')
        except ProcessLookupError:
            pass
        os.unlink(PIDFILE)


def start_server():
    for path in (PORTFILE,):
        if os.path.exists(path):
            os.unlink(path)
    log = open(os.path.join(DEMO, 'server.log'), 'wb')
    proc = subprocess.Popen(
        [sys.executable, os.path.join(HERE, 's3server.py'), '--bucket', BUCKET,
         '--credentials', f'{AKID}:{SECRET}', '--port-file', PORTFILE],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
        start_new_session=True)
    with open(PIDFILE, 'w', encoding='utf-8') as f:
        f.write(str(proc.pid))
    deadline = time.monotonic() + 15
    while not os.path.exists(PORTFILE):
        if proc.poll() is not None or time.monotonic() > deadline:
            sys.exit('demo: the local S3 server did not start; see build/demo/server.log')
        time.sleep(0.05)
    with open(PORTFILE, encoding='utf-8') as f:
        return json.load(f)['port']


def tree(path, indent=''):
    entries = sorted(os.scandir(path), key=lambda e: e.name)
    for i, entry in enumerate(entries):
        last = i == len(entries) - 1
        branch = '`-- ' if last else '|-- '
        if entry.is_dir():
            print(f'{indent}{branch}{entry.name}/')
            children = os.listdir(entry.path)
            if len(children) > 6:
                print(f'{indent}{"    " if last else "|   "}`-- ({len(children)} files)')
            else:
                tree(entry.path, indent + ('    ' if last else '|   '))
        else:
            print(f'{indent}{branch}{entry.name}  ({entry.stat().st_size:,} bytes)')


def start(binary):
    os.makedirs(MNT, exist_ok=True)
    stop()
    port = start_server()
    control = s3server.Control(port)
    control.bulk(BUCKET, sample_objects())
    endpoint = f'http://127.0.0.1:{port}'
    env = {k: v for k, v in os.environ.items() if not k.startswith('AWS_')}
    env.update(AWS_ACCESS_KEY_ID=AKID, AWS_SECRET_ACCESS_KEY=SECRET, AWS_REGION='us-east-1')
    cmd = [binary, '--endpoint-url', endpoint, BUCKET, MNT]
    print(f'$ irsafs --endpoint-url {endpoint} {BUCKET} {MNT}')
    result = subprocess.run(cmd, env=env, check=False)
    if result.returncode != 0:
        stop()
        sys.exit(f'demo: irsafs failed with status {result.returncode}')
    print(f'\n$ tree {MNT}')
    tree(MNT)
    readme = os.path.join(MNT, 'README.txt')
    print(f'\n$ cat {readme}')
    with open(readme, encoding='utf-8') as f:
        print(f.read(), end='')
    weights = os.path.join(MNT, 'models/resnet50/weights.bin')
    start_time = time.monotonic()
    with open(weights, 'rb') as f:
        data = f.read()
    elapsed = time.monotonic() - start_time
    same = data == s3server.make_data(48 << 20, 'weights')
    print(f'\n$ cp {weights} /dev/null')
    print(f'read {len(data) >> 20} MiB in {elapsed:.2f} s; '
          f'{"byte-identical to the object" if same else "CONTENT DIFFERS"}')
    stats = control.stats()['requests']
    print(f'\nrequests the server saw: {json.dumps(stats)}')
    print(f'\nThe bucket stays mounted at {MNT}: try ls, cat, cp.')
    print('When done:  make demo-stop   (or: fusermount3 -u build/demo/mnt)')
    if not same:
        sys.exit(1)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == 'start':
        start(sys.argv[2])
    elif len(sys.argv) == 2 and sys.argv[1] == 'stop':
        stop()
    else:
        sys.exit('usage: demo.py start IRSAFS_BIN | demo.py stop')


if __name__ == '__main__':
    main()
