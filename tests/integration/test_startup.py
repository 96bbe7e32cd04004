"""irsafs startup: options, the environment, every error before mounting, and the daemon and
foreground lifecycles.

Errors must come as one line starting with "irsafs: ", with a non-zero status (2 for usage
errors, 1 otherwise), nothing on stdout, nothing mounted and no process left behind. Every
command runs under a hang guard (conftest.HANG_GUARD); no test measures time.
"""

import errno
import os
import signal
import socket
import subprocess
from dataclasses import dataclass, field

import pytest

import s3server
from conftest import (AKID, BUCKET, DATASET, HANG_GUARD, SECRET, closed_port, expected_tree,
                      irsafs_env, irsafs_pids, is_mounted, mount_entry, process_alive, start,
                      wait_for)

USAGE_HINT = "Try 'irsafs --help' for more information."
REGION = 'eu-central-1'
SESSION_AKID, SESSION_SECRET, SESSION_TOKEN = 'AKIDSESSION', 'secretsession', 'TOKEN/with+chars='
REGIONAL_FILES = {'hello.txt': b'hello from eu-central-1\n', 'dir/inner.txt': b'inner\n'}


@pytest.fixture(scope='module')
def regional():
    """A second server in REGION that also accepts a session credential."""
    server = start(['--region', REGION, '--credentials', f'{AKID}:{SECRET}',
                    '--credentials', f'{SESSION_AKID}:{SESSION_SECRET}:{SESSION_TOKEN}'])
    try:
        server.control.bulk(BUCKET, [{'key': key, 'data': data}
                                     for key, data in REGIONAL_FILES.items()])
        yield server
    finally:
        s3server.stop_server(server.proc)


@pytest.fixture(scope='module')
def public():
    """A server that checks no signature, for --no-sign-request."""
    server = start(['--no-auth'])
    try:
        server.control.bulk('public-bucket', [{'key': 'open.txt', 'data': b'public\n'}])
        yield server
    finally:
        s3server.stop_server(server.proc)


def walk_names(root):
    """Relative paths (str) of everything under root, directories with a trailing '/'."""
    found = set()
    for top, dirs, files in os.walk(root):
        base = os.path.relpath(top, root)
        for name in dirs:
            found.add(os.path.normpath(os.path.join(base, name)) + '/')
        for name in files:
            found.add(os.path.normpath(os.path.join(base, name)))
    return found


def model_names(prefix):
    dirs, files = expected_tree(DATASET.keys, prefix.encode())
    names = {os.fsdecode(b'/'.join(path)) + '/' for path in dirs if path}
    return names | {os.fsdecode(b'/'.join(path)) for path in files}


def check_regional_mount(path):
    assert (path / 'hello.txt').read_bytes() == REGIONAL_FILES['hello.txt']
    assert (path / 'dir' / 'inner.txt').read_bytes() == REGIONAL_FILES['dir/inner.txt']


# ---------------------------------------------------------------------------------------------
# --help and --version


@pytest.mark.parametrize('flag', ['--version', '-V'])
def test_version(mounts, flag):
    status, out, err = mounts.run([flag], irsafs_env())
    assert status == 0
    assert out.startswith('irsafs ') and out.count('\n') == 1 and out.split()[1][0].isdigit()
    assert err == ''


@pytest.mark.parametrize('flag', ['--help', '-h'])
def test_help(mounts, flag):
    status, out, err = mounts.run([flag], irsafs_env(credentials=False))
    assert status == 0 and err == ''
    assert out.startswith('Usage: irsafs [OPTIONS] BUCKET MOUNTPOINT')
    for option in ('--prefix', '--region', '--endpoint-url', '--uid', '--gid', '--file-mode',
                   '--dir-mode', '--metadata-ttl', '--foreground', '-o'):
        assert option in out, option


# ---------------------------------------------------------------------------------------------
# Startup errors


@dataclass
class ErrorCase:
    options: list = field(default_factory=list)   # str.format()ted: endpoint, port, closed
    env: dict = field(default_factory=dict)       # overrides for irsafs_env()
    status: int = 1
    expect: tuple = ()                            # substrings of the diagnostic line
    bucket: str = BUCKET
    mountpoint: str = 'dir'                       # 'dir', 'missing', 'file' or 'none'
    credentials: bool = True


ERROR_CASES = {
    'wrong secret': ErrorCase(env={'AWS_SECRET_ACCESS_KEY': 'not-the-secret'},
                              expect=('SignatureDoesNotMatch',)),
    'unknown access key': ErrorCase(env={'AWS_ACCESS_KEY_ID': 'AKIDUNKNOWN'},
                                    expect=('InvalidAccessKeyId',)),
    'no credentials': ErrorCase(credentials=False,
                                expect=('AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY')),
    'only the key id': ErrorCase(env={'AWS_SECRET_ACCESS_KEY': None},
                                 expect=('AWS_SECRET_ACCESS_KEY is not',)),
    'only the secret': ErrorCase(env={'AWS_ACCESS_KEY_ID': None},
                                 expect=('AWS_ACCESS_KEY_ID is not',)),
    'empty secret': ErrorCase(env={'AWS_SECRET_ACCESS_KEY': ''},
                              expect=('AWS_SECRET_ACCESS_KEY is not',)),
    'missing bucket': ErrorCase(bucket='no-such-bucket', expect=('NoSuchBucket',
                                                                 'no-such-bucket')),
    'unsigned request refused': ErrorCase(options=['--no-sign-request'],
                                          expect=('AccessDenied',)),
    'unreachable endpoint': ErrorCase(options=['--endpoint-url', '{closed}'],
                                      expect=('cannot reach the S3 endpoint',)),
    'ftp endpoint': ErrorCase(options=['--endpoint-url', 'ftp://127.0.0.1:21'], status=2,
                              expect=('ftp://127.0.0.1:21', 'http://')),
    'endpoint with a path': ErrorCase(options=['--endpoint-url', '{endpoint}/some/path'],
                                      status=2, expect=('without a path',)),
    'endpoint with a query': ErrorCase(options=['--endpoint-url', '{endpoint}/?x=1'], status=2,
                                       expect=('query',)),
    'endpoint not a URL': ErrorCase(options=['--endpoint-url', 'http://'], status=2,
                                    expect=('endpoint URL',)),
    'endpoint without a scheme': ErrorCase(options=['--endpoint-url', '127.0.0.1:{port}'],
                                           status=2, expect=('not a valid URL',)),
    'endpoint with a user': ErrorCase(options=['--endpoint-url', 'http://me@127.0.0.1:{port}'],
                                      status=2, expect=('without a path, query or user',)),
    'https endpoint with an unreadable CA bundle': ErrorCase(
        options=['--endpoint-url', 'https://127.0.0.1:{port}'], status=2,
        env={'AWS_CA_BUNDLE': '/nonexistent/ca-bundle.pem'},
        expect=('CA bundle', '/nonexistent/ca-bundle.pem')),
    'https endpoint that speaks http': ErrorCase(
        options=['--endpoint-url', 'https://127.0.0.1:{port}'],
        expect=('cannot reach the S3 endpoint', 'TLS')),
    'bucket name too short': ErrorCase(bucket='ab', status=2,
                                       expect=("bucket name 'ab'", 'not valid')),
    'bucket name with bad characters': ErrorCase(bucket='bad bucket!', status=2,
                                                 expect=('not valid',)),
    'bucket given as s3:// URL': ErrorCase(bucket=f's3://{BUCKET}', status=2,
                                           expect=("s3://",)),
    'invalid region name': ErrorCase(options=['--region', 'EU_WEST'], status=2,
                                     expect=("region 'EU_WEST'",)),
    'prefix without slash': ErrorCase(options=['--prefix', 'deep'], status=2,
                                      expect=("must end with '/'",)),
    'prefix with leading slash': ErrorCase(options=['--prefix', '/deep/'], status=2,
                                           expect=("starts with '/'",)),
    'bad file mode': ErrorCase(options=['--file-mode', '0999'], status=2,
                               expect=("--file-mode '0999'",)),
    'bad dir mode': ErrorCase(options=['--dir-mode', 'rwx'], status=2,
                              expect=("--dir-mode 'rwx'",)),
    'mode with setuid bit': ErrorCase(options=['--file-mode', '4755'], status=2,
                                      expect=('--file-mode',)),
    'bad uid': ErrorCase(options=['--uid', 'root'], status=2, expect=("--uid 'root'",)),
    'negative uid': ErrorCase(options=['--uid', '-1'], status=2, expect=('--uid',)),
    'gid out of range': ErrorCase(options=['--gid', '4294967296'], status=2,
                                  expect=('--gid',)),
    'bad metadata ttl': ErrorCase(options=['--metadata-ttl', 'soon'], status=2,
                                  expect=('--metadata-ttl',)),
    'bad log level': ErrorCase(options=['--log-level', 'loud'], status=2,
                               expect=('--log-level',)),
    'unknown long option': ErrorCase(options=['--bogus'], status=2,
                                     expect=("unknown option '--bogus'",)),
    'unknown short option': ErrorCase(options=['-x'], status=2,
                                      expect=("unknown option '-x'",)),
    'long option given a value it does not take': ErrorCase(
        options=['--allow-other=yes'], status=2, expect=('takes no value',)),
    '-o option missing its value': ErrorCase(options=['-o', 'prefix'], status=2,
                                             expect=('needs a value',)),
    '-o flag given a value': ErrorCase(options=['-o', 'allow_other=1'], status=2,
                                       expect=('takes no value',)),
    'unknown -o FUSE option': ErrorCase(options=['-o', 'bogus_fuse_opt'], status=2,
                                        expect=('invalid FUSE options', 'bogus_fuse_opt')),
    'missing mount point': ErrorCase(mountpoint='missing', expect=('does not exist',)),
    'mount point is a file': ErrorCase(mountpoint='file', expect=('mount point',)),
    'no MOUNTPOINT argument': ErrorCase(mountpoint='none', status=2,
                                        expect=('missing MOUNTPOINT',)),
}


def run_error_case(mounts, s3, case):
    directory = mounts.mountpoint('err')
    mountpoint = {'dir': directory, 'missing': directory / 'missing' / 'mnt',
                  'file': directory / 'a-file', 'none': None}[case.mountpoint]
    if case.mountpoint == 'file':
        mountpoint.write_bytes(b'')
    options = [o.format(endpoint=s3.endpoint, port=s3.port,
                        closed=f'http://127.0.0.1:{closed_port()}') for o in case.options]
    if '--endpoint-url' not in options:
        options = ['--endpoint-url', s3.endpoint, *options]
    argv = [*options, case.bucket] + ([str(mountpoint)] if mountpoint else [])
    status, out, err = mounts.run(argv, irsafs_env(credentials=case.credentials, **case.env),
                                  mountpoint=mountpoint)
    if mountpoint is not None:
        assert not is_mounted(mountpoint), 'a failed start left a mount'
        assert irsafs_pids(mountpoint) == [], 'a failed start left a process'
    if case.mountpoint == 'dir':
        assert os.listdir(directory) == []
    return status, out, err


@pytest.mark.parametrize('name', sorted(ERROR_CASES))
def test_startup_error(mounts, s3, name):
    """Status, the diagnostic and its key words; nothing mounted, nothing left running."""
    case = ERROR_CASES[name]
    status, out, err = run_error_case(mounts, s3, case)
    assert status == case.status, (status, err)
    assert out == ''
    diagnostics = [line for line in err.splitlines() if line.startswith('irsafs: ')]
    assert len(diagnostics) == 1, err
    for word in case.expect:
        assert word in diagnostics[0], (word, err)
    assert err.endswith('\n')


@pytest.mark.parametrize('name', sorted(ERROR_CASES))
def test_startup_error_is_exactly_one_line(mounts, s3, name):
    status, _, err = run_error_case(mounts, s3, ERROR_CASES[name])
    assert status != 0
    assert err.startswith('irsafs: ') and err.count('\n') == 1 and err.endswith('\n'), err


def test_mount_point_that_is_a_file_is_called_not_a_directory(mounts, s3):
    _, _, err = run_error_case(mounts, s3, ERROR_CASES['mount point is a file'])
    assert 'is not a directory' in err, err


# ---------------------------------------------------------------------------------------------
# Options that shape the mount


def test_prefix_mounts_only_that_subtree(mounts, s3):
    prefix = 'deep/level 01/'
    mount = mounts.mount(['--endpoint-url', s3.endpoint, '--prefix', prefix], irsafs_env())
    assert walk_names(mount.path) == model_names(prefix)
    assert sorted(os.listdir(mount.path)) == ['file-01.bin', 'level 02']


def test_prefix_with_special_characters(mounts, s3):
    prefix = 'special/d\u00edr \u4e2d\u6587 \U0001f600/'
    mount = mounts.mount(['--endpoint-url', s3.endpoint, '--prefix', prefix], irsafs_env())
    assert walk_names(mount.path) == model_names(prefix)
    obj = DATASET.objects[(prefix + 'inner file.txt').encode()]
    assert (mount.path / 'inner file.txt').read_bytes() == obj.content()


def test_prefix_of_a_marker_only_directory_is_empty(mounts, s3):
    mount = mounts.mount(['--endpoint-url', s3.endpoint, '--prefix', 'markers/empty/'],
                         irsafs_env())
    assert os.listdir(mount.path) == []


def test_o_options_form(mounts, s3):
    mount = mounts.mount(['--endpoint-url', s3.endpoint, '-o', 'prefix=markers/,file_mode=0400'],
                         irsafs_env())
    assert walk_names(mount.path) == model_names('markers/')
    st = os.stat(mount.path / 'file.txt')
    assert oct(st.st_mode & 0o7777) == oct(0o400)
    assert oct(os.stat(mount.path / 'sub').st_mode & 0o7777) == oct(0o555)


def test_o_options_with_escaped_comma_and_attached_form(mounts, s3):
    prefix = 'special/[{(*$\\:!@,;)}]/'
    mount = mounts.mount(['--endpoint-url', s3.endpoint,
                          '-oprefix=' + prefix.replace(',', '\\,') + ',dir-mode=0500',
                          '-o', 'uid=1234,gid=4321'], irsafs_env())
    assert walk_names(mount.path) == model_names(prefix)
    for name in os.listdir(mount.path):
        st = os.lstat(mount.path / name)
        assert (st.st_uid, st.st_gid) == (1234, 4321)
    assert os.stat(mount.path).st_mode & 0o7777 == 0o500


@pytest.mark.parametrize('form', ['long', 'equals', '-o'])
def test_owner_and_modes_are_honoured(mounts, s3, form):
    values = {'uid': '1234', 'gid': '4321', 'file-mode': '0440', 'dir-mode': '0750'}
    if form == 'long':
        options = [part for name, value in values.items() for part in (f'--{name}', value)]
    elif form == 'equals':
        options = [f'--{name}={value}' for name, value in values.items()]
    else:
        options = ['-o', ','.join(f'{name.replace("-", "_")}={value}'
                                  for name, value in values.items())]
    mount = mounts.mount(['--endpoint-url', s3.endpoint, '--prefix', 'markers/', *options],
                         irsafs_env())
    for top, dirs, files in os.walk(mount.path):
        for name, mode in [(name, 0o750) for name in dirs] + [(name, 0o440) for name in files]:
            st = os.lstat(os.path.join(top, name))
            assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (1234, 4321, mode), name
    st = os.stat(mount.path)
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (1234, 4321, 0o750)


@pytest.mark.parametrize('option', ['rw', 'ro'])
def test_rw_and_ro_options_are_ignored(mounts, s3, option):
    mount = mounts.mount(['--endpoint-url', s3.endpoint, '--prefix', 'markers/', '-o', option],
                         irsafs_env())
    assert 'ro' in mount_entry(mount.path)[2].split(',')
    with pytest.raises(OSError) as info:
        os.open(mount.path / 'file.txt', os.O_WRONLY)
    assert info.value.errno == errno.EROFS
    with pytest.raises(OSError) as info:
        os.mkdir(mount.path / 'new')
    assert info.value.errno == errno.EROFS


@pytest.mark.parametrize('options', [['--allow-other'], ['-o', 'allow_other']])
def test_allow_other(mounts, s3, options):
    mount = mounts.mount(['--endpoint-url', s3.endpoint, '--prefix', 'markers/', *options],
                         irsafs_env())
    assert 'allow_other' in mount_entry(mount.path)[2].split(',')


def test_double_dash_ends_options(mounts, s3):
    mount = mounts.mount(['--endpoint-url', s3.endpoint, '--'], irsafs_env())
    assert os.path.isdir(mount.path / 'markers')


@pytest.mark.parametrize('style', ['virtual-hosted', 'path-style'])
def test_host_name_endpoint_addressing(mounts, s3, style):
    """A host name endpoint addresses the bucket in the host name unless
    --force-path-style; both reach the same objects."""
    options = ['--endpoint-url', f'http://localhost:{s3.port}/', '--prefix', 'markers/']
    if style == 'path-style':
        options.append('--force-path-style')
    mount = mounts.mount(options, irsafs_env())
    s3.control.reset()
    assert (mount.path / 'sub' / 'x.txt').read_bytes() == \
        DATASET.objects[b'markers/sub/x.txt'].content()
    paths = [entry['path'] for entry in s3.control.stats()['log']]
    in_path = [p == f'/{BUCKET}' or p.startswith(f'/{BUCKET}/') for p in paths]
    assert paths and all(flag == (style == 'path-style') for flag in in_path), paths


def test_ipv6_endpoint_is_path_style(mounts):
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(('::1', 0))
    except OSError:
        pytest.skip('no IPv6 loopback')
    server = start(['--host', '::1'])
    try:
        server.control = s3server.Control(server.port, host='::1')
        server.control.bulk(BUCKET, [{'key': 'v6.txt', 'data': b'six\n'}])
        mount = mounts.mount(['--endpoint-url', f'http://[::1]:{server.port}'], irsafs_env())
        assert (mount.path / 'v6.txt').read_bytes() == b'six\n'
        mounts.close()
    finally:
        s3server.stop_server(server.proc)


def test_no_sign_request_on_a_public_bucket(mounts, public):
    mount = mounts.mount(['--endpoint-url', public.endpoint, '--no-sign-request'],
                         irsafs_env(credentials=False), bucket='public-bucket')
    assert (mount.path / 'open.txt').read_bytes() == b'public\n'


def test_bucket_with_dots_and_underscore(mounts, s3):
    s3.control.bulk('dotted.bucket_1', [{'key': 'k', 'data': b'dots\n'}])
    mount = mounts.mount(['--endpoint-url', s3.endpoint], irsafs_env(),
                         bucket='dotted.bucket_1')
    assert (mount.path / 'k').read_bytes() == b'dots\n'


# ---------------------------------------------------------------------------------------------
# The environment


@pytest.mark.parametrize('cli,aws_region,aws_default_region,right', [
    (None, None, None, False),                      # us-east-1 by default: wrong here
    (None, REGION, None, True),
    (None, None, REGION, True),
    (None, 'us-west-2', REGION, False),             # AWS_REGION before AWS_DEFAULT_REGION
    (None, '', REGION, True),                       # an empty variable counts as unset
    (REGION, 'us-west-2', 'us-west-2', True),       # --region before both
    ('us-west-2', REGION, REGION, False),
])
def test_region_precedence(mounts, regional, cli, aws_region, aws_default_region, right):
    """The region comes from --region, AWS_REGION, AWS_DEFAULT_REGION, us-east-1, in that
    order. A wrong one still mounts: S3 names the bucket's region and irsafs switches to it
    once, saying so."""
    options = ['--endpoint-url', regional.endpoint] + (['--region', cli] if cli else [])
    env = irsafs_env(AWS_REGION=aws_region, AWS_DEFAULT_REGION=aws_default_region)
    mount = mounts.mount(options, env)
    check_regional_mount(mount.path)
    used = cli or aws_region or aws_default_region or 'us-east-1'
    switch = f"the bucket is in another region: using it bucket={BUCKET} region={REGION} " \
             f"configured={used}"
    if right:
        assert 'another region' not in mount.output(), mount.output()
    else:
        assert switch in mount.output(), mount.output()


@pytest.mark.parametrize('cli,s3_variable,generic_variable,ok', [
    (None, None, 'good', True),
    (None, 'good', 'closed', True),                 # AWS_ENDPOINT_URL_S3 first
    (None, 'closed', 'good', False),
    (None, '', 'good', True),                       # an empty variable counts as unset
    ('good', 'closed', 'closed', True),             # --endpoint-url before both
    ('closed', 'good', 'good', False),
])
def test_endpoint_precedence(mounts, s3, cli, s3_variable, generic_variable, ok):
    urls = {'good': s3.endpoint, 'closed': f'http://127.0.0.1:{closed_port()}', '': '',
            None: None}
    options = ['--endpoint-url', urls[cli]] if cli else []
    env = irsafs_env(AWS_ENDPOINT_URL_S3=urls[s3_variable],
                     AWS_ENDPOINT_URL=urls[generic_variable])
    if ok:
        mount = mounts.mount([*options, '--prefix', 'markers/'], env)
        assert walk_names(mount.path) == model_names('markers/')
        return
    mountpoint = mounts.mountpoint()
    status, out, err = mounts.run([*options, BUCKET, str(mountpoint)], env, mountpoint)
    assert status == 1 and out == ''
    assert err.startswith('irsafs: cannot reach the S3 endpoint') and err.count('\n') == 1, err
    assert not is_mounted(mountpoint)


@pytest.mark.parametrize('ca_env', [
    {'AWS_CA_BUNDLE': '/nonexistent/ca-bundle.pem'},
    {'AWS_CA_BUNDLE': '/nonexistent/ca-bundle.pem', 'SSL_CERT_FILE': '/nonexistent/cert.pem'},
    {'AWS_CA_BUNDLE': ''},
    'as-is',
])
def test_ca_bundle_does_not_matter_for_http(mounts, s3, ca_env):
    env = irsafs_env(keep_ca_bundle=True) if ca_env == 'as-is' else irsafs_env(**ca_env)
    mount = mounts.mount(['--endpoint-url', s3.endpoint, '--prefix', 'markers/'], env)
    assert (mount.path / 'file.txt').read_bytes() == \
        DATASET.objects[b'markers/file.txt'].content()


def test_session_token(mounts, regional):
    env = irsafs_env(AWS_ACCESS_KEY_ID=SESSION_AKID, AWS_SECRET_ACCESS_KEY=SESSION_SECRET,
                     AWS_SESSION_TOKEN=SESSION_TOKEN, AWS_REGION=REGION)
    check_regional_mount(mounts.mount(['--endpoint-url', regional.endpoint], env).path)


def run_with_session_token(mounts, regional, token):
    env = irsafs_env(AWS_ACCESS_KEY_ID=SESSION_AKID, AWS_SECRET_ACCESS_KEY=SESSION_SECRET,
                     AWS_SESSION_TOKEN=token, AWS_REGION=REGION)
    mountpoint = mounts.mountpoint()
    status, out, err = mounts.run(['--endpoint-url', regional.endpoint, BUCKET,
                                   str(mountpoint)], env, mountpoint)
    assert not is_mounted(mountpoint) and irsafs_pids(mountpoint) == []
    return status, out, err


@pytest.mark.parametrize('token', [None, 'wrong-token'])
def test_missing_or_wrong_session_token(mounts, regional, token):
    status, out, err = run_with_session_token(mounts, regional, token)
    assert status == 1 and out == ''
    diagnostics = [line for line in err.splitlines() if line.startswith('irsafs: ')]
    assert len(diagnostics) == 1 and 'InvalidToken' in diagnostics[0], err


@pytest.mark.parametrize('token', [None, 'wrong-token'])
def test_session_token_error_is_exactly_one_line(mounts, regional, token):
    status, _, err = run_with_session_token(mounts, regional, token)
    assert status == 1
    assert err.startswith('irsafs: ') and err.count('\n') == 1, err


def test_trace_log_never_shows_secrets(mounts, regional):
    env = irsafs_env(AWS_ACCESS_KEY_ID=SESSION_AKID, AWS_SECRET_ACCESS_KEY=SESSION_SECRET,
                     AWS_SESSION_TOKEN=SESSION_TOKEN, AWS_REGION=REGION)
    mount = mounts.mount(['--endpoint-url', regional.endpoint, '--log-level', 'trace'], env)
    check_regional_mount(mount.path)
    mounts.close()
    log = mount.output()
    assert 'GET /' in log and '[redacted]' in log, log[-2000:]
    for secret in (SESSION_SECRET, SESSION_TOKEN, 'Signature='):
        assert secret not in log, secret


@pytest.mark.parametrize('flag', ['--debug', '-d', '-o debug'])
def test_debug_logging(mounts, s3, flag):
    mount = mounts.mount(['--endpoint-url', s3.endpoint, '--prefix', 'markers/',
                          *flag.split()], irsafs_env())
    os.listdir(mount.path)
    mounts.close()
    assert ' debug ' in mount.output(), mount.output()


# ---------------------------------------------------------------------------------------------
# Daemon and foreground lifecycles


def test_daemon_mode(mounts, s3):
    """Without -f the command returns 0 once the mount is live; fusermount3 -u then ends the
    daemon."""
    mountpoint = mounts.mountpoint()
    status, out, err = mounts.run(['--endpoint-url', s3.endpoint, BUCKET, str(mountpoint)],
                                  irsafs_env(), mountpoint)
    assert status == 0, err
    assert is_mounted(mountpoint), 'the parent exited before the mount was live'
    assert mount_entry(mountpoint)[1] == 'fuse.irsafs'
    assert (mountpoint / 'markers' / 'file.txt').read_bytes() == \
        DATASET.objects[b'markers/file.txt'].content()
    daemons = irsafs_pids(mountpoint)
    assert len(daemons) == 1, daemons
    subprocess.run(['fusermount3', '-u', str(mountpoint)], check=True, timeout=HANG_GUARD)
    assert wait_for(lambda: not is_mounted(mountpoint))
    assert wait_for(lambda: not process_alive(daemons[0])), 'the daemon outlived its mount'
    assert irsafs_pids(mountpoint) == []


def test_daemon_stops_on_sigterm(mounts, s3):
    mountpoint = mounts.mountpoint()
    status, _, err = mounts.run(['--endpoint-url', s3.endpoint, BUCKET, str(mountpoint)],
                                irsafs_env(), mountpoint)
    assert status == 0 and is_mounted(mountpoint), err
    (daemon,) = irsafs_pids(mountpoint)
    os.kill(daemon, signal.SIGTERM)
    assert wait_for(lambda: not process_alive(daemon))
    assert wait_for(lambda: not is_mounted(mountpoint), timeout=5), 'SIGTERM left the mount'


def test_daemon_with_relative_mount_point_stops_on_sigterm(mounts, s3):
    mountpoint = mounts.mountpoint()
    status, _, err = mounts.run(['--endpoint-url', s3.endpoint, BUCKET, mountpoint.name],
                                irsafs_env(), mountpoint, cwd=mountpoint.parent)
    assert status == 0 and is_mounted(mountpoint), err
    (daemon,) = irsafs_pids(mountpoint.name)
    os.kill(daemon, signal.SIGTERM)
    assert wait_for(lambda: not process_alive(daemon))
    assert wait_for(lambda: not is_mounted(mountpoint), timeout=5), 'SIGTERM left the mount'


def test_foreground_exits_0_when_unmounted(mounts, s3):
    mount = mounts.mount(['--endpoint-url', s3.endpoint], irsafs_env())
    assert os.path.isdir(mount.path / 'markers')
    assert mount.proc.poll() is None, 'a foreground irsafs must not return while mounted'
    subprocess.run(['fusermount3', '-u', str(mount.path)], check=True, timeout=HANG_GUARD)
    assert mount.proc.wait(HANG_GUARD) == 0, mount.output()
    assert not is_mounted(mount.path)


@pytest.mark.parametrize('signum', [signal.SIGTERM, signal.SIGINT])
def test_foreground_signal_unmounts_and_exits(mounts, s3, signum):
    mount = mounts.mount(['--endpoint-url', s3.endpoint], irsafs_env())
    assert os.path.isdir(mount.path / 'markers')
    mount.proc.send_signal(signum)
    mount.proc.wait(HANG_GUARD)
    assert not is_mounted(mount.path), 'the signal left the mount'


@pytest.mark.parametrize('signum', [signal.SIGTERM, signal.SIGINT])
def test_foreground_signal_exit_status_is_0(mounts, s3, signum):
    mount = mounts.mount(['--endpoint-url', s3.endpoint], irsafs_env())
    mount.proc.send_signal(signum)
    assert mount.proc.wait(HANG_GUARD) == 0, mount.output()
