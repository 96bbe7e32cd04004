"""The deployment material under packaging/: the IAM policies render.sh writes, the Kubernetes
manifests, the Dockerfile, the systemd mount unit and the man page.

Most checks read the files; where a file holds something that runs, it is run here the way
its user would run it:
  * render.sh with good and bad inputs (its JSON is parsed and compared field by field);
  * the manifests' sidecar command, args and probes, in a simulated pod volume (a directory
    bind-mounted onto itself, as kubelet does), against the local S3 server: the probe is false
    before the mount and true after it, a SIGKILLed irsafs is replaced by a fresh mount, and
    SIGTERM leaves nothing mounted;
  * the apps' shell scripts (the legacy one waits for the mount; both stop on SIGTERM);
  * the manifest's args through the real option parser of the binary;
  * the systemd unit's options through the mount helper;
  * the build stage's COPY list, built with `make CI=1` on its own;
  * the man page through groff and man, checked against `irsafs --help` and the C sources.

Needs python3-yaml (Debian) for the manifest checks; the tests that mount need root and
/dev/fuse, like the rest of this directory.

Run: cd /work/main && make && IRSAFS_BIN=$PWD/build/irsafs /usr/bin/python3 -m pytest -q \
         tests/integration/test_packaging.py
"""

import configparser
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import (BIN, HANG_GUARD, REPO, irsafs_env, irsafs_pids, is_mounted, mount_table,
                      process_alive, require_binary, start, unmount, wait_for)
import s3server

try:
    import yaml
except ImportError:  # reported by the `manifests` fixture, so that the other checks still run
    yaml = None

PACKAGING = REPO / 'packaging'
RENDER = PACKAGING / 'iam' / 'render.sh'
K8S = PACKAGING / 'k8s'
DEPLOYMENTS = ['deployment.yaml', 'deployment-legacy.yaml']
NATIVE = 'deployment.yaml'
DOCKERFILE = PACKAGING / 'Dockerfile'
MAN_PAGE = PACKAGING / 'irsafs.8'
UNIT = PACKAGING / 'systemd' / 'mnt-s3.mount'
HELPER = PACKAGING / 'mount.irsafs'
IMAGE_BINARY = '/usr/local/bin/irsafs'   # where the Dockerfile puts the binary
SHELL = shutil.which('dash') or '/bin/sh'  # POSIX sh, as in Debian's /bin/sh
MIB = 1 << 20

needs_root_and_fuse = pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.exists('/dev/fuse'),
    reason='mounting needs root and /dev/fuse')


def run(cmd, **kwargs):
    kwargs.setdefault('timeout', HANG_GUARD)
    return subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)


# ---------------------------------------------------------------------------------------------
# What `irsafs --help` says: option names, and which ones take a value


def help_options():
    """{option: takes_value} for every option in the left column of `irsafs --help`."""
    require_binary()
    result = run([BIN, '--help'])
    assert result.returncode == 0, result.stderr
    options = {}
    for line in result.stdout.splitlines():
        if not re.match(r'  -', line):
            continue
        column = re.split(r'\s{2,}', line.strip())[0]   # e.g. "--uid N, --gid N"
        for part in column.split(','):
            words = part.split()
            if words and re.fullmatch(r'--?[A-Za-z][\w-]*', words[0]):
                options[words[0]] = len(words) > 1
    assert '--prefix' in options and '-f' in options, result.stdout
    return options


# ---------------------------------------------------------------------------------------------
# (a) render.sh

ACCOUNT = '111122223333'
ISSUER = 'oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE'


def render(*args, out=None, shell=(SHELL,)):
    cmd = [*shell, str(RENDER), *args]
    if out is not None:
        cmd += ['--out', str(out)]
    return run(cmd)


def base_args(**over):
    values = {'account': ACCOUNT, 'issuer': ISSUER, 'namespace': 'my-namespace',
              'service-account': 'my-app', 'bucket': 'my-bucket'}
    values.update(over)
    args = []
    for name, value in values.items():
        if value is not None:
            args += [f'--{name}', value]
    return args


def expected_trust(issuer, namespace, service_account):
    return {
        'Version': '2012-10-17',
        'Statement': [{
            'Effect': 'Allow',
            'Principal': {'Federated': f'arn:aws:iam::{ACCOUNT}:oidc-provider/{issuer}'},
            'Action': 'sts:AssumeRoleWithWebIdentity',
            'Condition': {'StringEquals': {
                f'{issuer}:sub': f'system:serviceaccount:{namespace}:{service_account}',
                f'{issuer}:aud': 'sts.amazonaws.com'}},
        }],
    }


def check_permissions(policy, bucket, prefix):
    """Read-only: ListBucket on the bucket (limited to the prefix when there is one) and
    GetObject under the prefix; nothing else."""
    assert policy['Version'] == '2012-10-17'
    statements = policy['Statement']
    assert len(statements) == 2, statements
    for statement in statements:
        assert statement['Effect'] == 'Allow'
        assert set(statement) <= {'Sid', 'Effect', 'Action', 'Resource', 'Condition'}, statement
    by_action = {s['Action']: s for s in statements}
    assert set(by_action) == {'s3:ListBucket', 's3:GetObject'}, statements
    listing, reading = by_action['s3:ListBucket'], by_action['s3:GetObject']
    assert listing['Resource'] == f'arn:aws:s3:::{bucket}'
    if prefix:
        assert listing['Condition'] == {'StringLike': {'s3:prefix': [prefix, prefix + '*']}}
    else:
        assert 'Condition' not in listing
    assert reading['Resource'] == f'arn:aws:s3:::{bucket}/{prefix}*'
    assert 'Condition' not in reading


RENDER_CASES = [
    # (what the user gives, what IAM must get)
    pytest.param({}, (ISSUER, 'my-namespace', 'my-app', 'my-bucket', ''), id='whole-bucket'),
    pytest.param({'prefix': 'data/'}, (ISSUER, 'my-namespace', 'my-app', 'my-bucket', 'data/'),
                 id='prefix'),
    pytest.param({'issuer': f'https://{ISSUER}', 'prefix': 'datasets/2026/11/'},
                 (ISSUER, 'my-namespace', 'my-app', 'my-bucket', 'datasets/2026/11/'),
                 id='https-issuer'),
    pytest.param({'issuer': f'https://{ISSUER}/', 'namespace': 'team-a',
                  'service-account': 'reader.v2', 'bucket': 'logs.example-1',
                  'prefix': "year=2026/it's (raw)/"},
                 (ISSUER, 'team-a', 'reader.v2', 'logs.example-1', "year=2026/it's (raw)/"),
                 id='dots-and-odd-prefix'),
]


@pytest.mark.parametrize('given, want', RENDER_CASES)
def test_render_writes_the_two_policies(given, want, tmp_path):
    issuer, namespace, service_account, bucket, prefix = want
    result = render(*base_args(**given), out=tmp_path / 'out')
    assert result.returncode == 0, result.stderr
    assert result.stderr == ''
    files = sorted(p.name for p in (tmp_path / 'out').iterdir())
    assert files == ['permissions-policy.json', 'trust-policy.json']
    trust = json.loads((tmp_path / 'out' / 'trust-policy.json').read_text())
    assert trust == expected_trust(issuer, namespace, service_account)
    permissions = json.loads((tmp_path / 'out' / 'permissions-policy.json').read_text())
    check_permissions(permissions, bucket, prefix)


@pytest.mark.parametrize('given, want', RENDER_CASES[:3])
def test_render_prints_the_same_policies(given, want, tmp_path):
    issuer, namespace, service_account, bucket, prefix = want
    # --print: one JSON document on stdout.
    trust = render(*base_args(**given), '--print', 'trust')
    permissions = render(*base_args(**given), '--print', 'permissions')
    assert trust.returncode == 0 and permissions.returncode == 0, (trust.stderr,
                                                                   permissions.stderr)
    assert json.loads(trust.stdout) == expected_trust(issuer, namespace, service_account)
    check_permissions(json.loads(permissions.stdout), bucket, prefix)
    # Neither --out nor --print: both, each after a '# FILE' line.
    both = render(*base_args(**given))
    assert both.returncode == 0, both.stderr
    parts = re.split(r'^# (\S+)\n', both.stdout, flags=re.M)
    assert parts[0] == '' and parts[1::2] == ['trust-policy.json', 'permissions-policy.json']
    assert json.loads(parts[2]) == json.loads(trust.stdout)
    assert json.loads(parts[4]) == json.loads(permissions.stdout)


BAD_INPUTS = [
    # (overrides of the good arguments, extra arguments, words the error must contain)
    ({'account': '12345'}, [], ['--account', '12-digit']),
    ({'account': '1111222233334'}, [], ['--account', '12-digit']),
    ({'account': '11112222333x'}, [], ['--account', '12-digit']),
    ({'account': None}, [], ['missing --account']),
    ({'issuer': None}, [], ['missing --issuer']),
    ({'namespace': None}, [], ['missing --namespace']),
    ({'service-account': None}, [], ['missing --service-account']),
    ({'bucket': None}, [], ['missing --bucket']),
    ({'issuer': 'http://' + ISSUER}, [], ['--issuer', 'https://']),
    ({'issuer': 'https://'}, [], ['--issuer', 'empty']),
    ({'issuer': 'oidc.eks.eu-west-1.amazonaws.com/id/"x'}, [], ['--issuer']),
    ({'issuer': 'localhost/id/x'}, [], ['--issuer', 'host name']),
    ({'namespace': 'My-Namespace'}, [], ['--namespace', 'lower-case']),
    ({'namespace': 'team.a'}, [], ['--namespace']),
    ({'namespace': '-team'}, [], ['--namespace', 'start and end']),
    ({'namespace': 'n' * 64}, [], ['--namespace', 'longer than 63']),
    ({'service-account': 'my_app'}, [], ['--service-account', 'lower-case']),
    ({'service-account': 'app-'}, [], ['--service-account', 'start and end']),
    ({'service-account': 'a..b'}, [], ['--service-account']),
    ({'bucket': 'My-Bucket'}, [], ['--bucket', 'lower-case']),
    ({'bucket': 'my_bucket'}, [], ['--bucket', 'lower-case']),
    ({'bucket': 'ab'}, [], ['--bucket', '3 to 63']),
    ({'bucket': 'b' * 64}, [], ['--bucket', '3 to 63']),
    ({'bucket': '-bucket'}, [], ['--bucket', 'starts and ends']),
    ({'bucket': 'bucket.'}, [], ['--bucket', 'starts and ends']),
    ({'bucket': 'my..bucket'}, [], ['--bucket', 'adjacent periods']),
    ({'bucket': '192.168.5.4'}, [], ['--bucket', 'IP address']),
    ({'bucket': 'xn--bucket'}, [], ['--bucket', 'prefix S3 reserves']),
    ({'bucket': 'bucket-s3alias'}, [], ['--bucket', 'suffix S3 reserves']),
    ({}, ['--prefix', 'data'], ['--prefix', "end with '/'"]),
    ({}, ['--prefix', '/data/'], ['--prefix', "starts with '/'"]),
    ({}, ['--prefix', 'da*ta/'], ['--prefix', "'*'"]),
    ({}, ['--prefix', 'da?ta/'], ['--prefix', "'?'"]),
    ({}, ['--prefix', 'a${aws:username}/'], ['--prefix', '$']),
    ({}, ['--prefix', 'say "hi"/'], ['--prefix', '"']),
    ({}, ['--prefix', 'back\\slash/'], ['--prefix', '\\']),
    ({}, ['--prefix', 'new\nline/'], ['--prefix']),
    ({}, ['--prefix', 'p' * 1024 + '/'], ['--prefix', '1024']),
    ({}, ['--print', 'both'], ['--print']),
    ({}, ['--print', 'trust', '--out', '/tmp/x'], ['--out or --print']),
    ({}, ['--frobnicate'], ['unknown', '--frobnicate']),
    ({}, ['--prefix'], ['--prefix needs a value']),
]


@pytest.mark.parametrize('over, extra, words', BAD_INPUTS,
                         ids=[f'bad{i}' for i in range(len(BAD_INPUTS))])
def test_render_rejects_bad_input(over, extra, words, tmp_path):
    out = tmp_path / 'out'
    if '--print' in extra or '--out' in extra:
        result = render(*base_args(**over), *extra)
    else:
        result = render(*base_args(**over), '--out', str(out), *extra)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stdout == ''
    lines = result.stderr.strip().split('\n')
    assert lines[0].startswith('render.sh: '), result.stderr
    for word in words:
        assert word in result.stderr, (word, result.stderr)
    assert not out.exists(), 'a bad input must write nothing'


def test_render_help_and_shell_portability():
    result = render('--help')
    assert result.returncode == 0 and 'usage: render.sh' in result.stdout
    for option in ('--account', '--issuer', '--namespace', '--service-account', '--bucket',
                   '--prefix', '--out', '--print'):
        assert option in result.stdout
    # POSIX sh only: the same output under dash and under bash --posix.
    args = base_args() + ['--prefix', 'data/']
    shells = [[SHELL]] + ([[shutil.which('bash'), '--posix']] if shutil.which('bash') else [])
    outputs = [render(*args, shell=shell) for shell in shells]
    assert all(o.returncode == 0 for o in outputs), [o.stderr for o in outputs]
    assert len({o.stdout for o in outputs}) == 1
    text = RENDER.read_text()
    assert text.startswith('#!/bin/sh\n')
    code = [line for line in text.splitlines() if not line.lstrip().startswith('#')]
    assert not [line for line in code if re.search(r'\b(python3?|jq|bash)\b', line)], \
        'render.sh must need nothing but POSIX sh, sed and tr'
    if shutil.which('shellcheck'):
        check = run(['shellcheck', '-s', 'sh', str(RENDER)])
        assert check.returncode == 0, check.stdout


# ---------------------------------------------------------------------------------------------
# (b) Kubernetes manifests: structure


@pytest.fixture(scope='module')
def manifests():
    """{file name: [documents]} for every YAML file under packaging/k8s."""
    if yaml is None:
        pytest.fail('python3-yaml is missing: apt-get install python3-yaml')
    docs = {}
    for path in sorted(K8S.glob('*.yaml')):
        docs[path.name] = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert set(DEPLOYMENTS) | {'serviceaccount.yaml'} <= set(docs), sorted(docs)
    return docs


def only(docs, kind):
    found = [d for d in docs if d['kind'] == kind]
    assert len(found) == 1, [d['kind'] for d in docs]
    return found[0]


def pod_spec(deployment):
    return deployment['spec']['template']['spec']


def all_containers(spec):
    return [('init', c) for c in spec.get('initContainers', [])] + \
        [('main', c) for c in spec.get('containers', [])]


def irsafs_container(spec):
    found = [(where, c) for where, c in all_containers(spec) if 'irsafs' in c['image']]
    assert len(found) == 1, 'exactly one irsafs container'
    return found[0]


def app_containers(spec):
    return [c for _, c in all_containers(spec) if 'irsafs' not in c['image']]


def propagated_mount(container, mode):
    mounts = [m for m in container.get('volumeMounts', []) if m.get('mountPropagation') == mode]
    assert len(mounts) == 1, (container['name'], mode, container.get('volumeMounts'))
    return mounts[0]


def parse_size(text):
    """irsafs's --cache-size syntax: a number with an optional K, M, G or T (binary)."""
    match = re.fullmatch(r'(\d+)(?:([KMGT])(?:i?B)?)?', text, re.I)
    assert match, text
    return int(match[1]) << (10 * ' KMGT'.index(match[2].upper()) if match[2] else 0)


def parse_quantity(text):
    """A Kubernetes quantity (memory or CPU) as a number of bytes or cores."""
    text = str(text)
    units = {'Ki': 2 ** 10, 'Mi': 2 ** 20, 'Gi': 2 ** 30, 'Ti': 2 ** 40, 'k': 1e3, 'M': 1e6,
             'G': 1e9, 'T': 1e12, 'm': 1e-3, '': 1}
    match = re.fullmatch(r'(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T|m|)', text)
    assert match, f'not a quantity: {text}'
    return float(match[1]) * units[match[2]]


def irsafs_settings(args, takes_value):
    """The options (name -> value or True, -o entries included) and the positionals of an
    irsafs argument list, by the rules of `irsafs --help`."""
    options, positionals, i = {}, [], 0
    while i < len(args):
        arg = args[i]
        if arg == '-o':
            for item in args[i + 1].split(','):
                name, _, value = item.partition('=')
                options['--' + name.replace('_', '-')] = value or True
            i += 2
        elif arg.startswith('-'):
            name, eq, value = arg.partition('=')
            assert name in takes_value, f'irsafs has no option {name}'
            if takes_value[name] and not eq:
                value = args[i + 1]
                i += 1
            options[name] = value if takes_value[name] else True
            i += 1
        else:
            positionals.append(arg)
            i += 1
    return options, positionals


def test_every_manifest_has_the_basic_fields(manifests):
    for name, docs in manifests.items():
        for doc in docs:
            assert isinstance(doc, dict), name
            assert doc.get('apiVersion') and doc.get('kind'), name
            metadata = doc.get('metadata') or {}
            assert re.fullmatch(r'[a-z0-9]([-a-z0-9.]*[a-z0-9])?', metadata.get('name', '')), name
            assert re.fullmatch(r'[a-z0-9]([-a-z0-9]*[a-z0-9])?', metadata.get('namespace', '')), \
                name
            assert (doc['apiVersion'], doc['kind']) in {('v1', 'ServiceAccount'),
                                                        ('apps/v1', 'Deployment')}, name


def test_service_account_carries_the_role(manifests):
    sa = only(manifests['serviceaccount.yaml'], 'ServiceAccount')
    arn = sa['metadata']['annotations']['eks.amazonaws.com/role-arn']
    assert re.fullmatch(r'arn:aws:iam::\d{12}:role/[\w+=,.@/-]+', arn), arn


@pytest.mark.parametrize('name', DEPLOYMENTS)
def test_deployment_structure(manifests, name):
    deployment = only(manifests[name], 'Deployment')
    sa = only(manifests['serviceaccount.yaml'], 'ServiceAccount')
    spec = pod_spec(deployment)
    # The selector picks the pods of the template.
    selector = deployment['spec']['selector']['matchLabels']
    labels = deployment['spec']['template']['metadata']['labels']
    assert selector and all(labels.get(k) == v for k, v in selector.items()), (selector, labels)
    # The pods run as the annotated service account, in its namespace.
    assert spec['serviceAccountName'] == sa['metadata']['name']
    assert deployment['metadata']['namespace'] == sa['metadata']['namespace']
    assert 10 <= spec['terminationGracePeriodSeconds'] <= 120
    # Containers: named, with an image, names unique, mounts of declared volumes.
    volumes = {v['name']: v for v in spec['volumes']}
    names = [c['name'] for _, c in all_containers(spec)]
    assert len(names) == len(set(names)) and all(names)
    for _, container in all_containers(spec):
        assert container.get('image'), container['name']
        for mount in container.get('volumeMounts', []):
            assert mount['name'] in volumes, mount
            assert mount.get('mountPropagation', 'None') in ('None', 'HostToContainer',
                                                             'Bidirectional'), mount
        # The IRSA variables come from the EKS webhook, never from the manifest.
        env = {e['name'] for e in container.get('env', [])}
        assert not env & {'AWS_ROLE_ARN', 'AWS_WEB_IDENTITY_TOKEN_FILE',
                          'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY'}, container['name']
        resources = container.get('resources', {})
        for resource, limit in resources.get('limits', {}).items():
            request = resources.get('requests', {}).get(resource)
            if request is not None:
                assert parse_quantity(request) <= parse_quantity(limit), (container['name'],
                                                                          resource)


@pytest.mark.parametrize('name', DEPLOYMENTS)
def test_irsafs_sidecar(manifests, name):
    spec = pod_spec(only(manifests[name], 'Deployment'))
    where, side = irsafs_container(spec)
    takes_value = help_options()
    options, positionals = irsafs_settings(side['args'], takes_value)
    assert len(positionals) == 2, side['args']
    mountpoint = positionals[1]
    # Foreground (a daemon would end the container); every option known to the binary.
    assert options.get('-f') or options.get('--foreground')
    # A native sidecar in deployment.yaml, an ordinary container in the legacy one.
    if name == NATIVE:
        assert where == 'init' and side['restartPolicy'] == 'Always'
        assert 'lifecycle' not in side, 'SIGTERM is enough for a native sidecar'
    else:
        assert where == 'main' and 'restartPolicy' not in side
        assert side['lifecycle']['preStop']['exec']['command'][0] == 'sleep'
    # Privileged, with the volume mounted Bidirectional, and the bucket mounted on a
    # subdirectory of it (the volume's own mount point is already a mount).
    assert side['securityContext']['privileged'] is True
    volume = propagated_mount(side, 'Bidirectional')
    assert spec_volume(spec, volume['name']).get('emptyDir') is not None
    assert os.path.dirname(mountpoint.rstrip('/')) == volume['mountPath'].rstrip('/'), \
        (mountpoint, volume['mountPath'])
    # The startup probe checks the mount itself; liveness runs through the FUSE daemon.
    assert side['startupProbe']['exec']['command'] == ['mountpoint', '-q', mountpoint]
    assert side['startupProbe']['periodSeconds'] * side['startupProbe']['failureThreshold'] \
        >= 60
    assert mountpoint in side['livenessProbe']['exec']['command']
    # Memory: the cache given in args plus 64 MiB at least, requested and allowed.
    cache = parse_size(str(options.get('--cache-size', '256M')))
    memory = side['resources']
    assert parse_quantity(memory['requests']['memory']) >= cache + 64 * MIB
    assert parse_quantity(memory['limits']['memory']) >= cache + 64 * MIB
    # The wrapper execs the image's binary with the args.
    assert side['command'][:2] == ['/bin/sh', '-c']
    assert f'exec {IMAGE_BINARY} "$@"' in side['command'][2]


def spec_volume(spec, name):
    return next(v for v in spec['volumes'] if v['name'] == name)


@pytest.mark.parametrize('name', DEPLOYMENTS)
def test_app_container_sees_the_mount(manifests, name):
    spec = pod_spec(only(manifests[name], 'Deployment'))
    _, side = irsafs_container(spec)
    volume = propagated_mount(side, 'Bidirectional')
    mountpoint = side['args'][-1]
    apps = app_containers(spec)
    assert apps, 'an application container'
    for app in apps:
        mount = propagated_mount(app, 'HostToContainer')
        assert mount['name'] == volume['name']
        # Same path as in the sidecar, so /mnt/s3 means the same in both.
        assert mount['mountPath'] == volume['mountPath']
        assert not (app.get('securityContext') or {}).get('privileged')
        script = app['command'][-1]
        assert mountpoint in script
        assert re.search(r"trap '[^']*exit 0' TERM", script), 'the app must stop on SIGTERM'
        if name != NATIVE:
            assert f'until mountpoint -q {mountpoint}' in script


@pytest.mark.parametrize('name', DEPLOYMENTS)
def test_manifest_args_pass_the_real_option_parser(manifests, name, tmp_path):
    """The sidecar's args, given to the binary with a mount point that does not exist: the
    options must all be accepted (status 2 would be a usage error), and irsafs must stop at
    the mount point, before any network access."""
    _, side = irsafs_container(pod_spec(only(manifests[name], 'Deployment')))
    missing = tmp_path / 'no-such-dir'
    args = side['args'][:-1] + [str(missing)]
    result = run([BIN, *args], env=irsafs_env())
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip() == f"irsafs: mount point '{missing}' does not exist"


# ---------------------------------------------------------------------------------------------
# (b) Kubernetes manifests: the sidecar command, args and probes, run in a simulated pod volume


def substitute(command, old, new):
    return [part.replace(old, new) for part in command]


def pod_server_for(args, takes_value):
    """A local S3 server in the manifest's region with its bucket: one object under the
    manifest's prefix, one outside it."""
    options, positionals = irsafs_settings(args, takes_value)
    bucket, prefix = positionals[0], options.get('--prefix', '')
    server = start(['--region', options.get('--region', 'us-east-1'), '--bucket', bucket])
    server.control.put(bucket, f'{prefix}hello.txt', b'hello from the pod\n')
    server.control.put(bucket, 'outside-the-prefix.txt', b'not mounted\n')
    return server, bucket


class PodVolume:
    """A directory bind-mounted onto itself, as kubelet mounts an emptyDir into a container;
    everything mounted below it is taken down at the end."""

    def __init__(self, path):
        self.path = path
        path.mkdir()
        result = run(['mount', '--bind', str(path), str(path)])
        assert result.returncode == 0, result.stderr

    def close(self):
        base = os.fsencode(str(self.path))
        for _ in range(5):
            below = [row[0] for row in mount_table()
                     if row[0].startswith(base + b'/') and row[1].startswith('fuse')]
            if not below:
                break
            for path in below:
                unmount(os.fsdecode(path))
        run(['umount', '-l', str(self.path)])


def probe(command):
    return run(command, timeout=HANG_GUARD).returncode


@needs_root_and_fuse
@pytest.mark.parametrize('name', DEPLOYMENTS)
def test_sidecar_in_a_simulated_pod(manifests, name, tmp_path):
    spec = pod_spec(only(manifests[name], 'Deployment'))
    _, side = irsafs_container(spec)
    takes_value = help_options()
    mountpoint = side['args'][-1]
    volume_path = propagated_mount(side, 'Bidirectional')['mountPath']
    server, bucket = pod_server_for(side['args'], takes_value)
    volume = PodVolume(tmp_path / 'volume')
    local = str(volume.path / os.path.relpath(mountpoint, volume_path))
    # The sidecar as the pod runs it (the image's binary replaced by the one under test),
    # pointed at the local server.
    command = substitute(side['command'], IMAGE_BINARY, BIN)
    args = side['args'][:-2] + ['--endpoint-url', server.endpoint, bucket, local]
    startup = substitute(side['startupProbe']['exec']['command'], mountpoint, local)
    liveness = substitute(side['livenessProbe']['exec']['command'], mountpoint, local)
    procs = []
    # O_APPEND: the sidecars write at the end whatever the offset; reads use their own handle.
    log_path = tmp_path / 'sidecar.log'
    log = open(log_path, 'ab')  # pylint: disable=consider-using-with

    def logged():
        return log_path.read_text(errors='replace')

    def fuse_mounts():
        return [row for row in mount_table() if row[0] == os.fsencode(local)]

    def serving():
        """One FUSE mount there, and irsafs answering statfs on it."""
        return len(fuse_mounts()) == 1 and probe(liveness) == 0 and probe(startup) == 0

    def start_sidecar():
        proc = subprocess.Popen([*command, *args], env=irsafs_env(), stdin=subprocess.DEVNULL,
                                stdout=log, stderr=log)
        procs.append(proc)
        done = wait_for(lambda: serving() or proc.poll() is not None)
        assert done and proc.poll() is None, (fuse_mounts(), logged())
        return proc

    try:
        # Why the bucket goes on a subdirectory: the volume is a mount point from the start.
        assert probe(['mountpoint', '-q', str(volume.path)]) == 0
        assert probe(startup) != 0, 'the startup probe must fail before irsafs has mounted'
        sidecar = start_sidecar()
        assert probe(liveness) == 0
        assert sorted(os.listdir(local)) == ['hello.txt'], 'only the prefix is mounted'
        assert Path(local, 'hello.txt').read_bytes() == b'hello from the pod\n'
        # Killed without SIGTERM (an OOM kill): a dead mount. The liveness probe (statfs, which
        # always reaches the daemon) sees it at once; `mountpoint -q` may still say yes from
        # the kernel's attribute cache, which is why it is only the startup probe.
        sidecar.send_signal(signal.SIGKILL)
        sidecar.wait(HANG_GUARD)
        assert probe(liveness) != 0
        with pytest.raises(OSError):
            os.listdir(local)
        # The restarted sidecar detaches the dead mount and mounts again.
        sidecar = start_sidecar()
        assert Path(local, 'hello.txt').read_bytes() == b'hello from the pod\n'
        assert len(fuse_mounts()) == 1, fuse_mounts()
        # Kubernetes stops it: SIGTERM, status 0, nothing left mounted.
        sidecar.send_signal(signal.SIGTERM)
        assert sidecar.wait(HANG_GUARD) == 0, logged()
        assert not is_mounted(local) and probe(startup) != 0
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        log.close()
        volume.close()
        s3server.stop_server(server.proc)


def script_runner(script, tmp_path, name):
    """Runs an app's shell script; returns the process, a function that reads its output so
    far, and the log file to close."""
    path = tmp_path / f'{name}.log'
    log = open(path, 'ab')  # pylint: disable=consider-using-with
    proc = subprocess.Popen([SHELL, '-c', script], stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)

    def output():
        return path.read_text(errors='replace')
    return proc, output, log


@needs_root_and_fuse
def test_legacy_app_waits_for_the_mount(manifests, tmp_path):
    spec = pod_spec(only(manifests['deployment-legacy.yaml'], 'Deployment'))
    _, side = irsafs_container(spec)
    takes_value = help_options()
    mountpoint = side['args'][-1]
    server, bucket = pod_server_for(side['args'], takes_value)
    volume = PodVolume(tmp_path / 'volume')
    local = str(volume.path / os.path.basename(mountpoint))
    script = app_containers(spec)[0]['command'][-1].replace(mountpoint, local)
    app, output, log = script_runner(script, tmp_path, 'app')
    daemon = None
    try:
        time.sleep(2)
        assert app.poll() is None and 'is mounted' not in output(), output()
        os.mkdir(local)
        time.sleep(1.5)
        assert app.poll() is None and 'is mounted' not in output(), output()
        options, _ = irsafs_settings(side['args'], takes_value)
        daemon = subprocess.Popen([BIN, '-f', '--endpoint-url', server.endpoint, '--region',
                                   options['--region'], '--prefix', options['--prefix'],
                                   bucket, local], env=irsafs_env(),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert wait_for(lambda: 'hello.txt' in output()), output()
        assert f'{local} is mounted' in output()
        app.send_signal(signal.SIGTERM)
        assert app.wait(10) == 0
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(HANG_GUARD) == 0
    finally:
        for proc in (app, daemon):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        log.close()
        volume.close()
        s3server.stop_server(server.proc)


def test_native_app_stops_on_sigterm(manifests, tmp_path):
    spec = pod_spec(only(manifests[NATIVE], 'Deployment'))
    _, side = irsafs_container(spec)
    local = tmp_path / 'mnt'
    local.mkdir()
    (local / 'file.txt').write_text('x')
    script = app_containers(spec)[0]['command'][-1].replace(side['args'][-1], str(local))
    app, output, log = script_runner(script, tmp_path, 'app')
    try:
        assert wait_for(lambda: 'file.txt' in output()), output()
        started = time.monotonic()
        app.send_signal(signal.SIGTERM)
        assert app.wait(10) == 0
        assert time.monotonic() - started < 5, 'the app must not hold up the shutdown'
    finally:
        if app.poll() is None:
            app.kill()
            app.wait()
        log.close()


# ---------------------------------------------------------------------------------------------
# (c) Dockerfile


def dockerfile_stages():
    """[(FROM arguments, [(INSTRUCTION, arguments)])], continuation lines joined and comments
    dropped."""
    text = DOCKERFILE.read_text()
    instructions, current = [], ''
    for line in text.splitlines():
        if not current and (line.lstrip().startswith('#') or not line.strip()):
            continue
        if line.rstrip().endswith('\\'):
            current += line.rstrip()[:-1] + ' '
            continue
        current += line
        word, _, rest = current.strip().partition(' ')
        instructions.append((word.upper(), rest.strip()))
        current = ''
    stages = []
    for word, rest in instructions:
        if word == 'FROM':
            stages.append((rest, []))
        else:
            assert stages, f'{word} before FROM'
            stages[-1][1].append((word, rest))
    return stages


def test_dockerfile_stages():
    stages = dockerfile_stages()
    assert len(stages) == 2
    (build_from, build), (runtime_from, runtime) = stages
    assert re.fullmatch(r'debian:bookworm(@sha256:[0-9a-f]+)? AS build', build_from, re.I)
    assert re.fullmatch(r'debian:bookworm-slim(@sha256:[0-9a-f]+)?', runtime_from)
    # Build: dependencies from packaging/install-deps.sh, then make with -Werror.
    build_runs = ' '.join(rest for word, rest in build if word == 'RUN')
    assert 'install-deps.sh' in build_runs
    assert re.search(r'\bmake\b[^&;]*\bCI=1\b', build_runs)
    # Runtime: the packages, without recommends, apt lists removed.
    runs = [rest for word, rest in runtime if word == 'RUN']
    install = next(r for r in runs if 'apt-get install' in r)
    packages = set(re.findall(r'(?<![\w/-])([a-z0-9][a-z0-9.+-]+)(?![\w/-])',
                              install.split('apt-get install', 1)[1]))
    assert {'fuse3', 'libfuse3-3', 'libcurl4', 'libssl3', 'libxml2', 'libjson-c5',
            'ca-certificates'} <= packages, packages
    assert '--no-install-recommends' in install and 'rm -rf /var/lib/apt/lists' in install
    # Runtime: only the binary comes from the build stage, where the manifests expect it.
    copies = [rest for word, rest in runtime if word == 'COPY']
    assert copies == [f'--from=build /out/irsafs {IMAGE_BINARY}'], copies
    # ENTRYPOINT runs irsafs -f in exec form; no CMD (the pod spec gives the args).
    entrypoint = [rest for word, rest in runtime if word == 'ENTRYPOINT']
    assert len(entrypoint) == 1
    assert json.loads(entrypoint[0]) == [IMAGE_BINARY, '-f']
    assert not [rest for word, rest in runtime if word == 'CMD']
    assert not [rest for word, rest in runtime if word == 'USER'], 'mounting needs root'


def test_dockerfile_runtime_packages_cover_the_binary():
    """Each shared library build/irsafs needs comes from a package the runtime stage installs
    (this machine is Debian 12 as well)."""
    if not (shutil.which('readelf') and shutil.which('dpkg-query')):
        pytest.skip('needs readelf and dpkg')
    require_binary()
    needed = re.findall(r'\(NEEDED\).*\[(.+)\]', run(['readelf', '-d', BIN]).stdout)
    assert needed
    install = next(rest for word, rest in dockerfile_stages()[1][1]
                   if word == 'RUN' and 'apt-get install' in rest)
    for soname in needed:
        if soname.startswith(('libc.so', 'libm.so', 'libpthread.so', 'libdl.so')):
            continue
        if soname.startswith(('libasan.so', 'libubsan.so', 'libtsan.so')):
            continue  # a sanitized test build; the image is built without sanitizers
        path = run(['/sbin/ldconfig', '-p']).stdout
        match = re.search(rf'^\s*{re.escape(soname)} \(.*\) => (\S+)$', path, re.M)
        assert match, soname
        owner = run(['dpkg-query', '-S', os.path.realpath(match[1])])
        if owner.returncode != 0:
            owner = run(['dpkg-query', '-S', match[1]])
        package = owner.stdout.split(':')[0]
        assert re.search(rf'(?<![\w-]){re.escape(package)}(?![\w-])', install), \
            f'{soname} comes from {package}, which the runtime stage does not install'


def test_dockerfile_build_stage_has_what_make_needs(tmp_path):
    """The build stage copies only some files and folders (to keep a host's build/ out): in a
    directory holding just those, `make CI=1` must build."""
    if not shutil.which('make'):
        pytest.skip('needs make')
    context, workdir = tmp_path / 'image', '/'
    for word, rest in dockerfile_stages()[0][1]:
        if word == 'WORKDIR':
            workdir = os.path.join(workdir, rest)
        if word != 'COPY':
            continue
        *sources, dest = rest.split()
        target = context / os.path.join(workdir, dest).lstrip('/')
        for source in sources:
            assert not source.startswith('--'), 'a build-stage COPY from the context'
            assert source.rstrip('/') not in ('.', ''), 'COPY . would bring in a host build/'
            src = REPO / source
            assert src.exists(), source
            if src.is_dir():
                shutil.copytree(src, target, dirs_exist_ok=True)
            elif dest.endswith('/'):
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy(src, target / src.name)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(src, target)
    src_dir = context / workdir.lstrip('/')
    # The image's make runs in a bare environment. Run from `make check`, this process has the
    # outer make's variables (MAKEFLAGS, the sanitized build's BUILD=build/asan, CC, ...).
    env = {k: v for k, v in os.environ.items() if k in ('PATH', 'HOME', 'LANG', 'TMPDIR')}
    result = run(['make', f'-j{os.cpu_count() or 2}', 'CI=1'], cwd=src_dir, timeout=600, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    version = run([str(src_dir / 'build' / 'irsafs'), '--version'])
    assert version.returncode == 0 and version.stdout.startswith('irsafs ')


# ---------------------------------------------------------------------------------------------
# systemd mount unit


def read_unit():
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read_string(UNIT.read_text())
    return parser


def test_systemd_unit_fields():
    unit = read_unit()
    mount = unit['Mount']
    assert mount['Type'] == 'fuse.irsafs'
    assert mount['What'] and mount['Where'] == '/mnt/s3'
    # systemd requires the file name to be the escaped mount point.
    assert UNIT.name == mount['Where'].strip('/').replace('-', '\\x2d').replace('/', '-') + \
        '.mount'
    options = mount['Options'].split(',')
    assert {'allow_other', '_netdev'} <= set(options)
    assert any(o.startswith('region=') for o in options)
    assert any(o.startswith('prefix=') and o.endswith('/') for o in options)
    assert 'network-online.target' in unit['Unit']['After']
    if shutil.which('systemd-analyze'):
        result = run(['systemd-analyze', 'verify', '--man=no', str(UNIT)])
        assert result.returncode == 0, result.stderr
        problems = [line for line in result.stderr.splitlines()
                    if 'mnt-s3.mount' in line or 'Unknown' in line]
        assert not problems, problems


@needs_root_and_fuse
def test_systemd_unit_options_through_the_mount_helper(tmp_path):
    """What systemd would run: the helper with What, Where and Options, and the unit's
    Environment=; here with the local S3 endpoint added and a temporary mount point."""
    if not HELPER.exists():
        pytest.skip('packaging/mount.irsafs is not there')
    require_binary()
    mount = read_unit()['Mount']
    options = dict(o.partition('=')[::2] for o in mount['Options'].split(','))
    server = start(['--region', options['region'], '--bucket', mount['What']])
    server.control.put(mount['What'], f'{options["prefix"]}hello.txt', b'hello\n')
    where = tmp_path / 'mnt'
    where.mkdir()
    env = irsafs_env(IRSAFS_BIN=BIN)
    for line in mount.get('Environment', '').split():
        name, _, value = line.partition('=')
        env[name] = value
    try:
        result = run(['sh', str(HELPER), mount['What'], str(where), '-o',
                      f'{mount["Options"]},endpoint_url={server.endpoint}'], env=env)
        assert result.returncode == 0, result.stderr
        assert is_mounted(where)
        assert os.listdir(where) == ['hello.txt']
        row = next(row for row in mount_table() if row[0] == os.fsencode(str(where)))
        assert row[1] == 'fuse.irsafs' and 'allow_other' in row[2].split(','), row
    finally:
        pids = irsafs_pids(where)
        unmount(where)
        for pid in pids:
            if not wait_for(lambda pid=pid: not process_alive(pid), timeout=10):
                os.kill(pid, signal.SIGKILL)
        s3server.stop_server(server.proc)


# ---------------------------------------------------------------------------------------------
# (d) The man page


def rendered_man_page():
    if not shutil.which('groff'):
        pytest.skip('needs groff (groff-base)')
    result = run(['groff', '-man', '-Tutf8', '-ww', '-P-c', '-P-b', '-P-u', str(MAN_PAGE)],
                 env={**os.environ, 'LC_ALL': 'C.UTF-8'})
    assert result.returncode == 0
    assert result.stderr == '', result.stderr
    # Undo what would hide an option name from a search: words hyphenated at a line end
    # (U+2010), lines broken after a '-', and '\-' printed as U+2212.
    text = re.sub('\u2010\n\\s*', '', result.stdout).replace('\u2212', '-')
    return re.sub(r'(?<=\w)-\n\s*', '-', text)


def section(text, name, next_name):
    """The text of the man page section `name`, up to the heading `next_name`."""
    start = re.search(rf'^{name}$', text, re.M)
    end = re.search(rf'^{next_name}$', text, re.M)
    assert start and end, (name, next_name)
    return text[start.end():end.start()]


def test_man_page_renders_without_warnings():
    rendered_man_page()
    if shutil.which('man'):
        for width in ('80', '100'):
            result = run(['man', '-l', str(MAN_PAGE)],
                         env={**os.environ, 'MANWIDTH': width, 'MAN_KEEP_FORMATTING': '0'})
            assert result.returncode == 0
            assert result.stderr == '', (width, result.stderr)


def test_man_page_sections():
    text = rendered_man_page()
    for heading in ('NAME', 'SYNOPSIS', 'DESCRIPTION', 'OPTIONS', 'ENVIRONMENT', 'FILES',
                    'SIGNALS', 'EXIT STATUS', 'EXAMPLES', 'SEE ALSO'):
        assert re.search(rf'^{heading}$', text, re.M), heading
    see_also = text[re.search(r'^SEE ALSO$', text, re.M).end():]
    for page in ('mount(8)', 'fusermount3(1)', 'mount.fuse3(8)'):
        assert page in see_also
    exit_status = section(text, 'EXIT STATUS', 'EXAMPLES')
    for status in ('0', '1', '2'):
        assert re.search(rf'^\s+{status}\s', exit_status, re.M), status


def test_man_page_documents_every_option():
    text = rendered_man_page()
    options_section = section(text, 'OPTIONS', 'ENVIRONMENT')
    for option in help_options():
        assert re.search(rf'(?<![\w-]){re.escape(option)}(?![\w-])', options_section), \
            f'{option} (from irsafs --help) is not in the man page'
        if option.startswith('--') and option not in ('--help', '--version'):
            name = option[2:].replace('-', '_')
            assert re.search(rf'-o {name}\b|\b{name}=', options_section), \
                f'the -o form of {option} is not in the man page'


def test_man_page_documents_every_environment_variable():
    text = rendered_man_page()
    environment = section(text, 'ENVIRONMENT', 'FILES')
    variables = set()
    for source in list((REPO / 'auth').glob('*.c')) + list((REPO / 'fs').glob('*.c')) + \
            list((REPO / 's3').glob('*.c')):
        variables |= set(re.findall(r'getenv\("(AWS_[A-Z0-9_]+)"\)', source.read_text()))
    assert 'AWS_ROLE_ARN' in variables
    for variable in sorted(variables):
        assert variable in environment, f'{variable} (read by the code) is not documented'


# ---------------------------------------------------------------------------------------------
# The README section


def test_readme_section_quotes_the_real_messages():
    """The error lines the README's pod section quotes are the ones the code prints."""
    text = (REPO / 'README.md').read_text()
    sources = '\n'.join(p.read_text() for folder in ('fs', 'auth', 's3')
                        for p in (REPO / folder).glob('*.c'))
    for fragment in ('no AWS credentials found: set AWS_ACCESS_KEY_ID and ',
                     'STS AssumeRoleWithWebIdentity failed: %s: %s (role %s, token file %s)',
                     'access denied listing s3://%s/%s (%s); the credentials from %s need ',
                     "bucket '%s' does not exist at %s (%s)",
                     "cannot mount at '%s': %s",
                     "mount point '%s' %s%s",
                     '%s is set but %s is not (both come from the IRSA webhook: is '):
        assert fragment in sources, fragment
    for quoted in ('irsafs: no AWS credentials found: set AWS_ACCESS_KEY_ID and',
                   'irsafs: STS AssumeRoleWithWebIdentity failed: AccessDenied:',
                   'irsafs: STS AssumeRoleWithWebIdentity failed: InvalidIdentityToken:',
                   'irsafs: access denied listing s3://my-bucket/data/ (AccessDenied:',
                   "irsafs: bucket 'my-bucket' does not exist at",
                   "irsafs: cannot mount at '/mnt/s3': device not found",
                   'Transport endpoint is not connected',
                   'render.sh'):
        assert quoted in text, quoted
    for name in ('serviceaccount.yaml', 'deployment.yaml', 'deployment-legacy.yaml'):
        assert f'k8s/{name}' in text
