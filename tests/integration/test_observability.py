"""Seeing inside a running mount: the Prometheus endpoint (--metrics-addr), JSON logs, the rate
limit on repeated errors and the SIGUSR1 summary. Each metric is checked to move as the run
predicts, by scraping before and after.
"""

import json
import os
import signal
import time

import pytest

import s3server
from conftest import (BUCKET, HANG_GUARD, closed_port, irsafs_env, pread_direct, scrape,
                      scrape_ok, start, value, wait_for)

MIB = 1024 * 1024
BLOCK = 64 * 1024


@pytest.fixture(scope='module')
def server():
    srv = start([])
    srv.control.put(BUCKET, 'data/big.bin', s3server.make_data(8 * MIB, 'big'))
    srv.control.put(BUCKET, 'data/small.txt', b'hello\n')
    srv.control.put(BUCKET, 'data/other.bin', s3server.make_data(16 * MIB, 'other'))
    srv.control.put(BUCKET, 'data/a//hidden', b'x')
    srv.control.put(BUCKET, 'cold/archived.bin', b'frozen', storage_class='GLACIER')
    try:
        yield srv
    finally:
        s3server.stop_server(srv.proc)


@pytest.fixture
def observed(mounts, server):
    port = closed_port()
    mount = mounts.mount(['--endpoint-url', server.endpoint, '--metrics-addr', str(port)],
                         irsafs_env())
    assert wait_for(lambda: scrape_ok(port)), mount.output()
    return mount, port


def test_metrics_move_as_the_run_predicts(observed, server):
    mount, port = observed
    data = s3server.make_data(8 * MIB, 'big')
    before = scrape(port)
    assert value(before, 'irsafs_info', bucket=BUCKET) == 1
    assert value(before, 'irsafs_cache_capacity_bytes') == 256 * MIB
    server.control.reset()

    # A cold 1 MiB read: 16 blocks missed, fetched by GETs (the whole 8 MiB object, read
    # from its start, in one). The GET may still be streaming when the read returns (blocks
    # are served as they arrive), so wait for it to be counted.
    assert pread_direct(mount.path / 'data/big.bin', 0, MIB) == data[:MIB]

    def settled():
        got = scrape(port)
        done = value(got, 'irsafs_s3_requests_total', operation='GetObject',
                     **{'class': '2xx'})
        sent = server.control.stats()['requests'].get('GetObject', 0)
        return got if done >= 1 and done == sent else None

    cold = wait_for(settled)
    assert cold, 'the GETs never showed up in the metrics'
    gets = server.control.stats()['requests'].get('GetObject', 0)
    assert gets >= 1
    assert value(cold, 'irsafs_cache_misses_total') - value(before, 'irsafs_cache_misses_total') >= 16
    assert value(cold, 'irsafs_s3_received_bytes_total') >= MIB

    # The same MiB again, 4 times: every block a hit, nothing sent.
    for _ in range(4):
        assert pread_direct(mount.path / 'data/big.bin', 0, MIB) == data[:MIB]
    warm = scrape(port)
    assert value(warm, 'irsafs_cache_hits_total') - value(cold, 'irsafs_cache_hits_total') == 4 * 16
    assert value(warm, 'irsafs_cache_misses_total') == value(cold, 'irsafs_cache_misses_total')
    assert server.control.stats()['requests'].get('GetObject', 0) == gets
    assert value(warm, 'irsafs_fuse_operations_total', op='read') \
        - value(cold, 'irsafs_fuse_operations_total', op='read') >= 4
    assert value(warm, 'irsafs_fuse_operation_duration_seconds_count', op='read') == \
        value(warm, 'irsafs_fuse_operations_total', op='read')
    assert value(warm, 'irsafs_cache_bytes') <= value(warm, 'irsafs_cache_capacity_bytes')

    # Injected 503s show up as throttling and retries, and the read still succeeds. (A first
    # read far into another object: just its block is fetched, with one GET.)
    other = s3server.make_data(16 * MIB, 'other')
    server.control.fault(op='GetObject', code='SlowDown', count=3)
    assert pread_direct(mount.path / 'data/other.bin', 12 * MIB, BLOCK) == \
        other[12 * MIB:12 * MIB + BLOCK]
    faulted = scrape(port)
    assert value(faulted, 'irsafs_s3_retries_total', reason='throttled') \
        - value(warm, 'irsafs_s3_retries_total', reason='throttled') == 3
    assert value(faulted, 'irsafs_s3_throttled_total') - value(warm, 'irsafs_s3_throttled_total') == 3
    assert value(faulted, 'irsafs_s3_requests_total', operation='GetObject', **{'class': '5xx'}) \
        - value(warm, 'irsafs_s3_requests_total', operation='GetObject', **{'class': '5xx'}) == 3
    server.control.clear_faults()

    # Listing: a directory with a key that cannot be a name.
    assert sorted(os.listdir(mount.path / 'data')) == ['a', 'big.bin', 'other.bin', 'small.txt']
    assert os.listdir(mount.path / 'data/a') == []
    listed = scrape(port)
    assert value(listed, 'irsafs_hidden_keys_total') >= 1
    assert value(listed, 'irsafs_listings_total') >= 3
    # A missing name: a lookup answered with ENOENT, counted as an error.
    errors = value(listed, 'irsafs_fuse_errors_total', op='lookup')
    assert not (mount.path / 'data/missing').exists()
    assert value(scrape(port), 'irsafs_fuse_errors_total', op='lookup') == errors + 1


def test_credential_expiry_counts_down(mounts, server, tmp_path):
    token = tmp_path / 'token'
    s3server.write_token_file(token, 'a-web-identity-token-for-the-metrics-test')
    sts = start(['--sts-token-file', str(token), '--sts-duration', '900'])
    try:
        port = closed_port()
        env = irsafs_env(credentials=False, AWS_ROLE_ARN='arn:aws:iam::123456789012:role/r',
                         AWS_WEB_IDENTITY_TOKEN_FILE=str(token),
                         AWS_ENDPOINT_URL_STS=sts.endpoint)
        mounts.mount(['--endpoint-url', sts.endpoint, '--metrics-addr', str(port)], env)
        assert wait_for(lambda: scrape_ok(port))
        first = scrape(port)
        assert value(first, 'irsafs_credentials_info', source='web-identity') == 1
        expiry = value(first, 'irsafs_credentials_expiry_seconds')
        assert 800 < expiry <= 900
        time.sleep(2.2)
        assert value(scrape(port), 'irsafs_credentials_expiry_seconds') <= expiry - 2
    finally:
        s3server.stop_server(sts.proc)


def test_metrics_address_errors(mounts, server):
    status, _, err = mounts.run(['--endpoint-url', server.endpoint, '--metrics-addr', 'nope',
                                 BUCKET, str(mounts.mountpoint())], irsafs_env())
    assert status == 2 and "--metrics-addr 'nope'" in err, err
    busy = closed_port()
    blocker = __import__('socket').create_server(('127.0.0.1', busy))
    try:
        mnt = mounts.mountpoint()
        status, _, err = mounts.run(['--endpoint-url', server.endpoint, '--metrics-addr',
                                     str(busy), BUCKET, str(mnt)], irsafs_env(), mnt)
        assert status == 1 and 'cannot listen on' in err and err.count('\n') == 1, err
    finally:
        blocker.close()


def test_json_logs_rate_limit_and_summary(mounts, server):
    mount = mounts.mount(['--endpoint-url', server.endpoint, '--log-format', 'json'],
                         irsafs_env())
    # Twenty reads of an archived object: twenty errors of one kind.
    for _ in range(20):
        with pytest.raises(OSError):
            pread_direct(mount.path / 'cold/archived.bin', 0, 4096)
    mount.proc.send_signal(signal.SIGUSR1)
    assert wait_for(lambda: 'summary' in mount.output(), timeout=HANG_GUARD)
    lines = [line for line in mount.output().splitlines() if line.strip()]
    events = [json.loads(line) for line in lines]  # every line is one JSON object
    for event in events:
        assert {'time', 'level', 'component', 'pid', 'msg'} <= set(event), event
    mounted = [e for e in events if e['msg'] == 'mounted']
    assert mounted and mounted[0]['bucket'] == BUCKET and mounted[0]['level'] == 'info'
    archived = [e for e in events if 'archived storage class' in e['msg']]
    assert archived and all(e['key'] == 'cold/archived.bin' for e in archived)
    assert len(archived) <= 10, f'{len(archived)} identical errors: the rate limit did not hold'
    summary = [e for e in events if e['msg'].startswith('summary')]
    assert summary and 'get=' in summary[0]['msg']
