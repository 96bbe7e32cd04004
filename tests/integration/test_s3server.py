"""Self-test of tests/s3server.py, driven by botocore (a reference SDK) and raw http.client.

Run: cd /work/main && /usr/bin/python3 -m pytest -q tests/integration/test_s3server.py
"""

import hashlib
import hmac
import http.client
import json
import math
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import botocore.auth
import botocore.awsrequest
import botocore.config
import botocore.credentials
import botocore.session
import pytest
from botocore.exceptions import ClientError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import s3server  # noqa: E402  pylint: disable=wrong-import-position
from conftest import make_certificate  # noqa: E402  pylint: disable=wrong-import-position

AKID, SECRET = 'AKIDTEST', 'secrettest'
SESSION_AKID, SESSION_SECRET, SESSION_TOKEN = 'AKIDSESSION', 'secretsession', 'TOKEN/with+chars='
REGION = 'us-east-1'
PAGE_SIZE = 7
EMPTY_SHA256 = hashlib.sha256(b'').hexdigest()
NS = {'s3': s3server.S3_XMLNS}

# Keys that stress URL encoding, XML escaping, ordering and path handling. Each object's
# content is its key in UTF-8.
SPECIAL_KEYS = [
    'with space', ' leading space', 'trailing space ', 'plus+sign', 'a+b c', 'percent%',
    'percent%41', 'question?mark', 'hash#tag', 'amp&ersand', 'equals=sign', 'tilde~',
    'quote"s', "apostrophe's", '[brackets]', '{braces}', 'star*', 'dollar$', 'back\\slash',
    'co:lon', 'semi;colon', 'comma,', 'at@', 'caret^', 'pipe|', '<xml>&amp;', 'caf\u00e9',
    'uni/\ufb00', 'uni/\U0001f600', 'emoji \U0001f680/file', 'a//b', '../x', './y', 'x/./y',
    'x/../y', '/leading-slash', 'dir/', 'dir/file', 'dir/sub/deep', 'tab\there', 'new\nline',
    'ctl\x01char',
]
GENERATED_KEYS = ([f'gen/{i % 12:02d}/obj-{i:03d}' for i in range(120)]
                  + [f'flat-{i:03d}' for i in range(150)])
LIST_KEYS = SPECIAL_KEYS + GENERATED_KEYS
OBJECT = s3server.make_data(1000, 'object')
OBJECT_KEY = 'obj/data.bin'


# Fixtures and helpers


@pytest.fixture(scope='session', autouse=True)
def isolated_aws_env():
    """Keep botocore away from the host's AWS configuration."""
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith('AWS_'):
                patch.delenv(name)
        patch.setenv('AWS_CONFIG_FILE', '/dev/null')
        patch.setenv('AWS_SHARED_CREDENTIALS_FILE', '/dev/null')
        patch.setenv('AWS_EC2_METADATA_DISABLED', 'true')
        yield


@pytest.fixture(scope='module', name='main_server')
def fixture_main_server():
    """The main server, as (proc, port): two buckets, a session credential, pages of 7, test
    data loaded. It must never print a traceback."""
    proc, port = s3server.start_server([
        '--page-size', str(PAGE_SIZE), '--bucket', 'test-bucket', '--bucket', 'list-bucket',
        '--credentials', f'{AKID}:{SECRET}',
        '--credentials', f'{SESSION_AKID}:{SESSION_SECRET}:{SESSION_TOKEN}'])
    try:
        control = s3server.Control(port)
        control.bulk('list-bucket', [{'key': key, 'data': key.encode()} for key in LIST_KEYS])
        control.bulk('test-bucket', [{'key': OBJECT_KEY, 'size': 1000, 'seed': 'object'},
                                     {'key': 'empty', 'data': b''},
                                     {'key': '/lead', 'data': b'leading slash'}])
        yield proc, port
    finally:
        s3server.stop_server(proc)
    assert 'Traceback' not in s3server.server_stderr(proc)


@pytest.fixture(name='port')
def fixture_port(main_server):
    return main_server[1]


@pytest.fixture(name='control')
def fixture_control(port):
    return s3server.Control(port)


def make_client(port, akid=AKID, secret=SECRET, token=None, region=REGION):
    return botocore.session.get_session().create_client(
        's3', endpoint_url=f'http://127.0.0.1:{port}', region_name=region,
        aws_access_key_id=akid, aws_secret_access_key=secret, aws_session_token=token,
        config=botocore.config.Config(s3={'addressing_style': 'path'}, signature_version='s3v4',
                                      retries={'total_max_attempts': 1},
                                      connect_timeout=5, read_timeout=10))


@pytest.fixture(name='s3')
def fixture_s3(port):
    return make_client(port)


def error_of(call, *args, **kwargs):
    """Call a botocore operation expected to fail; return (HTTP status, Error dict, headers)."""
    with pytest.raises(ClientError) as info:
        call(*args, **kwargs)
    response = info.value.response
    return (response['ResponseMetadata']['HTTPStatusCode'], response['Error'],
            response['ResponseMetadata']['HTTPHeaders'])


def utf8_order(names):
    return sorted(names, key=lambda name: name.encode())


def expected_listing(keys, prefix='', delimiter='', start_after=''):
    """What ListObjectsV2 must return, computed the obvious way."""
    contents, prefixes = [], set()
    for key in keys:
        if not key.startswith(prefix) or key.encode() <= start_after.encode():
            continue
        rest = key[len(prefix):]
        if delimiter and delimiter in rest:
            prefixes.add(prefix + rest[:rest.index(delimiter) + len(delimiter)])
        else:
            contents.append(key)
    return utf8_order(contents), utf8_order(prefixes)


def list_all(s3, **kwargs):
    """List through the paginator; return (keys, common prefixes, pages)."""
    pages = list(s3.get_paginator('list_objects_v2').paginate(Bucket='list-bucket', **kwargs))
    keys = [item['Key'] for page in pages for item in page.get('Contents', [])]
    prefixes = [item['Prefix'] for page in pages for item in page.get('CommonPrefixes', [])]
    return keys, prefixes, pages


def raw_request(port, method, target, headers, body=b''):
    """Send exactly these headers (Host included) to 127.0.0.1; return (status, headers, body)."""
    connection = http.client.HTTPConnection('127.0.0.1', port, timeout=10)
    try:
        connection.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        for name, value in headers.items():
            connection.putheader(name, value)
        if body:
            connection.putheader('Content-Length', str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def sigv4_headers(method, canonical_uri, canonical_query, host, akid=AKID, secret=SECRET,
                  region=REGION, token=None, amz_date=None, payload_hash=EMPTY_SHA256,
                  extra=None):
    """A from-scratch SigV4 signer that signs exactly the canonical URI and query given.

    Signs host, x-amz-date, x-amz-content-sha256 (unless payload_hash is None), the token
    and `extra`; returns the headers to send, Authorization included.
    """
    amz_date = amz_date or time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())
    headers = {'host': host, 'x-amz-date': amz_date, **(extra or {})}
    if payload_hash is not None:
        headers['x-amz-content-sha256'] = payload_hash
    if token is not None:
        headers['x-amz-security-token'] = token
    names = sorted(headers)
    signed = ';'.join(names)
    canonical_request = '\n'.join(
        [method, canonical_uri, canonical_query,
         ''.join(f'{name}:{headers[name].strip()}\n' for name in names), signed,
         payload_hash or EMPTY_SHA256])
    scope = f'{amz_date[:8]}/{region}/s3/aws4_request'
    string_to_sign = '\n'.join(['AWS4-HMAC-SHA256', amz_date, scope,
                                hashlib.sha256(canonical_request.encode()).hexdigest()])
    key = f'AWS4{secret}'.encode()
    for part in (amz_date[:8], region, 's3', 'aws4_request'):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    headers['authorization'] = (f'AWS4-HMAC-SHA256 Credential={akid}/{scope}, '
                                f'SignedHeaders={signed}, Signature={signature}')
    return headers


def manual_request(port, method, path, query='', signed_path=None, signed_query=None,
                   host=None, **signer_args):
    """Send `path`?`query` as given, signed by sigv4_headers over `signed_path` and
    `signed_query` (by default the path and the sorted query, assumed canonical)."""
    host = host or f'127.0.0.1:{port}'
    if signed_query is None:
        signed_query = '&'.join(sorted(query.split('&'))) if query else ''
    headers = sigv4_headers(method, signed_path or path, signed_query, host, **signer_args)
    return raw_request(port, method, path + (f'?{query}' if query else ''), headers)


def botocore_request(port, method, host, path, query='', region=REGION):
    """Send `path`?`query` (canonically encoded) with this Host header, signed by botocore."""
    target = path + (f'?{query}' if query else '')
    request = botocore.awsrequest.AWSRequest(method=method, url=f'http://{host}{target}',
                                             headers={'Host': host})
    botocore.auth.S3SigV4Auth(botocore.credentials.Credentials(AKID, SECRET), 's3',
                              region).add_auth(request)
    return raw_request(port, method, target, dict(request.headers.items()))


def error_code(body):
    root = ET.fromstring(body)
    return root.findtext('Code'), root


# Listing


@pytest.mark.parametrize('prefix, delimiter', [
    ('', ''), ('', '/'), ('gen/', '/'), ('gen/03/', '/'), ('dir/', '/'), ('uni/', ''),
    ('', '//'), ('', 'ace'), ('percent', '%'), ('x/', '/'), ('no-such-prefix', '/'),
])
def test_paginated_listing(s3, prefix, delimiter):
    kwargs = {'Prefix': prefix} if prefix else {}
    if delimiter:
        kwargs['Delimiter'] = delimiter
    keys, prefixes, pages = list_all(s3, **kwargs)
    expected_keys, expected_prefixes = expected_listing(LIST_KEYS, prefix, delimiter)
    assert keys == expected_keys
    assert prefixes == expected_prefixes
    entries = len(expected_keys) + len(expected_prefixes)
    assert len(pages) == max(1, math.ceil(entries / PAGE_SIZE))
    for page in pages[:-1]:
        assert page['KeyCount'] == PAGE_SIZE and page['IsTruncated']
    assert not pages[-1]['IsTruncated'] and 'NextContinuationToken' not in pages[-1]
    assert pages[0]['Prefix'] == prefix
    assert pages[0].get('Delimiter', '') == delimiter


def test_listing_is_in_utf8_byte_order(s3):
    keys, _, _ = list_all(s3, Prefix='uni/')
    # U+FB00 sorts before U+1F600 in UTF-8 (and code point) order, after it in UTF-16.
    assert keys == ['uni/\ufb00', 'uni/\U0001f600']


def test_listing_entries(s3):
    page = s3.list_objects_v2(Bucket='list-bucket', Prefix='dir/', MaxKeys=1000)
    item = page['Contents'][0]
    assert item['Key'] == 'dir/'
    assert item['Size'] == len(b'dir/')
    assert item['ETag'] == '"%s"' % hashlib.md5(b'dir/').hexdigest()
    assert item['StorageClass'] == 'STANDARD'
    assert abs(item['LastModified'].timestamp() - time.time()) < 600
    assert page['MaxKeys'] == 1000 and page['KeyCount'] == 3


@pytest.mark.parametrize('start_after, delimiter', [
    ('flat-100', ''), ('gen/05/', '/'), ('gen/05/obj-041', '/'), ('a', '/'), ('\U0001f600', ''),
])
def test_start_after(s3, start_after, delimiter):
    kwargs = {'Delimiter': delimiter} if delimiter else {}
    keys, prefixes, pages = list_all(s3, StartAfter=start_after, **kwargs)
    assert (keys, prefixes) == expected_listing(LIST_KEYS, '', delimiter, start_after)
    assert pages[0]['StartAfter'] == start_after


def test_max_keys(s3):
    page = s3.list_objects_v2(Bucket='list-bucket', MaxKeys=0)
    assert page['KeyCount'] == 0 and not page['IsTruncated'] and 'Contents' not in page
    page = s3.list_objects_v2(Bucket='list-bucket', MaxKeys=3, Delimiter='/')
    assert page['KeyCount'] == 3 and page['IsTruncated'] and page['MaxKeys'] == 3
    expected_keys, expected_prefixes = expected_listing(LIST_KEYS, '', '/')
    first_three = utf8_order(expected_keys + expected_prefixes)[:3]
    assert utf8_order([item['Key'] for item in page.get('Contents', [])]
                      + [item['Prefix'] for item in page.get('CommonPrefixes', [])]) \
        == first_three
    status, error, _ = error_of(s3.list_objects_v2, Bucket='list-bucket', MaxKeys=-1)
    assert (status, error['Code']) == (400, 'InvalidArgument')


def test_continuation_token_resumes_after_common_prefix(s3):
    first = s3.list_objects_v2(Bucket='list-bucket', Prefix='gen/', Delimiter='/', MaxKeys=1)
    assert [item['Prefix'] for item in first['CommonPrefixes']] == ['gen/00/']
    second = s3.list_objects_v2(Bucket='list-bucket', Prefix='gen/', Delimiter='/', MaxKeys=1,
                                ContinuationToken=first['NextContinuationToken'])
    assert [item['Prefix'] for item in second['CommonPrefixes']] == ['gen/01/']
    assert second['ContinuationToken'] == first['NextContinuationToken']


def test_listing_errors(s3):
    status, error, _ = error_of(s3.list_objects_v2, Bucket='list-bucket',
                                ContinuationToken='garbage!!')
    assert (status, error['Code']) == (400, 'InvalidArgument')
    status, error, _ = error_of(s3.list_objects_v2, Bucket='list-bucket', EncodingType='bogus')
    assert (status, error['Code']) == (400, 'InvalidArgument')
    status, error, _ = error_of(s3.list_objects_v2, Bucket='no-such-bucket')
    assert (status, error['Code'], error['BucketName']) == (404, 'NoSuchBucket',
                                                            'no-such-bucket')
    status, error, _ = error_of(s3.list_objects, Bucket='list-bucket')
    assert (status, error['Code']) == (501, 'NotImplemented')


def test_raw_listing_escapes_xml(port):
    status, headers, body = manual_request(port, 'GET', '/list-bucket',
                                           'list-type=2&prefix=%3Cxml%3E')
    assert status == 200 and headers['Content-Type'] == 'application/xml'
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns=')
    root = ET.fromstring(body)
    assert root.findtext('s3:Prefix', namespaces=NS) == '<xml>'
    assert [key.text for key in root.iterfind('s3:Contents/s3:Key', NS)] == ['<xml>&amp;']
    assert root.find('s3:EncodingType', NS) is None
    assert b'&quot;' in body


def test_raw_listing_url_encoding(port):
    status, _, body = manual_request(
        port, 'GET', '/list-bucket',
        'list-type=2&prefix=a%2Bb%20&delimiter=%20&start-after=a&encoding-type=url')
    assert status == 200
    root = ET.fromstring(body)
    # S3 encodes a space as '+' and a plus as %2B (quote_plus with '/' safe).
    assert root.findtext('s3:Prefix', namespaces=NS) == 'a%2Bb+'
    assert root.findtext('s3:Delimiter', namespaces=NS) == '+'
    assert root.findtext('s3:StartAfter', namespaces=NS) == 'a'
    assert root.findtext('s3:EncodingType', namespaces=NS) == 'url'
    assert [key.text for key in root.iterfind('s3:Contents/s3:Key', NS)] == ['a%2Bb+c']


def test_keys_that_are_not_utf8(port, control):
    key = b'bin/\xff\x00end'
    control.put('test-bucket', key, b'binary key')
    status, _, body = manual_request(port, 'GET', '/test-bucket',
                                     'list-type=2&prefix=bin%2F&encoding-type=url')
    assert status == 200
    root = ET.fromstring(body)
    assert [item.text for item in root.iterfind('s3:Contents/s3:Key', NS)] == ['bin/%FF%00end']
    assert manual_request(port, 'GET', '/test-bucket/bin/%FF%00end')[2] == b'binary key'
    status, _, body = manual_request(port, 'GET', '/test-bucket', 'list-type=2&prefix=%FF')
    assert (status, error_code(body)[0]) == (400, 'InvalidArgument')


# Objects


def test_special_keys_round_trip(s3, control):
    control.reset()
    for key in SPECIAL_KEYS:
        response = s3.get_object(Bucket='list-bucket', Key=key)
        assert response['Body'].read() == key.encode(), key
    # botocore sent the dot segments and doubled slashes untouched.
    paths = {entry['path'] for entry in control.stats()['log']}
    assert {'/list-bucket/a//b', '/list-bucket/../x', '/list-bucket/x/./y'} <= paths


def test_get_object(s3):
    response = s3.get_object(Bucket='test-bucket', Key=OBJECT_KEY)
    assert response['Body'].read() == OBJECT
    assert response['ContentLength'] == len(OBJECT)
    assert response['ETag'] == '"%s"' % hashlib.md5(OBJECT).hexdigest()
    assert response['ContentType'] == 'application/octet-stream'
    assert response['AcceptRanges'] == 'bytes'
    headers = response['ResponseMetadata']['HTTPHeaders']
    assert headers['server'] == 'irsafs-test-s3' and headers['x-amz-request-id']
    assert 'x-amz-storage-class' not in headers


@pytest.mark.parametrize('header, first, last', [
    ('bytes=0-0', 0, 0), ('bytes=10-19', 10, 19), ('bytes=-5', 995, 999),
    ('bytes=990-', 990, 999), ('bytes=900-5000', 900, 999), ('bytes=-5000', 0, 999),
    ('bytes=999-999', 999, 999),
])
def test_get_range(s3, header, first, last):
    response = s3.get_object(Bucket='test-bucket', Key=OBJECT_KEY, Range=header)
    assert response['ResponseMetadata']['HTTPStatusCode'] == 206
    assert response['ContentRange'] == f'bytes {first}-{last}/1000'
    assert response['ContentLength'] == last - first + 1
    assert response['Body'].read() == OBJECT[first:last + 1]


@pytest.mark.parametrize('key, header, size', [
    (OBJECT_KEY, 'bytes=1000-', 1000), (OBJECT_KEY, 'bytes=5000-6000', 1000),
    (OBJECT_KEY, 'bytes=-0', 1000), ('empty', 'bytes=0-0', 0), ('empty', 'bytes=-1', 0),
    ('empty', 'bytes=0-', 0),
])
def test_unsatisfiable_range(s3, key, header, size):
    status, error, headers = error_of(s3.get_object, Bucket='test-bucket', Key=key,
                                      Range=header)
    assert (status, error['Code']) == (416, 'InvalidRange')
    assert headers['content-range'] == f'bytes */{size}'


@pytest.mark.parametrize('header', ['bytes=abc', 'bytes=0-1,3-4', 'bytes=5-2', 'items=0-1'])
def test_ignored_range(s3, header):
    response = s3.get_object(Bucket='test-bucket', Key=OBJECT_KEY, Range=header)
    assert response['ResponseMetadata']['HTTPStatusCode'] == 200
    assert response['Body'].read() == OBJECT


def test_conditional_get(s3):
    etag = s3.head_object(Bucket='test-bucket', Key=OBJECT_KEY)['ETag']
    status, error, _ = error_of(s3.get_object, Bucket='test-bucket', Key=OBJECT_KEY,
                                IfMatch='"0123456789abcdef0123456789abcdef"')
    assert (status, error['Code']) == (412, 'PreconditionFailed')
    for if_match in (etag, '*', etag.strip('"')):
        assert s3.get_object(Bucket='test-bucket', Key=OBJECT_KEY,
                             IfMatch=if_match)['Body'].read() == OBJECT
    status, _, headers = error_of(s3.get_object, Bucket='test-bucket', Key=OBJECT_KEY,
                                  IfNoneMatch=etag)
    assert status == 304 and headers['etag'] == etag
    response = s3.get_object(Bucket='test-bucket', Key=OBJECT_KEY, IfMatch=etag,
                             Range='bytes=1-2')
    assert response['Body'].read() == OBJECT[1:3]


def test_head_object(s3, port):
    response = s3.head_object(Bucket='test-bucket', Key=OBJECT_KEY)
    assert response['ContentLength'] == 1000
    assert response['ETag'] == '"%s"' % hashlib.md5(OBJECT).hexdigest()
    status, error, _ = error_of(s3.head_object, Bucket='test-bucket', Key='missing')
    assert (status, error['Code']) == (404, '404')
    status, headers, body = manual_request(port, 'HEAD', '/test-bucket/missing')
    assert (status, headers['Content-Length'], body) == (404, '0', b'')
    status, headers, body = manual_request(port, 'HEAD', '/test-bucket/obj/data.bin')
    assert (status, headers['Content-Length'], body) == (200, '1000', b'')


def test_missing_key_and_bucket(s3):
    status, error, _ = error_of(s3.get_object, Bucket='test-bucket', Key='no/such key')
    assert (status, error['Code'], error['Key']) == (404, 'NoSuchKey', 'no/such key')
    status, error, _ = error_of(s3.get_object, Bucket='no-such-bucket', Key='x')
    assert (status, error['Code']) == (404, 'NoSuchBucket')
    assert s3.head_bucket(Bucket='test-bucket')['ResponseMetadata']['HTTPHeaders'][
        'x-amz-bucket-region'] == REGION
    status, _, _ = error_of(s3.head_bucket, Bucket='no-such-bucket')
    assert status == 404


def test_archived_object(s3, control):
    control.put('test-bucket', 'archive/cold', b'frozen', storage_class='GLACIER')
    status, error, _ = error_of(s3.get_object, Bucket='test-bucket', Key='archive/cold')
    assert (status, error['Code'], error['StorageClass']) == (403, 'InvalidObjectState',
                                                              'GLACIER')
    assert error['Message'] == "The operation is not valid for the object's storage class"
    assert s3.head_object(Bucket='test-bucket', Key='archive/cold')['StorageClass'] == 'GLACIER'
    page = s3.list_objects_v2(Bucket='test-bucket', Prefix='archive/')
    assert page['Contents'][0]['StorageClass'] == 'GLACIER'


def test_last_modified(s3, control):
    control.put('test-bucket', 'dated', b'x', mtime=1700000000)
    assert s3.head_object(Bucket='test-bucket', Key='dated')['LastModified'].timestamp() \
        == 1700000000
    page = s3.list_objects_v2(Bucket='test-bucket', Prefix='dated')
    assert page['Contents'][0]['LastModified'].timestamp() == 1700000000


def test_unsupported_operations(s3):
    status, error, _ = error_of(s3.put_object, Bucket='test-bucket', Key='new', Body=b'x')
    assert (status, error['Code']) == (405, 'MethodNotAllowed')
    status, error, _ = error_of(s3.delete_object, Bucket='test-bucket', Key=OBJECT_KEY)
    assert (status, error['Code']) == (405, 'MethodNotAllowed')
    status, error, _ = error_of(s3.list_buckets)
    assert (status, error['Code']) == (501, 'NotImplemented')


# Virtual-hosted addressing (raw requests: <bucket>.localhost need not resolve here)


@pytest.mark.parametrize('host', ['test-bucket.localhost', 'test-bucket.s3.localhost',
                                  'test-bucket.s3.us-east-1.localhost'])
def test_virtual_hosted(port, host):
    host = f'{host}:{port}'
    status, _, body = botocore_request(port, 'GET', host, '/obj/data.bin')
    assert (status, body) == (200, OBJECT)
    status, headers, body = raw_request(
        port, 'GET', '/obj/data.bin',
        sigv4_headers('GET', '/obj/data.bin', '', host, extra={'range': 'bytes=-3'}))
    assert (status, headers['Content-Range'], body) == (206, 'bytes 997-999/1000', OBJECT[-3:])
    status, headers, _ = botocore_request(port, 'HEAD', host, '/obj/data.bin')
    assert (status, headers['Content-Length']) == (200, '1000')
    status, _, body = botocore_request(port, 'GET', host, '/', 'list-type=2&prefix=obj%2F')
    assert status == 200
    assert [key.text for key in ET.fromstring(body).iterfind('s3:Contents/s3:Key', NS)] \
        == [OBJECT_KEY]
    # The whole path is the key: '//lead' is the key '/lead' (no slash collapsing).
    assert botocore_request(port, 'GET', host, '//lead')[2] == b'leading slash'
    status, _, body = botocore_request(port, 'GET', host, '/missing')
    assert (status, error_code(body)[0]) == (404, 'NoSuchKey')


def test_virtual_hosted_missing_bucket(port):
    status, _, body = botocore_request(port, 'GET', f'nope.localhost:{port}', '/key')
    code, root = error_code(body)
    assert (status, code, root.findtext('BucketName')) == (404, 'NoSuchBucket', 'nope')


# Authentication


def test_wrong_secret(port):
    s3 = make_client(port, secret='not-the-secret')
    status, error, _ = error_of(s3.get_object, Bucket='test-bucket', Key=OBJECT_KEY)
    assert (status, error['Code']) == (403, 'SignatureDoesNotMatch')
    assert error['CanonicalRequest'].startswith('GET\n/test-bucket/obj/data.bin\n\n')
    assert error['StringToSign'].startswith('AWS4-HMAC-SHA256\n')
    assert error['AWSAccessKeyId'] == AKID


def test_unknown_key(port):
    status, error, _ = error_of(make_client(port, akid='AKIDUNKNOWN').get_object,
                                Bucket='test-bucket', Key=OBJECT_KEY)
    assert (status, error['Code']) == (403, 'InvalidAccessKeyId')


def test_wrong_region(port):
    status, headers, body = botocore_request(port, 'GET', f'127.0.0.1:{port}',
                                             '/test-bucket/obj/data.bin', region='eu-west-1')
    code, root = error_code(body)
    assert (status, code, root.findtext('Region')) == (400, 'AuthorizationHeaderMalformed',
                                                       REGION)
    assert root.findtext('Message') == ("The authorization header is malformed; the region "
                                        "'eu-west-1' is wrong; expecting 'us-east-1'")
    assert headers['x-amz-bucket-region'] == REGION


def test_wrong_region_is_redirected_by_botocore(port, control):
    # botocore's region redirector understands the error and retries in us-east-1.
    control.reset()
    s3 = make_client(port, region='eu-west-1')
    assert s3.get_object(Bucket='test-bucket', Key=OBJECT_KEY)['Body'].read() == OBJECT
    assert [entry['status'] for entry in control.stats()['log']] == [400, 200]


def test_session_token(port):
    s3 = make_client(port, SESSION_AKID, SESSION_SECRET, SESSION_TOKEN)
    assert s3.get_object(Bucket='test-bucket', Key=OBJECT_KEY)['Body'].read() == OBJECT
    for token in (None, 'wrong-token'):
        s3 = make_client(port, SESSION_AKID, SESSION_SECRET, token)
        status, error, _ = error_of(s3.get_object, Bucket='test-bucket', Key=OBJECT_KEY)
        assert (status, error['Code']) == (403, 'InvalidToken')
        assert error['Message'] == 'The provided token is malformed or otherwise invalid.'
    # A token sent with a credential that has none is refused too.
    status, _, body = manual_request(port, 'GET', '/test-bucket/obj/data.bin', token='x')
    assert (status, error_code(body)[0]) == (403, 'InvalidToken')


def test_manual_signer_agrees(port):
    status, _, body = manual_request(port, 'GET', '/test-bucket/obj/data.bin')
    assert (status, body) == (200, OBJECT)
    status, _, body = manual_request(port, 'GET', '/test-bucket/obj/data.bin',
                                     payload_hash='UNSIGNED-PAYLOAD')
    assert (status, body) == (200, OBJECT)
    status, _, body = manual_request(port, 'GET', '/test-bucket/obj/data.bin',
                                     token=SESSION_TOKEN, akid=SESSION_AKID,
                                     secret=SESSION_SECRET)
    assert (status, body) == (200, OBJECT)
    # Signed headers a generic SigV4 signer would drop are honoured.
    status, _, body = manual_request(port, 'GET', '/test-bucket/obj/data.bin',
                                     extra={'user-agent': 'irsafs/1.0', 'range': 'bytes=0-1'})
    assert (status, body) == (206, OBJECT[:2])


@pytest.mark.parametrize('path, signed_path, expected', [
    # The server re-encodes canonically, whatever the client sent on the wire.
    ('/list-bucket/caf%c3%a9', '/list-bucket/caf%C3%A9', 200),
    ('/list-bucket/caf%c3%a9', '/list-bucket/caf%c3%a9', 403),
    ('/list-bucket/caf%C3%A9', '/list-bucket/caf\u00e9', 403),
    ('/list-bucket/with%20space', '/list-bucket/with space', 403),
    ('/list-bucket/with%20space', '/list-bucket/with+space', 403),
    ('/list-bucket/tilde%7E', '/list-bucket/tilde~', 200),
    ('/list-bucket/tilde~', '/list-bucket/tilde%7E', 403),
    ('/list-bucket/star*', '/list-bucket/star%2A', 200),
    ('/list-bucket/star*', '/list-bucket/star*', 403),
    ('/list-bucket/a%2F%2Fb', '/list-bucket/a//b', 200),
    ('/list-bucket/a//b', '/list-bucket/a/b', 403),
    ('/list-bucket/../x', '/x', 403),
    ('/list-bucket/../x', '/list-bucket/..%2Fx', 403),
    ('/list-bucket/plus%2Bsign', '/list-bucket/plus+sign', 403),
    ('/list-bucket/plus+sign', '/list-bucket/plus%2Bsign', 200),
])
def test_path_signature_canonicalisation(port, path, signed_path, expected):
    status, _, body = manual_request(port, 'GET', path, signed_path=signed_path)
    assert status == expected
    if expected == 403:
        assert error_code(body)[0] == 'SignatureDoesNotMatch'


@pytest.mark.parametrize('query, signed_query, expected', [
    ('list-type=2&prefix=with%20space', 'list-type=2&prefix=with%20space', 200),
    ('list-type=2&prefix=with%20space', 'list-type=2&prefix=with+space', 403),
    ('prefix=a+b&list-type=2', 'list-type=2&prefix=a%2Bb', 200),
    ('prefix=a+b&list-type=2', 'list-type=2&prefix=a%20b', 403),
    ('prefix=dir/&list-type=2', 'list-type=2&prefix=dir%2F', 200),
    ('prefix=dir%2F&list-type=2', 'prefix=dir%2F&list-type=2', 403),
    ('list-type=2&prefix=%7e', 'list-type=2&prefix=~', 200),
    ('list-type=2&prefix=caf%C3%A9', 'list-type=2&prefix=caf%c3%a9', 403),
])
def test_query_signature_canonicalisation(port, query, signed_query, expected):
    status, _, body = manual_request(port, 'GET', '/list-bucket', query,
                                     signed_query=signed_query)
    assert status == expected
    if expected == 403:
        assert error_code(body)[0] == 'SignatureDoesNotMatch'


def test_authentication_errors(port):
    path = '/test-bucket/obj/data.bin'
    host = f'127.0.0.1:{port}'
    status, _, body = raw_request(port, 'GET', path, {'Host': host})
    assert (status, error_code(body)[0]) == (403, 'AccessDenied')
    status, _, body = raw_request(port, 'GET', path, {
        'Host': host, 'Authorization': 'AWS4-HMAC-SHA256 nonsense',
        'x-amz-date': time.strftime('%Y%m%dT%H%M%SZ', time.gmtime()),
        'x-amz-content-sha256': EMPTY_SHA256})
    assert (status, error_code(body)[0]) == (400, 'AuthorizationHeaderMalformed')
    stale = time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(time.time() - 20 * 60))
    status, _, body = manual_request(port, 'GET', path, amz_date=stale)
    assert (status, error_code(body)[0]) == (403, 'RequestTimeTooSkewed')
    status, _, body = manual_request(port, 'GET', path, payload_hash=None)
    assert (status, error_code(body)[0]) == (400, 'InvalidRequest')
    status, _, body = manual_request(port, 'GET', path,
                                     payload_hash=hashlib.sha256(b'other').hexdigest())
    assert (status, error_code(body)[0]) == (400, 'XAmzContentSHA256Mismatch')
    headers = sigv4_headers('GET', path, '', host)
    headers['x-amz-meta-extra'] = 'unsigned'
    status, _, body = raw_request(port, 'GET', path, headers)
    code, root = error_code(body)
    assert (status, code, root.findtext('HeadersNotSigned')) == (403, 'AccessDenied',
                                                                 'x-amz-meta-extra')
    headers = sigv4_headers('GET', path, '', host)
    headers['authorization'] = headers['authorization'].replace('/s3/', '/sts/')
    status, _, body = raw_request(port, 'GET', path, headers)
    assert (status, error_code(body)[0]) == (400, 'AuthorizationHeaderMalformed')


# Statistics and the control API


def test_stats(s3, port, control):
    control.reset()
    s3.list_objects_v2(Bucket='test-bucket', Prefix='obj/')
    s3.get_object(Bucket='test-bucket', Key=OBJECT_KEY, Range='bytes=0-9')
    s3.get_object(Bucket='test-bucket', Key=OBJECT_KEY)
    s3.head_object(Bucket='test-bucket', Key=OBJECT_KEY)
    s3.head_bucket(Bucket='test-bucket')
    error_of(make_client(port, secret='wrong').get_object, Bucket='test-bucket', Key='x')
    control.put('test-bucket', 'control-not-counted', b'x')
    stats = control.stats()
    assert stats['requests'] == {'ListObjectsV2': 1, 'GetObject': 3, 'HeadObject': 1,
                                 'HeadBucket': 1}
    assert stats['statuses'] == {'200': 4, '206': 1, '403': 1}
    assert stats['auth_failures'] == 1
    log = stats['log']
    assert [entry['op'] for entry in log] == ['ListObjectsV2', 'GetObject', 'GetObject',
                                              'HeadObject', 'HeadBucket', 'GetObject']
    assert log[1] == {'op': 'GetObject', 'method': 'GET', 'path': '/test-bucket/obj/data.bin',
                      'query': '', 'status': 206, 'range': 'bytes=0-9', 'if_match': None,
                      'bytes': 10}
    assert log[0]['query'].startswith('list-type=2')
    assert log[2]['bytes'] == 1000 and log[3]['bytes'] == 0
    assert stats['bytes_sent'] == sum(entry['bytes'] for entry in log)
    control.reset()
    assert control.stats() == {'requests': {}, 'statuses': {}, 'auth_failures': 0,
                               'bytes_sent': 0, 'log': []}


def test_control_put_replace_delete(s3, control):
    first = control.put('test-bucket', 'replace/me', b'one')
    assert first == '"%s"' % hashlib.md5(b'one').hexdigest()
    second = control.put('test-bucket', b'replace/me', 'two!')
    assert second != first
    response = s3.get_object(Bucket='test-bucket', Key='replace/me')
    assert (response['ETag'], response['Body'].read()) == (second, b'two!')
    status, error, _ = error_of(s3.get_object, Bucket='test-bucket', Key='replace/me',
                                IfMatch=first)
    assert (status, error['Code']) == (412, 'PreconditionFailed')
    assert control.delete('test-bucket', 'replace/me') is True
    assert control.delete('test-bucket', 'replace/me') is False
    status, error, _ = error_of(s3.get_object, Bucket='test-bucket', Key='replace/me')
    assert (status, error['Code']) == (404, 'NoSuchKey')


def test_control_creates_buckets_and_bulk_data(s3, control):
    assert control.bulk('new-bucket', [{'key': 'seeded', 'size': 4096, 'seed': 7},
                                       {'key_b64': 'YS9i', 'data_b64': 'aGk='}]) == 2
    assert s3.get_object(Bucket='new-bucket', Key='seeded')['Body'].read() \
        == s3server.make_data(4096, 7)
    assert s3.get_object(Bucket='new-bucket', Key='a/b')['Body'].read() == b'hi'
    assert control.bulk('empty-bucket', []) == 0
    assert s3.list_objects_v2(Bucket='empty-bucket')['KeyCount'] == 0


def test_control_errors(control):
    with pytest.raises(RuntimeError, match='400'):
        control.call('PUT', 'object', [('bucket', 'test-bucket')])
    with pytest.raises(RuntimeError, match='404'):
        control.call('GET', 'nothing')
    with pytest.raises(RuntimeError, match='400'):
        control.config(page_size=0)


def test_config_page_size(s3, control):
    assert control.config(page_size=50) == {'page_size': 50, 'ignore_encoding_type': False}
    try:
        _, _, pages = list_all(s3, Prefix='flat-')
        assert [page['KeyCount'] for page in pages] == [50, 50, 50]
    finally:
        control.config(page_size=PAGE_SIZE)


def test_make_data_is_reproducible():
    data = s3server.make_data(100, 'seed')
    assert data == hashlib.shake_256(b'irsafs:seed').digest(100)
    assert s3server.make_data(5, 1) == s3server.make_data(5, '1') != s3server.make_data(5, 2)
    assert s3server.make_data(0, 1) == b''


# Connection handling


def test_keep_alive_and_dropped_connections(main_server, control):
    proc, port = main_server
    control.put('test-bucket', 'big', s3server.make_data(8 << 20, 'big'))
    path = '/test-bucket/big'
    headers = sigv4_headers('GET', path, '', f'127.0.0.1:{port}')
    request = f'GET {path} HTTP/1.1\r\n' + ''.join(f'{k}: {v}\r\n' for k, v in headers.items())
    for _ in range(3):
        with socket.create_connection(('127.0.0.1', port)) as sock:
            sock.sendall((request + '\r\n').encode())
            assert sock.recv(100).startswith(b'HTTP/1.1 200 OK')
    connection = http.client.HTTPConnection('127.0.0.1', port, timeout=10)
    try:
        for first in (0, 1, 2):
            range_headers = sigv4_headers('GET', path, '', f'127.0.0.1:{port}',
                                          extra={'range': f'bytes={first}-{first}'})
            connection.request('GET', path, headers=range_headers)
            response = connection.getresponse()
            assert response.read() == s3server.make_data(8 << 20, 'big')[first:first + 1]
            assert response.getheader('Connection') is None
    finally:
        connection.close()
    assert control.delete('test-bucket', 'big')
    assert 'Traceback' not in s3server.server_stderr(proc)


# Other servers


def test_ignore_encoding_type():
    proc, port = s3server.start_server(['--ignore-encoding-type'])
    try:
        control = s3server.Control(port)
        keys = ['a+b c', 'caf\u00e9', 'percent%41']
        control.bulk('test-bucket', [{'key': key, 'data': b''} for key in keys])
        status, _, body = manual_request(port, 'GET', '/test-bucket',
                                         'list-type=2&encoding-type=url')
        root = ET.fromstring(body)
        assert status == 200 and root.find('s3:EncodingType', NS) is None
        assert [key.text for key in root.iterfind('s3:Contents/s3:Key', NS)] == keys
        # botocore decodes only when the response says EncodingType=url.
        assert list_all_in(make_client(port), 'test-bucket') == keys
        assert control.config(ignore_encoding_type=False)['ignore_encoding_type'] is False
        _, _, body = manual_request(port, 'GET', '/test-bucket', 'list-type=2&encoding-type=url')
        assert ET.fromstring(body).findtext('s3:EncodingType', namespaces=NS) == 'url'
        assert list_all_in(make_client(port), 'test-bucket') == keys
    finally:
        s3server.stop_server(proc)


def list_all_in(s3, bucket):
    pages = s3.get_paginator('list_objects_v2').paginate(Bucket=bucket)
    return [item['Key'] for page in pages for item in page.get('Contents', [])]


def test_dir_option_and_port_file(tmp_path):
    root = tmp_path / 'tree'
    (root / 'sub' / 'deeper').mkdir(parents=True)
    (root / 'top.txt').write_bytes(b'top')
    (root / 'sub' / 'deeper' / 'file with space').write_bytes(b'deep')
    (root / 'caf\u00e9').write_bytes(b'')
    (root / 'link').symlink_to(root / 'top.txt')
    port_file = tmp_path / 'port.json'
    proc, port = s3server.start_server(['--dir', str(root), '--bucket', 'first',
                                        '--bucket', 'second', '--region', 'eu-west-1',
                                        '--port-file', str(port_file)])
    try:
        assert json.loads(port_file.read_text()) == {'port': port}
        s3 = make_client(port, region='eu-west-1')
        assert list_all_in(s3, 'first') == ['caf\u00e9', 'sub/deeper/file with space',
                                            'top.txt']
        assert list_all_in(s3, 'second') == []
        assert s3.get_object(Bucket='first', Key='sub/deeper/file with space')['Body'].read() \
            == b'deep'
    finally:
        assert s3server.stop_server(proc) == 0


@pytest.mark.parametrize('signum', [signal.SIGTERM, signal.SIGINT])
def test_clean_exit_on_signal(signum):
    proc, port = s3server.start_server(['--verbose'])
    try:
        assert manual_request(port, 'GET', '/test-bucket/missing')[0] == 404
        proc.send_signal(signum)
        assert proc.wait(5) == 0
        assert 'GET /test-bucket/missing' in s3server.server_stderr(proc)
    finally:
        s3server.stop_server(proc)


def test_no_auth_and_startup_failure():
    proc, port = s3server.start_server(['--no-auth'])
    try:
        status, _, _ = raw_request(port, 'GET', '/test-bucket/missing', {'Host': 'x'})
        assert status == 404
        status, _, body = raw_request(port, 'GET', '/test-bucket?list-type=2', {'Host': 'x'})
        assert status == 200 and b'<KeyCount>0</KeyCount>' in body
    finally:
        s3server.stop_server(proc)
    with pytest.raises(RuntimeError, match='AKID:SECRET'):
        s3server.start_server(['--credentials', 'no-colon'])
    assert subprocess.run([sys.executable, s3server.__file__, '--help'],
                          capture_output=True, check=True).stdout.startswith(b'usage:')


# S3 fault injection

FAULT_KEY = 'faults/object.bin'
FAULT_SIZE = 300_000
FAULT_DATA = s3server.make_data(FAULT_SIZE, 'faults')


@pytest.fixture(scope='module', name='fault_server')
def fixture_fault_server():
    """A server of its own for fault rules, as (proc, port, control); rules are cleared and
    statistics reset around every test that uses it."""
    proc, port = s3server.start_server(['--bucket', 'test-bucket', '--bucket', 'other-bucket'])
    try:
        control = s3server.Control(port)
        control.bulk('test-bucket', [{'key': FAULT_KEY, 'size': FAULT_SIZE, 'seed': 'faults'},
                                     {'key': 'plain/object', 'data': b'plain'},
                                     {'key': 'empty', 'data': b''}])
        control.bulk('other-bucket', [{'key': FAULT_KEY, 'data': b'other'}])
        yield proc, port, control
    finally:
        s3server.stop_server(proc)
    assert 'Traceback' not in s3server.server_stderr(proc)


@pytest.fixture(name='faulty')
def fixture_faulty(fault_server):
    _, port, control = fault_server
    control.clear_faults()
    control.reset()
    yield port, control
    control.clear_faults()


def open_get(port, key, bucket='test-bucket', byte_range=None, method='GET', timeout=10):
    """Send one signed request on a raw socket; return the socket (the caller reads)."""
    path = f'/{bucket}/{key}'
    extra = {'range': byte_range} if byte_range else {}
    headers = sigv4_headers(method, path, '', f'127.0.0.1:{port}', extra=extra)
    sock = socket.create_connection(('127.0.0.1', port), timeout=timeout)
    request = f'{method} {path} HTTP/1.1\r\n' + ''.join(f'{k}: {v}\r\n'
                                                        for k, v in headers.items())
    sock.sendall((request + '\r\n').encode())
    return sock


def read_raw_response(sock, head_only=False):
    """Read a response off a raw socket until the body is complete, the peer closes or an
    error; return (status or None, headers dict (lower-case names), body, error or None)."""
    data, error = b'', None
    try:
        while b'\r\n\r\n' not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return None, {}, b'', None
            data += chunk
    except OSError as failure:
        return None, {}, b'', failure
    head, _, body = data.partition(b'\r\n\r\n')
    lines = head.decode('latin-1').split('\r\n')
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(':')
        headers[name.strip().lower()] = value.strip()
    length = 0 if head_only else int(headers.get('content-length', '0'))
    try:
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
    except OSError as failure:
        error = failure
    return status, headers, body, error


def test_fault_rules_are_validated(faulty):
    _, control = faulty
    for bad in ([{'action': 'explode'}], [{'op': 'PutObject'}], [{'count': -2}],
                [{'count': 'many'}], [{'action': 'reset', 'status': 500}],
                [{'status': 200}], [{'action': 'stall', 'seconds': -1}],
                [{'after_bytes': -5, 'action': 'truncate'}], [{'colour': 'red'}],
                [{'action': 'wrong_range', 'shift': 0}], {'not': 'a list'}, ['x']):
        with pytest.raises(RuntimeError, match='400'):
            control.post_json('faults', bad)
    assert control.fault_rules() == []
    rule = control.fault(op='GetObject', code='SlowDown', count=2, name='slow')
    assert (rule['action'], rule['status'], rule['message']) == \
        ('error', 503, 'Please reduce your request rate.')
    assert (rule['remaining'], rule['fired'], rule['name']) == (2, 0, 'slow')
    assert control.stats()['faults'] == [rule]
    assert control.clear_faults() == 1
    assert 'faults' not in control.stats()


@pytest.mark.parametrize('code, status', [
    ('InternalError', 500), ('SlowDown', 503), ('RequestTimeout', 400),
    ('AccessDenied', 403), ('NoSuchKey', 404), ('InvalidObjectState', 403)])
def test_injected_errors(faulty, code, status):
    port, control = faulty
    control.fault(op='GetObject', code=code, count=2)
    s3 = make_client(port)
    for _ in range(2):
        got_status, error, headers = error_of(s3.get_object, Bucket='test-bucket',
                                              Key=FAULT_KEY)
        assert (got_status, error['Code']) == (status, code)
        assert headers['x-amz-request-id']
    assert s3.get_object(Bucket='test-bucket', Key=FAULT_KEY)['Body'].read() == FAULT_DATA
    stats = control.stats()
    assert [entry.get('fault') for entry in stats['log']] == [0, 0, None]
    assert [entry['status'] for entry in stats['log']] == [status, status, 200]
    assert (stats['faults'][0]['fired'], stats['faults'][0]['remaining']) == (2, 0)


def test_injected_error_with_custom_status_message_and_headers(faulty):
    port, control = faulty
    control.fault(op='HeadBucket', status=301, code='PermanentRedirect', message='go away',
                  headers={'x-amz-bucket-region': 'eu-west-1'})
    status, headers, _ = manual_request(port, 'HEAD', '/test-bucket')
    assert (status, headers['x-amz-bucket-region']) == (301, 'eu-west-1')
    control.fault(op='ListObjectsV2', status=500, code='Mystery', message='custom words')
    status, _, body = manual_request(port, 'GET', '/test-bucket', 'list-type=2')
    code, root = error_code(body)
    assert (status, code, root.findtext('Message')) == (500, 'Mystery', 'custom words')


def test_fault_matching(faulty):
    """op, bucket, prefix, skip and count select the requests; the first rule that applies
    wins; requests failing authentication are never faulted."""
    port, control = faulty
    control.faults([
        {'op': 'HeadObject', 'code': 'InternalError', 'count': -1, 'name': 'heads'},
        {'op': 'GetObject', 'bucket': 'other-bucket', 'code': 'SlowDown', 'count': -1},
        {'op': 'GetObject', 'prefix': 'faults/', 'code': 'AccessDenied', 'skip': 1,
         'count': 2},
        {'op': 'ListObjectsV2', 'prefix': 'faults/', 'code': 'InternalError', 'count': 1},
        {'op': 'any', 'prefix': 'plain/', 'code': 'ServiceUnavailable', 'count': 1},
    ])
    s3 = make_client(port)
    assert error_of(s3.head_object, Bucket='test-bucket', Key='plain/object')[0] == 500
    assert error_of(s3.get_object, Bucket='other-bucket', Key=FAULT_KEY)[0] == 503
    assert s3.get_object(Bucket='test-bucket', Key=FAULT_KEY)['Body'].read() == FAULT_DATA
    for _ in range(2):
        assert error_of(s3.get_object, Bucket='test-bucket', Key=FAULT_KEY)[0] == 403
    assert s3.get_object(Bucket='test-bucket', Key=FAULT_KEY)['Body'].read() == FAULT_DATA
    # 'any' with prefix plain/ applies to a listing whose prefix parameter starts with it.
    assert error_of(s3.list_objects_v2, Bucket='test-bucket', Prefix='plain/')[0] == 503
    assert s3.list_objects_v2(Bucket='test-bucket', Prefix='plain/')['KeyCount'] == 1
    assert s3.list_objects_v2(Bucket='test-bucket', Prefix='other/')['KeyCount'] == 0
    assert error_of(s3.list_objects_v2, Bucket='test-bucket', Prefix='faults/x')[0] == 500
    assert s3.list_objects_v2(Bucket='test-bucket', Prefix='faults/')['KeyCount'] == 1
    # Refused by authentication: not faulted, not counted.
    assert error_of(make_client(port, secret='wrong').get_object, Bucket='other-bucket',
                    Key=FAULT_KEY)[1]['Code'] == 'SignatureDoesNotMatch'
    rules = control.fault_rules()
    assert [(rule['fired'], rule['matched'], rule['remaining']) for rule in rules] == [
        (1, 1, -1), (1, 1, -1), (2, 3, 0), (1, 1, 0), (1, 1, 0)]
    assert [entry.get('fault') for entry in control.stats()['log']] == [
        0, 1, None, 2, 2, None, 4, None, None, 3, None, None]
    control.reset()
    assert [rule['fired'] for rule in control.fault_rules()] == [0, 0, 0, 0, 0]
    assert [rule['remaining'] for rule in control.fault_rules()] == [-1, -1, 0, 0, 0]


def test_fault_min_bytes(faulty):
    """min_bytes picks GETs by the size of their Range (no bounded Range always qualifies)."""
    port, control = faulty
    control.fault(op='GetObject', code='SlowDown', min_bytes=1000, count=-1)
    s3 = make_client(port)
    assert s3.get_object(Bucket='test-bucket', Key=FAULT_KEY, Range='bytes=0-998')[
        'Body'].read() == FAULT_DATA[:999]
    for byte_range in ('bytes=0-999', 'bytes=5-', 'bytes=-10'):
        assert error_of(s3.get_object, Bucket='test-bucket', Key=FAULT_KEY,
                        Range=byte_range)[0] == 503
    assert error_of(s3.get_object, Bucket='test-bucket', Key=FAULT_KEY)[0] == 503
    assert control.fault_rules()[0]['fired'] == 4


@pytest.mark.parametrize('byte_range, first', [(None, 0), ('bytes=1000-250999', 1000)])
def test_truncate_fault(faulty, byte_range, first):
    """Headers promise the whole body; after_bytes arrive, then a clean close (EOF)."""
    port, control = faulty
    control.fault(op='GetObject', action='truncate', after_bytes=12345)
    with open_get(port, FAULT_KEY, byte_range=byte_range) as sock:
        status, headers, body, error = read_raw_response(sock)
    promised = 250000 if byte_range else FAULT_SIZE
    assert (status, int(headers['content-length']), error) == \
        (206 if byte_range else 200, promised, None)
    assert body == FAULT_DATA[first:first + 12345]
    entry = wait_for_log(control, 1)[-1]
    assert (entry['fault'], entry['bytes'], entry['status']) == (0, 12345, status)
    # The next request is whole again.
    with open_get(port, FAULT_KEY) as sock:
        assert read_raw_response(sock)[2] == FAULT_DATA


def test_truncate_fault_always_cuts_something(faulty):
    port, control = faulty
    control.fault(op='GetObject', action='truncate', after_bytes=10 ** 9)
    with open_get(port, FAULT_KEY, byte_range='bytes=0-99') as sock:
        status, headers, body, _ = read_raw_response(sock)
    assert (status, headers['content-length'], body) == (206, '100', FAULT_DATA[:99])


def test_reset_fault_after_bytes(faulty):
    port, control = faulty
    control.fault(op='GetObject', action='reset', after_bytes=5000)
    with open_get(port, FAULT_KEY) as sock:
        status, headers, body, error = read_raw_response(sock)
    assert (status, headers['content-length']) == (200, str(FAULT_SIZE))
    assert isinstance(error, ConnectionResetError), error
    assert FAULT_DATA.startswith(body) and len(body) <= 5000
    assert wait_for_log(control, 1)[-1]['bytes'] == 5000


@pytest.mark.parametrize('op, method', [('GetObject', 'GET'), ('HeadObject', 'HEAD')])
def test_reset_fault_before_the_response(faulty, op, method):
    port, control = faulty
    control.fault(op=op, action='reset')
    with open_get(port, FAULT_KEY, method=method) as sock:
        status, _, _, error = read_raw_response(sock, head_only=method == 'HEAD')
    assert status is None and isinstance(error, ConnectionResetError), error
    stats = control.stats()
    assert (stats['log'][-1]['status'], stats['log'][-1]['fault']) == (None, 0)
    assert stats['statuses'] == {}


def test_body_faults_cut_a_head_before_its_status_line(faulty):
    port, control = faulty
    control.fault(op='HeadObject', action='truncate', after_bytes=10)
    with open_get(port, FAULT_KEY, method='HEAD') as sock:
        assert read_raw_response(sock, head_only=True) == (None, {}, b'', None)


def test_stall_fault_keeps_the_connection_open(faulty):
    """A stall sends the headers and after_bytes, then nothing, connection open; the server
    notices at once when the client gives up."""
    port, control = faulty
    control.fault(op='GetObject', action='stall', after_bytes=777, seconds=60)
    with open_get(port, FAULT_KEY, timeout=1.5) as sock:
        status, headers, body, error = read_raw_response(sock)
    assert (status, headers['content-length']) == (200, str(FAULT_SIZE))
    assert isinstance(error, TimeoutError) and body == FAULT_DATA[:777], error
    # The client closed: the stalled request ends long before its 60 s.
    assert wait_for_log(control, 1)[-1]['bytes'] == 777


def wait_for_log(control, count, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = control.stats()['log']
        if len(log) >= count:
            return log
        time.sleep(0.05)
    raise AssertionError(f'fewer than {count} requests logged within {timeout} s')


def test_short_stall_then_the_rest(faulty):
    port, control = faulty
    control.fault(op='GetObject', action='stall', after_bytes=1000, seconds=0.5)
    started = time.monotonic()
    with open_get(port, FAULT_KEY, byte_range='bytes=10-20009') as sock:
        status, _, body, error = read_raw_response(sock)
    assert (status, body, error) == (206, FAULT_DATA[10:20010], None)
    assert time.monotonic() - started >= 0.5
    # The server logs a request once it has sent the last byte, which can be after we read it.
    assert wait_for_log(control, 1)[-1]['fault'] == 0


def test_delay_fault_slows_the_first_byte(faulty):
    port, control = faulty
    control.fault(op='GetObject', action='delay', seconds=0.6, count=1)
    s3 = make_client(port)
    started = time.monotonic()
    assert s3.get_object(Bucket='test-bucket', Key=FAULT_KEY)['Body'].read() == FAULT_DATA
    assert time.monotonic() - started >= 0.6
    assert [entry.get('fault') for entry in control.stats()['log']] == [0]


@pytest.mark.parametrize('byte_range, served', [
    ('bytes=0-99', (4096, 4195)), ('bytes=299000-299999', (294904, 295903)),
    ('bytes=-100', (295804, 295903)), (None, (0, FAULT_SIZE - 2))])
def test_wrong_range_fault(faulty, byte_range, served):
    """A 206 whose Content-Range truthfully names other bytes than those asked for."""
    port, control = faulty
    control.fault(op='GetObject', action='wrong_range')
    with open_get(port, FAULT_KEY, byte_range=byte_range) as sock:
        status, headers, body, error = read_raw_response(sock)
    first, last = served
    assert (status, error) == (206, None)
    assert headers['content-range'] == f'bytes {first}-{last}/{FAULT_SIZE}'
    assert body == FAULT_DATA[first:last + 1]


def test_wrong_range_shift(faulty):
    port, control = faulty
    control.fault(op='GetObject', action='wrong_range', shift=-10)
    with open_get(port, FAULT_KEY, byte_range='bytes=100-199') as sock:
        _, headers, body, _ = read_raw_response(sock)
    assert (headers['content-range'], body) == (f'bytes 90-189/{FAULT_SIZE}',
                                                FAULT_DATA[90:190])
    assert s3server.misplaced_span(0, 0, 1, 4096) == (0, 0)


def test_faults_apply_through_a_send_override():
    """A handler subclass that wraps send() (as the benchmark's shaping server does) keeps
    truncation working, and --fault sets rules at start-up."""
    calls = []

    class Wrapping(s3server.S3RequestHandler):
        def send(self, status, headers, body=b''):
            calls.append(status)
            super().send(status, headers, body)

    server = s3server.S3Server(handler_class=Wrapping, s3_faults=[
        {'op': 'GetObject', 'action': 'truncate', 'after_bytes': 3}])
    server.start()
    try:
        server.put_object('test-bucket', b'k', b'0123456789')
        with open_get(server.port, 'k') as sock:
            status, headers, body, _ = read_raw_response(sock)
        assert (status, headers['content-length'], body, calls) == (200, '10', b'012', [200])
    finally:
        server.stop()


def test_fault_command_line_option():
    rules = [{'op': 'GetObject', 'code': 'SlowDown'}]
    proc, port = s3server.start_server(['--fault', json.dumps(rules),
                                        '--fault', '{"op": "HeadBucket", "count": -1}'])
    try:
        control = s3server.Control(port)
        control.put('test-bucket', 'k', b'v')
        assert manual_request(port, 'GET', '/test-bucket/k')[0] == 503
        assert manual_request(port, 'GET', '/test-bucket/k')[0] == 200
        assert [rule['op'] for rule in control.fault_rules()] == ['GetObject', 'HeadBucket']
    finally:
        s3server.stop_server(proc)
    with pytest.raises(RuntimeError, match='action must be one of'):
        s3server.start_server(['--fault', '{"action": "nope"}'])
    with pytest.raises(RuntimeError, match='not JSON'):
        s3server.start_server(['--fault', '{'])


# TLS





def test_tls(tmp_path):
    cert, key = make_certificate(tmp_path)
    other, _ = make_certificate(tmp_path, 'other')
    proc, port = s3server.start_server(['--tls-cert', str(cert), '--tls-key', str(key)])
    try:
        control = s3server.Control(port, cafile=str(cert))
        control.put('test-bucket', 'secure', b'over tls')
        s3 = botocore.session.get_session().create_client(
            's3', endpoint_url=f'https://127.0.0.1:{port}', region_name=REGION,
            aws_access_key_id=AKID, aws_secret_access_key=SECRET, verify=str(cert),
            config=botocore.config.Config(s3={'addressing_style': 'path'},
                                          retries={'total_max_attempts': 1}))
        assert s3.get_object(Bucket='test-bucket', Key='secure')['Body'].read() == b'over tls'
        assert s3server.Control(port, tls=True).stats()['requests'] == {'GetObject': 1}
        # A client that does not trust the certificate, and one speaking plain HTTP.
        with pytest.raises(ssl.SSLCertVerificationError):
            s3server.Control(port, cafile=str(other)).stats()
        with pytest.raises((http.client.HTTPException, ConnectionError)):
            s3server.Control(port, timeout=5).stats()
        stats = control.stats()
        assert stats['tls']['handshakes'] >= 3
        assert any('UNKNOWN_CA' in failure or 'unknown ca' in failure
                   for failure in stats['tls']['failures']), stats['tls']
    finally:
        s3server.stop_server(proc)
    assert 'Traceback' not in s3server.server_stderr(proc)
    with pytest.raises(RuntimeError, match='go together'):
        s3server.start_server(['--tls-cert', str(cert)])
    with pytest.raises(RuntimeError, match='cannot load the TLS certificate'):
        s3server.start_server(['--tls-cert', str(key), '--tls-key', str(key)])


def test_region_can_move_at_run_time():
    proc, port = s3server.start_server([])
    try:
        control = s3server.Control(port)
        control.put('test-bucket', 'k', b'v')
        assert make_client(port).get_object(Bucket='test-bucket', Key='k')['Body'].read() == b'v'
        assert control.set_region('eu-west-1') == 'eu-west-1'
        status, headers, body = manual_request(port, 'GET', '/test-bucket/k')
        code, root = error_code(body)
        assert (status, code, root.findtext('Region'), headers['x-amz-bucket-region']) == \
            (400, 'AuthorizationHeaderMalformed', 'eu-west-1', 'eu-west-1')
        assert make_client(port, region='eu-west-1').get_object(
            Bucket='test-bucket', Key='k')['Body'].read() == b'v'
        with pytest.raises(RuntimeError, match='400'):
            control.set_region('Not A Region')
    finally:
        s3server.stop_server(proc)
