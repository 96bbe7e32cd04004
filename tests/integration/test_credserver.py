"""Self-test of the credential endpoints of tests/s3server.py (STS AssumeRoleWithWebIdentity,
container credentials, IMDSv2) and of how S3 treats the temporary credentials they issue.
Driven by botocore's own credential providers and raw http.client.

Run: cd /work/main && /usr/bin/python3 -m pytest -q tests/integration/test_credserver.py
"""

import base64
import calendar
import hashlib
import http.client
import json
import os
import socket
import sys
import time
import urllib.parse
import xml.etree.ElementTree as ET
from pathlib import Path

import botocore.auth
import botocore.awsrequest
import botocore.config
import botocore.credentials
import botocore.session
import botocore.utils
import pytest
from botocore import UNSIGNED
from botocore.exceptions import ClientError, CredentialRetrievalError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import s3server  # noqa: E402  pylint: disable=wrong-import-position

REGION = 'us-east-1'
BUCKET = 'cred-bucket'
AKID, SECRET = 'AKIDTEST', 'secrettest'
ACCOUNT = '111122223333'
ROLE_ARN = f'arn:aws:iam::{ACCOUNT}:role/irsafs/irsa-role'
OTHER_ROLE_ARN = f'arn:aws:iam::{ACCOUNT}:role/other-role'
SESSION = 'irsafs-test-session'
WEB_TOKEN = 'web-identity-token-1'
CONTAINER_TOKEN = 'container-auth-token-1'
IMDS_ROLE = 'irsafs-test-role'
STS_NS = {'sts': s3server.STS_XMLNS}
# What every test starts from (restored after each test).
DEFAULT_SETTINGS = {'sts_role_arn': ROLE_ARN, 'sts_duration': 3600,
                    'container_credentials': True, 'container_duration': 3600, 'imds': True,
                    'imds_role': IMDS_ROLE, 'imds_duration': 3600}


# Fixtures and helpers


@pytest.fixture(scope='module', autouse=True)
def isolated_aws_env():
    """Keep botocore away from the host's AWS configuration (AWS_CA_BUNDLE may stay: the
    endpoints are plain http)."""
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith('AWS_') and name != 'AWS_CA_BUNDLE':
                patch.delenv(name)
        patch.setenv('AWS_CONFIG_FILE', '/dev/null')
        patch.setenv('AWS_SHARED_CREDENTIALS_FILE', '/dev/null')
        patch.setenv('AWS_EC2_METADATA_DISABLED', 'true')
        yield


@pytest.fixture(scope='module', name='token_dir')
def fixture_token_dir(tmp_path_factory):
    return tmp_path_factory.mktemp('tokens')


@pytest.fixture(scope='module', name='server')
def fixture_server(token_dir):
    """(proc, port) of a server with every credential endpoint enabled and one object."""
    s3server.write_token_file(token_dir / 'web-identity', WEB_TOKEN)
    s3server.write_token_file(token_dir / 'container', CONTAINER_TOKEN)
    proc, port = s3server.start_server([
        '--bucket', BUCKET, '--credentials', f'{AKID}:{SECRET}', '--account-id', ACCOUNT,
        '--sts-token-file', str(token_dir / 'web-identity'), '--sts-role-arn', ROLE_ARN,
        '--container-token-file', str(token_dir / 'container'), '--imds',
        '--imds-role', IMDS_ROLE])
    try:
        s3server.Control(port).put(BUCKET, 'hello.txt', b'hello')
        yield proc, port
    finally:
        s3server.stop_server(proc)
    assert 'Traceback' not in s3server.server_stderr(proc)


@pytest.fixture(name='port')
def fixture_port(server):
    return server[1]


@pytest.fixture(name='control')
def fixture_control(port, token_dir):
    """The control client; the settings, faults and token files are restored afterwards."""
    control = s3server.Control(port)
    yield control
    control.cred_config(sts_token_file=str(token_dir / 'web-identity'),
                        container_token_file=str(token_dir / 'container'), **DEFAULT_SETTINGS)
    for fail in (control.sts_fail, control.container_fail, control.imds_fail):
        fail(0)
    s3server.write_token_file(token_dir / 'web-identity', WEB_TOKEN)
    s3server.write_token_file(token_dir / 'container', CONTAINER_TOKEN)


def client_config(**kwargs):
    settings = {'retries': {'total_max_attempts': 1}, 'connect_timeout': 5, 'read_timeout': 10}
    settings.update(kwargs)
    return botocore.config.Config(**settings)


def s3_client(port, akid=AKID, secret=SECRET, token=None):
    return botocore.session.get_session().create_client(
        's3', endpoint_url=f'http://127.0.0.1:{port}', region_name=REGION,
        aws_access_key_id=akid, aws_secret_access_key=secret, aws_session_token=token,
        config=client_config(s3={'addressing_style': 'path'}, signature_version='s3v4'))


def s3_with(port, credentials):
    """An S3 client signing with a botocore Credentials object (refreshable or not)."""
    session = botocore.session.get_session()
    session.get_component('credential_provider').insert_before(
        'env', FixedProvider(credentials))
    return session.create_client(
        's3', endpoint_url=f'http://127.0.0.1:{port}', region_name=REGION,
        config=client_config(s3={'addressing_style': 'path'}, signature_version='s3v4'))


class FixedProvider(botocore.credentials.CredentialProvider):
    METHOD = 'fixed-for-test'
    CANONICAL_NAME = 'FixedForTest'

    def __init__(self, credentials):
        super().__init__()
        self.credentials = credentials

    def load(self):
        return self.credentials


def client_creator(port, **settings):
    """A botocore client_creator (as credential providers take) that sends every client to
    the test server; `settings` are Config settings (retries, timeouts)."""
    def create(service, config=None, **kwargs):
        base = client_config(**settings)
        return botocore.session.get_session().create_client(
            service, endpoint_url=f'http://127.0.0.1:{port}', region_name=REGION,
            config=base.merge(config) if config else base, **kwargs)
    return create


def web_identity_fetcher(port, token_path, role_arn=ROLE_ARN, **settings):
    return botocore.credentials.AssumeRoleWithWebIdentityCredentialFetcher(
        client_creator(port, **settings),
        botocore.utils.FileWebIdentityTokenLoader(str(token_path)), role_arn,
        extra_args={'RoleSessionName': SESSION})


def sts_client(port, **settings):
    """An unsigned STS client, as botocore's web identity fetcher makes."""
    return client_creator(port, **settings)('sts', config=botocore.config.Config(
        signature_version=UNSIGNED))


def list_keys(s3):
    return [item['Key'] for item in s3.list_objects_v2(Bucket=BUCKET).get('Contents', [])]


def s3_error(call, *args, **kwargs):
    """Call a botocore operation expected to fail; return (HTTP status, code, message)."""
    with pytest.raises(ClientError) as info:
        call(*args, **kwargs)
    response = info.value.response
    return (response['ResponseMetadata']['HTTPStatusCode'], response['Error']['Code'],
            response['Error'].get('Message'))


def request(port, method, path, headers=None, body=b'', timeout=10):
    """Send one raw request; return (status, headers, body)."""
    connection = http.client.HTTPConnection('127.0.0.1', port, timeout=timeout)
    try:
        connection.request(method, path, body, headers or {})
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def sts_params(**overrides):
    params = {'Action': 'AssumeRoleWithWebIdentity', 'Version': '2011-06-15',
              'RoleArn': ROLE_ARN, 'RoleSessionName': SESSION, 'WebIdentityToken': WEB_TOKEN}
    params.update(overrides)
    return {name: value for name, value in params.items() if value is not None}


def raw_sts(port, headers=None, **overrides):
    """POST AssumeRoleWithWebIdentity by hand; return (status, headers, body)."""
    body = urllib.parse.urlencode(sts_params(**overrides)).encode()
    return request(port, 'POST', '/', {
        'Content-Type': 'application/x-www-form-urlencoded; charset=utf-8',
        **(headers or {})}, body)


def sts_error(body):
    """(Type, Code, Message, RequestId) of an STS ErrorResponse."""
    root = ET.fromstring(body)
    assert root.tag == f'{{{s3server.STS_XMLNS}}}ErrorResponse'
    error = root.find('sts:Error', STS_NS)
    return tuple(error.findtext(f'sts:{name}', namespaces=STS_NS)
                 for name in ('Type', 'Code', 'Message')) + (
        root.findtext('sts:RequestId', namespaces=STS_NS),)


def assert_sts_error(response, status, code, message=None):
    got_status, headers, body = response
    kind, got_code, got_message, request_id = sts_error(body)
    assert (got_status, got_code) == (status, code), body
    assert kind == ('Sender' if status < 500 else 'Receiver')
    assert headers['Content-Type'] == 'text/xml'
    assert request_id and headers['x-amzn-RequestId'] == request_id
    if message is not None:
        assert message in got_message, got_message
    return got_message


def sts_credentials(body):
    """The Credentials of a successful response, as a dict."""
    root = ET.fromstring(body)
    credentials = root.find('sts:AssumeRoleWithWebIdentityResult/sts:Credentials', STS_NS)
    return {child.tag.split('}')[1]: child.text for child in credentials}


def expiry_epoch(text):
    return calendar.timegm(time.strptime(text, '%Y-%m-%dT%H:%M:%SZ'))


def sleep_until(epoch):
    """Sleep until the wall clock has passed `epoch` (plus a margin)."""
    time.sleep(max(0.0, epoch - time.time()) + 0.3)


def fake_jwt(claims):
    def part(value):
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip('=')
    return f'{part({"alg": "RS256", "kid": "test"})}.{part(claims)}.c2lnbmF0dXJl'


# STS: success, with botocore's own fetcher and clients


def test_botocore_web_identity_fetcher_gets_credentials_that_list(port, control, token_dir):
    control.reset()
    before = time.time()
    credentials = web_identity_fetcher(port, token_dir / 'web-identity').fetch_credentials()
    assert credentials['access_key'].startswith('ASIA') and len(credentials['access_key']) == 20
    assert len(credentials['secret_key']) == 40
    assert len(credentials['token']) > 300
    expires = expiry_epoch(credentials['expiry_time'].replace('+00:00', 'Z'))
    assert before + 3600 - 5 <= expires <= time.time() + 3600 + 5
    s3 = s3_client(port, credentials['access_key'], credentials['secret_key'],
                   credentials['token'])
    assert list_keys(s3) == ['hello.txt']
    stats = control.stats()
    assert stats['requests'] == {'AssumeRoleWithWebIdentity': 1, 'ListObjectsV2': 1}
    [issued] = stats['credentials']['issued']
    assert issued['access_key_id'] == credentials['access_key']
    assert (issued['source'], issued['role_arn'], issued['session_name']) == (
        'sts', ROLE_ARN, SESSION)
    assert issued['expired'] is False and issued['revoked'] is None
    assert control.s3_requests() == {'ListObjectsV2': 1}


def test_unsigned_sts_client_parses_the_response(port):
    result = sts_client(port).assume_role_with_web_identity(
        RoleArn=ROLE_ARN, RoleSessionName=SESSION, WebIdentityToken=WEB_TOKEN,
        DurationSeconds=900)
    assert result['AssumedRoleUser']['Arn'] == \
        f'arn:aws:sts::{ACCOUNT}:assumed-role/irsa-role/{SESSION}'
    assert result['AssumedRoleUser']['AssumedRoleId'].startswith('AROA')
    assert result['AssumedRoleUser']['AssumedRoleId'].endswith(f':{SESSION}')
    assert result['Audience'] == 'sts.amazonaws.com'
    assert result['SubjectFromWebIdentityToken'] == s3server.DEFAULT_SUBJECT
    credentials = result['Credentials']
    # The lifetime the server was given wins over DurationSeconds.
    remaining = credentials['Expiration'].timestamp() - time.time()
    assert 3600 - 10 < remaining <= 3600
    s3 = s3_client(port, credentials['AccessKeyId'], credentials['SecretAccessKey'],
                   credentials['SessionToken'])
    assert list_keys(s3) == ['hello.txt']


def test_response_document_looks_like_sts(port):
    status, headers, body = raw_sts(port)
    assert status == 200 and headers['Content-Type'] == 'text/xml'
    root = ET.fromstring(body)
    assert root.tag == f'{{{s3server.STS_XMLNS}}}AssumeRoleWithWebIdentityResponse'
    result = root.find('sts:AssumeRoleWithWebIdentityResult', STS_NS)
    names = [child.tag.split('}')[1] for child in result]
    assert set(names) == {'SubjectFromWebIdentityToken', 'Audience', 'AssumedRoleUser',
                          'Credentials', 'Provider'}
    order = [child.tag.split('}')[1] for child in result.find('sts:Credentials', STS_NS)]
    assert sorted(order) == ['AccessKeyId', 'Expiration', 'SecretAccessKey', 'SessionToken']
    assert order != sorted(order), 'Credentials must not be in alphabetical order'
    credentials = sts_credentials(body)
    assert credentials['AccessKeyId'].startswith('ASIA')
    assert time.strptime(credentials['Expiration'], '%Y-%m-%dT%H:%M:%SZ')
    request_id = root.findtext('sts:ResponseMetadata/sts:RequestId', namespaces=STS_NS)
    assert request_id == headers['x-amzn-RequestId']
    # Session tokens contain characters that must be encoded or signed with care.
    assert {'+', '/'} <= set(credentials['SessionToken'])


def test_jwt_claims_fill_subject_audience_and_provider(port, control, token_dir):
    token = fake_jwt({'sub': 'system:serviceaccount:ns:sa', 'aud': ['sts.amazonaws.com'],
                      'iss': 'https://oidc.eks.us-east-1.amazonaws.com/id/ABC',
                      'exp': int(time.time()) + 86400})
    s3server.write_token_file(token_dir / 'web-identity', token)
    result = sts_client(port).assume_role_with_web_identity(
        RoleArn=ROLE_ARN, RoleSessionName=SESSION, WebIdentityToken=token)
    assert result['SubjectFromWebIdentityToken'] == 'system:serviceaccount:ns:sa'
    assert result['Audience'] == 'sts.amazonaws.com'
    assert result['Provider'] == \
        f'arn:aws:iam::{ACCOUNT}:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABC'


# STS: the token file


def test_token_rotation_by_atomic_rename(port, control, token_dir):
    path = token_dir / 'web-identity'
    assert raw_sts(port)[0] == 200
    s3server.write_token_file(path, 'web-identity-token-2')
    # The old token is now refused as expired; the new one is accepted at once.
    assert_sts_error(raw_sts(port), 400, 'ExpiredTokenException', 'Token expired')
    assert raw_sts(port, WebIdentityToken='web-identity-token-2')[0] == 200
    # botocore's loader reads the file on every fetch, so it follows the rotation.
    fetcher = web_identity_fetcher(port, path)
    assert fetcher.fetch_credentials()['access_key'].startswith('ASIA')
    # A token never seen in the file is invalid rather than expired.
    assert_sts_error(raw_sts(port, WebIdentityToken='never-issued'), 400,
                     'InvalidIdentityToken', 'Incorrect token audience')


def test_kubelet_style_symlink_swap_is_followed(port, control, token_dir):
    """Kubelet writes a new timestamped directory and renames ``..data`` over the old
    link; the token path is a symlink through ``..data``."""
    base = token_dir / 'projected'
    base.mkdir()
    for name, token in (('..2026_01', 'projected-1'), ('..2026_02', 'projected-2')):
        (base / name).mkdir()
        (base / name / 'token').write_text(token)
    os.symlink('..2026_01', base / '..data')
    os.symlink('..data/token', base / 'token')
    control.cred_config(sts_token_file=str(base / 'token'))
    assert raw_sts(port, WebIdentityToken='projected-1')[0] == 200
    os.symlink('..2026_02', base / '..data_tmp')
    os.replace(base / '..data_tmp', base / '..data')
    assert raw_sts(port, WebIdentityToken='projected-2')[0] == 200
    assert_sts_error(raw_sts(port, WebIdentityToken='projected-1'), 400,
                     'ExpiredTokenException')


def test_wrong_or_unreadable_token(port, control, token_dir):
    message = assert_sts_error(raw_sts(port, WebIdentityToken='wrong-token'), 400,
                               'InvalidIdentityToken')
    assert 'wrong-token' not in message
    status, code, _ = s3_error(sts_client(port).assume_role_with_web_identity,
                               RoleArn=ROLE_ARN, RoleSessionName=SESSION,
                               WebIdentityToken='wrong-token')
    assert (status, code) == (400, 'InvalidIdentityToken')
    # A trailing newline in the file does not matter.
    (token_dir / 'web-identity').write_text(WEB_TOKEN + '\n')
    assert raw_sts(port)[0] == 200
    control.cred_config(sts_token_file=str(token_dir / 'missing'))
    assert_sts_error(raw_sts(port), 400, 'InvalidIdentityToken', 'cannot read')


# STS: request validation


@pytest.mark.parametrize('overrides, fragment', [
    ({'RoleArn': 'arn:aws:iam::1234:role/x'}, "at 'roleArn'"),
    ({'RoleArn': 'arn:aws:iam::123456789012:user/x'}, "at 'roleArn'"),
    ({'RoleArn': 'arn:aws:s3:::bucket'}, "at 'roleArn'"),
    ({'RoleArn': 'arn:aws:iam::123456789012:role/'}, "at 'roleArn'"),
    ({'RoleArn': None}, "Value null at 'roleArn'"),
    ({'RoleSessionName': 'a'}, 'greater than or equal to 2'),
    ({'RoleSessionName': 'x' * 65}, 'less than or equal to 64'),
    ({'RoleSessionName': 'has space'}, 'regular expression pattern'),
    ({'RoleSessionName': 'slash/no'}, 'regular expression pattern'),
    ({'RoleSessionName': 'caf\u00e9'}, 'regular expression pattern'),
    ({'RoleSessionName': None}, "Value null at 'roleSessionName'"),
    ({'WebIdentityToken': None}, "Value null at 'webIdentityToken'"),
    ({'DurationSeconds': '899'}, 'greater than or equal to 900'),
    ({'DurationSeconds': '43201'}, 'less than or equal to 43200'),
    ({'DurationSeconds': 'abc'}, 'must be an integer'),
])
def test_validation_errors(port, overrides, fragment):
    message = assert_sts_error(raw_sts(port, **overrides), 400, 'ValidationError', fragment)
    assert message.startswith('1 validation error detected: ')


def test_several_validation_errors_are_counted(port):
    message = assert_sts_error(raw_sts(port, RoleArn='bad', RoleSessionName='a'), 400,
                               'ValidationError')
    assert message.startswith('2 validation errors detected: ')


@pytest.mark.parametrize('overrides', [
    {'RoleSessionName': 'ab'}, {'RoleSessionName': 'x' * 64},
    {'RoleSessionName': 'w+=,.@-_9'}, {'DurationSeconds': '900'},
    {'DurationSeconds': '43200'},
])
def test_valid_edge_cases_are_accepted(port, overrides):
    assert raw_sts(port, **overrides)[0] == 200


def test_role_restriction(port, control):
    assert_sts_error(raw_sts(port, RoleArn=OTHER_ROLE_ARN), 403, 'AccessDenied',
                     'Not authorized to perform sts:AssumeRoleWithWebIdentity')
    control.cred_config(sts_role_arn=None)
    for role_arn in (OTHER_ROLE_ARN, 'arn:aws-cn:iam::123456789012:role/a/b/c'):
        status, _, body = raw_sts(port, RoleArn=role_arn)
        assert status == 200, body
    arn = ET.fromstring(body).findtext(
        'sts:AssumeRoleWithWebIdentityResult/sts:AssumedRoleUser/sts:Arn', namespaces=STS_NS)
    assert arn == f'arn:aws-cn:sts::123456789012:assumed-role/c/{SESSION}'


def test_signed_requests_are_refused(port, control):
    # botocore never signs AssumeRoleWithWebIdentity (its model says authtype none), so sign
    # one by hand with botocore's SigV4 signer, as a buggy client might.
    body = urllib.parse.urlencode(sts_params())
    aws_request = botocore.awsrequest.AWSRequest(
        method='POST', url=f'http://127.0.0.1:{port}/', data=body,
        headers={'Content-Type': 'application/x-www-form-urlencoded; charset=utf-8'})
    botocore.auth.SigV4Auth(botocore.credentials.Credentials(AKID, SECRET), 'sts',
                            REGION).add_auth(aws_request)
    headers = dict(aws_request.headers.items())
    assert headers['Authorization'].startswith('AWS4-HMAC-SHA256 ')
    message = assert_sts_error(request(port, 'POST', '/', headers, body.encode()), 400,
                               'InvalidParameterValue', 'unsigned')
    assert 'Authorization' in message
    assert_sts_error(raw_sts(port, headers={'X-Amz-Security-Token': 'x'}), 400,
                     'InvalidParameterValue', 'X-Amz-Security-Token')
    assert_sts_error(raw_sts(port, **{'X-Amz-Signature': 'ab12'}), 400,
                     'InvalidParameterValue', 'X-Amz-Signature')
    assert_sts_error(request(port, 'POST', '/?X-Amz-Credential=x',
                             {'Content-Type': 'application/x-www-form-urlencoded'},
                             urllib.parse.urlencode(sts_params()).encode()),
                     400, 'InvalidParameterValue', 'X-Amz-Credential')


def test_protocol_errors(port, control):
    control.reset()
    query = urllib.parse.urlencode(sts_params())
    assert_sts_error(request(port, 'GET', f'/?{query}'), 400, 'InvalidAction', 'POST')
    assert_sts_error(raw_sts(port, Version='2011-06-14'), 400, 'InvalidAction', '2011-06-14')
    assert_sts_error(raw_sts(port, Version=None), 400, 'InvalidAction')
    assert_sts_error(raw_sts(port, Action='GetCallerIdentity'), 400, 'InvalidAction')
    assert_sts_error(raw_sts(port, Action=None), 400, 'MissingAction')
    body = urllib.parse.urlencode(sts_params()).encode()
    assert_sts_error(request(port, 'POST', '/', {'Content-Type': 'text/plain'}, body), 400,
                     'InvalidParameterValue', 'x-www-form-urlencoded')
    requests = control.stats()['requests']
    assert requests == {'AssumeRoleWithWebIdentity': 4, 'STSOther': 2}, requests


def test_form_encoding_round_trip(port, control, token_dir):
    """In a form body '+' is a space and %2B a plus: a token holding both must be encoded
    by the client (botocore does it right)."""
    token = 'tok+en with/space='
    s3server.write_token_file(token_dir / 'web-identity', token)
    base = ('Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn='
            + urllib.parse.quote(ROLE_ARN, safe='') + f'&RoleSessionName={SESSION}'
            + '&WebIdentityToken=')
    headers = {'Content-Type': 'application/x-www-form-urlencoded'}
    good = (base + urllib.parse.quote_plus(token)).encode()
    assert request(port, 'POST', '/', headers, good)[0] == 200
    unencoded_plus = (base + token.replace(' ', '+')).encode()
    assert request(port, 'POST', '/', headers, unencoded_plus)[0] == 400
    result = sts_client(port).assume_role_with_web_identity(
        RoleArn=ROLE_ARN, RoleSessionName=SESSION, WebIdentityToken=token)
    assert result['Credentials']['AccessKeyId'].startswith('ASIA')


# STS: injected failures and slowness


def test_injected_failures(port, control):
    control.reset()
    control.sts_fail(2, 400, 'Throttling')
    assert_sts_error(raw_sts(port), 400, 'Throttling', 'Rate exceeded')
    # An injected failure wins even over a malformed request.
    assert_sts_error(raw_sts(port, RoleSessionName='a'), 400, 'Throttling')
    assert raw_sts(port)[0] == 200
    control.sts_fail(1, 500, 'InternalFailure', message='boom')
    assert_sts_error(raw_sts(port), 500, 'InternalFailure', 'boom')
    control.sts_fail(1, 400, 'IDPCommunicationError')
    assert_sts_error(raw_sts(port), 400, 'IDPCommunicationError')
    stats = control.stats()
    assert stats['credentials']['injected_failures'] == {'sts': 4, 'container': 0, 'imds': 0}
    assert stats['requests'] == {'AssumeRoleWithWebIdentity': 5}
    assert stats['statuses'] == {'400': 3, '500': 1, '200': 1}


def test_botocore_retries_an_injected_503(port, control, token_dir):
    control.sts_fail(1)
    fetcher = web_identity_fetcher(port, token_dir / 'web-identity',
                                   retries={'mode': 'standard', 'total_max_attempts': 3})
    control.reset()
    assert fetcher.fetch_credentials()['access_key'].startswith('ASIA')
    stats = control.stats()
    assert [entry['status'] for entry in stats['log']] == [503, 200]
    assert stats['credentials']['injected_failures']['sts'] == 1
    # Without retries the failure reaches the caller.
    control.sts_fail(1, 503, 'ServiceUnavailable')
    status, code, _ = s3_error(sts_client(port).assume_role_with_web_identity,
                               RoleArn=ROLE_ARN, RoleSessionName=SESSION,
                               WebIdentityToken=WEB_TOKEN)
    assert (status, code) == (503, 'ServiceUnavailable')


def test_slow_sts(port, control):
    control.sts_fail(0, delay=1.0)
    start = time.monotonic()
    assert raw_sts(port)[0] == 200
    assert time.monotonic() - start >= 0.9
    # A client with a short read timeout gives up; the server shrugs it off.
    with pytest.raises((socket.timeout, TimeoutError)):
        request(port, 'POST', '/', {'Content-Type': 'application/x-www-form-urlencoded'},
                urllib.parse.urlencode(sts_params()).encode(), timeout=0.3)
    assert control.sts_fail(0)['delay'] == 0
    assert raw_sts(port)[0] == 200


def test_fail_first_option_and_runtime_enabling(tmp_path):
    """A server started with --sts-fail-first but no token file serves S3 only (POST / is
    an unsigned S3 request); enabling STS at run time then shows the first call failing and
    the next one succeeding, as a retrying client at mount time would see."""
    s3server.write_token_file(tmp_path / 'token', WEB_TOKEN)
    proc, port = s3server.start_server(['--sts-fail-first', '1', '--bucket', BUCKET])
    try:
        control = s3server.Control(port)
        status, _, body = raw_sts(port)
        assert status == 403 and b'<Error><Code>AccessDenied</Code>' in body  # from S3
        assert 'credentials' not in control.stats()
        assert control.cred_config(sts_token_file=str(tmp_path / 'token'))[
            'sts_token_file'] == str(tmp_path / 'token')
        assert_sts_error(raw_sts(port), 503, 'ServiceUnavailable')
        assert raw_sts(port)[0] == 200
        stats = control.stats()
        assert stats['credentials']['injected_failures']['sts'] == 1
        assert stats['requests']['AssumeRoleWithWebIdentity'] == 2
    finally:
        s3server.stop_server(proc)
    assert 'Traceback' not in s3server.server_stderr(proc)


# S3 with temporary credentials


def issue(port):
    """Issue an STS credential; return (akid, secret, token, expiry epoch)."""
    status, _, body = raw_sts(port)
    assert status == 200, body
    credentials = sts_credentials(body)
    return (credentials['AccessKeyId'], credentials['SecretAccessKey'],
            credentials['SessionToken'], expiry_epoch(credentials['Expiration']))


def test_expired_credentials_get_expired_token(port, control):
    control.cred_config(sts_duration=2)
    akid, secret, token, expires = issue(port)
    assert expires - time.time() <= 2
    s3 = s3_client(port, akid, secret, token)
    control.reset()
    assert list_keys(s3) == ['hello.txt']
    sleep_until(expires)
    assert s3_error(s3.list_objects_v2, Bucket=BUCKET) == (
        400, 'ExpiredToken', 'The provided token has expired.')
    stats = control.stats()
    assert stats['credentials']['token_rejections'] == {'ExpiredToken': 1, 'InvalidToken': 0}
    assert stats['auth_failures'] == 1
    control.reset()
    assert control.issued() == []


def test_botocore_refreshes_short_lived_credentials(port, control, token_dir, monkeypatch):
    """botocore's AssumeRoleWithWebIdentityProvider, configured from the IRSA environment
    variables, refreshes credentials that expire and keeps listing."""
    control.cred_config(sts_duration=2)
    monkeypatch.setenv('AWS_WEB_IDENTITY_TOKEN_FILE', str(token_dir / 'web-identity'))
    monkeypatch.setenv('AWS_ROLE_ARN', ROLE_ARN)
    monkeypatch.setenv('AWS_ROLE_SESSION_NAME', SESSION)
    provider = botocore.credentials.AssumeRoleWithWebIdentityProvider(
        load_config=lambda: {}, client_creator=client_creator(port), profile_name='default')
    credentials = provider.load()
    control.reset()
    s3 = s3_with(port, credentials)
    assert list_keys(s3) == ['hello.txt']
    first = credentials.get_frozen_credentials()
    sleep_until(expiry_epoch(control.issued()[-1]['expiration']))
    assert list_keys(s3) == ['hello.txt']
    assert credentials.get_frozen_credentials().access_key != first.access_key
    stats = control.stats()
    assert stats['requests']['AssumeRoleWithWebIdentity'] >= 2
    assert stats['credentials']['token_rejections']['ExpiredToken'] == 0
    # The first credential itself has expired.
    old = s3_client(port, first.access_key, first.secret_key, first.token)
    assert s3_error(old.list_objects_v2, Bucket=BUCKET)[:2] == (400, 'ExpiredToken')


def test_s3_checks_the_session_token(port, control):
    akid, secret, token, _ = issue(port)
    control.reset()
    for sent in (None, 'wrong-token', token[:-1]):
        s3 = s3_client(port, akid, secret, sent)
        assert s3_error(s3.list_objects_v2, Bucket=BUCKET) == (
            400, 'InvalidToken', 'The provided token is malformed or otherwise invalid.')
    unknown = s3_client(port, s3server.new_access_key_id(), secret, token)
    assert s3_error(unknown.list_objects_v2, Bucket=BUCKET)[:2] == (403, 'InvalidAccessKeyId')
    assert list_keys(s3_client(port, akid, secret, token)) == ['hello.txt']
    # Static credentials keep working beside temporary ones.
    assert list_keys(s3_client(port)) == ['hello.txt']
    stats = control.stats()
    assert stats['credentials']['token_rejections'] == {'ExpiredToken': 0, 'InvalidToken': 3}
    assert stats['auth_failures'] == 4


def test_unsigned_session_token_header_is_refused(port):
    """The token must be signed: a request signed without it, with the header added
    afterwards, is refused."""
    akid, secret, token, _ = issue(port)
    s3 = s3_client(port, akid, secret)
    s3.meta.events.register('before-send.s3.ListObjectsV2',
                            lambda request, **_: request.headers.__setitem__(
                                'X-Amz-Security-Token', token))
    assert s3_error(s3.list_objects_v2, Bucket=BUCKET)[:2] == (403, 'AccessDenied')


def test_revoke(port, control):
    sts = issue(port)
    container = container_credentials(port)
    sts_s3 = s3_client(port, *sts[:3])
    container_s3 = s3_client(port, container['AccessKeyId'], container['SecretAccessKey'],
                             container['Token'])
    assert list_keys(sts_s3) == list_keys(container_s3) == ['hello.txt']
    control.reset()
    assert control.revoke() >= 2
    for s3 in (sts_s3, container_s3):
        assert s3_error(s3.list_objects_v2, Bucket=BUCKET)[:2] == (400, 'InvalidToken')
    # Credentials issued afterwards work; revoking again can choose the error.
    fresh = s3_client(port, *issue(port)[:3])
    assert list_keys(fresh) == ['hello.txt']
    assert control.revoke('ExpiredToken') == 1
    assert s3_error(fresh.list_objects_v2, Bucket=BUCKET) == (
        400, 'ExpiredToken', 'The provided token has expired.')
    assert control.revoke('AccessDenied') == 0
    stats = control.stats()
    assert stats['credentials']['token_rejections'] == {'ExpiredToken': 1, 'InvalidToken': 2}
    assert [entry['revoked'] for entry in stats['credentials']['issued']] == ['ExpiredToken']


# Container credentials


def container_credentials(port, path='/v1/credentials', token=CONTAINER_TOKEN):
    status, headers, body = request(port, 'GET', path, {'Authorization': token})
    assert status == 200, body
    assert headers['Content-Type'] == 'application/json'
    return json.loads(body)


def container_provider(port, path='/v1/credentials', token=CONTAINER_TOKEN):
    """botocore's ContainerProvider for the server (its retries do not sleep)."""
    return botocore.credentials.ContainerProvider(
        environ={'AWS_CONTAINER_CREDENTIALS_FULL_URI': f'http://127.0.0.1:{port}{path}',
                 'AWS_CONTAINER_AUTHORIZATION_TOKEN': token},
        fetcher=botocore.utils.ContainerMetadataFetcher(sleep=lambda _: None))


def test_botocore_container_provider(port, control):
    control.reset()
    credentials = container_provider(port).load()
    assert credentials.access_key.startswith('ASIA')
    assert list_keys(s3_with(port, credentials)) == ['hello.txt']
    stats = control.stats()
    assert stats['requests'] == {'ContainerCredentials': 1, 'ListObjectsV2': 1}
    assert stats['credentials']['issued'][0]['source'] == 'container'


def test_container_document_and_paths(port, control):
    control.cred_config(container_duration=600)
    for path in ('/v1/credentials', '/__creds/container', '/__creds/any/thing'):
        body = container_credentials(port, path)
        assert list(body) == ['AccessKeyId', 'SecretAccessKey', 'Token', 'AccountId',
                              'Expiration']
        assert body['AccountId'] == ACCOUNT
        assert 590 <= expiry_epoch(body['Expiration']) - time.time() <= 600
    assert request(port, 'POST', '/__creds/container',
                   {'Authorization': CONTAINER_TOKEN})[0] == 405


def test_container_authorization(port, control, token_dir):
    def error(headers):
        status, response_headers, body = request(port, 'GET', '/v1/credentials', headers)
        assert response_headers['Content-Type'] == 'application/json'
        return status, json.loads(body)['Code']
    assert error({}) == (401, 'Unauthorized')
    assert error({'Authorization': 'wrong'}) == (403, 'AccessDenied')
    assert error({'Authorization': f'Bearer {CONTAINER_TOKEN}'}) == (403, 'AccessDenied')
    s3server.write_token_file(token_dir / 'container', 'container-auth-token-2\n')
    assert error({'Authorization': CONTAINER_TOKEN}) == (403, 'AccessDenied')
    assert container_credentials(port, token='container-auth-token-2')
    with pytest.raises(CredentialRetrievalError):
        container_provider(port).load()
    # Without a token file the endpoint answers anyone (ECS relative-URI style).
    control.cred_config(container_token_file=None)
    assert container_credentials(port, token='anything')


def test_container_failures_and_expiry(port, control):
    control.container_fail(1, 500, 'InternalError')
    control.reset()
    credentials = container_provider(port, '/__creds/container').load()  # botocore retries
    assert credentials.access_key.startswith('ASIA')
    stats = control.stats()
    assert [entry['status'] for entry in stats['log']] == [500, 200]
    assert stats['credentials']['injected_failures']['container'] == 1
    control.cred_config(container_duration=1)
    body = container_credentials(port)
    s3 = s3_client(port, body['AccessKeyId'], body['SecretAccessKey'], body['Token'])
    sleep_until(expiry_epoch(body['Expiration']))
    assert s3_error(s3.list_objects_v2, Bucket=BUCKET)[:2] == (400, 'ExpiredToken')


# IMDSv2


def imds_fetcher(port):
    return botocore.utils.InstanceMetadataFetcher(
        timeout=5, num_attempts=1, env={},
        config={'ec2_metadata_service_endpoint': f'http://127.0.0.1:{port}/'})


def imds_token(port, ttl='60'):
    status, headers, body = request(port, 'PUT', '/latest/api/token',
                                    {'X-aws-ec2-metadata-token-ttl-seconds': ttl})
    assert status == 200 and headers['Content-Type'] == 'text/plain'
    assert headers['X-aws-ec2-metadata-token-ttl-seconds'] == ttl
    return body.decode()


def test_botocore_instance_metadata_provider(port, control):
    control.reset()
    credentials = botocore.credentials.InstanceMetadataProvider(imds_fetcher(port)).load()
    assert credentials is not None and credentials.access_key.startswith('ASIA')
    assert list_keys(s3_with(port, credentials)) == ['hello.txt']
    stats = control.stats()
    assert stats['requests'] == {'IMDSToken': 1, 'IMDSRoleName': 1, 'IMDSCredentials': 1,
                                 'ListObjectsV2': 1}
    [issued] = stats['credentials']['issued']
    assert (issued['source'], issued['role_arn']) == (
        'imds', f'arn:aws:iam::{ACCOUNT}:role/{IMDS_ROLE}')


def test_imds_documents(port, control):
    control.cred_config(imds_duration=900)
    token = imds_token(port)
    headers = {'X-aws-ec2-metadata-token': token}
    base = '/latest/meta-data/iam/security-credentials'
    for path in (base + '/', base):
        status, _, body = request(port, 'GET', path, headers)
        assert (status, body) == (200, IMDS_ROLE.encode())
    status, _, body = request(port, 'GET', f'{base}/{IMDS_ROLE}', headers)
    assert status == 200
    document = json.loads(body)
    assert list(document) == ['Code', 'LastUpdated', 'Type', 'AccessKeyId',
                              'SecretAccessKey', 'Token', 'Expiration']
    assert (document['Code'], document['Type']) == ('Success', 'AWS-HMAC')
    assert 890 <= expiry_epoch(document['Expiration']) - time.time() <= 900
    assert abs(expiry_epoch(document['LastUpdated']) - time.time()) < 10
    assert request(port, 'GET', f'{base}/other-role', headers)[0] == 404
    assert request(port, 'GET', '/latest/meta-data/instance-id', headers)[0] == 404
    control.cred_config(imds_role='renamed-role')
    assert request(port, 'GET', base + '/', headers)[2] == b'renamed-role'
    assert request(port, 'GET', f'{base}/{IMDS_ROLE}', headers)[0] == 404
    assert request(port, 'GET', f'{base}/renamed-role', headers)[0] == 200


def test_imds_requires_a_token(port, control):
    base = '/latest/meta-data/iam/security-credentials/'
    for headers in ({}, {'X-aws-ec2-metadata-token': 'bogus'}):
        status, response_headers, body = request(port, 'GET', base, headers)
        assert status == 401 and b'401 - Unauthorized' in body
        assert response_headers['Content-Type'] == 'text/html'
    for ttl in (None, '0', '21601', 'abc', ''):
        headers = {} if ttl is None else {'X-aws-ec2-metadata-token-ttl-seconds': ttl}
        assert request(port, 'PUT', '/latest/api/token', headers)[0] == 400
    assert request(port, 'GET', '/latest/api/token',
                   {'X-aws-ec2-metadata-token-ttl-seconds': '60'})[0] == 405
    assert request(port, 'PUT', '/latest/api/token',
                   {'X-aws-ec2-metadata-token-ttl-seconds': '60',
                    'X-Forwarded-For': '10.0.0.1'})[0] == 403
    assert imds_token(port, '21600')
    short = imds_token(port, '1')
    assert request(port, 'GET', base, {'X-aws-ec2-metadata-token': short})[0] == 200
    time.sleep(1.3)
    assert request(port, 'GET', base, {'X-aws-ec2-metadata-token': short})[0] == 401


def test_imds_failures(port, control):
    control.imds_fail(1, 503)
    control.reset()
    status, _, body = request(port, 'PUT', '/latest/api/token',
                              {'X-aws-ec2-metadata-token-ttl-seconds': '60'})
    assert status == 503 and b'503 - Service Unavailable' in body
    assert imds_token(port)
    stats = control.stats()
    assert stats['credentials']['injected_failures'] == {'sts': 0, 'container': 0, 'imds': 1}
    assert stats['requests'] == {'IMDSToken': 2}


# Statistics and the control API


def test_stats_list_issued_credentials_without_secrets(port, control):
    control.reset()
    sts = issue(port)
    container = container_credentials(port)
    imds = botocore.credentials.InstanceMetadataProvider(imds_fetcher(port)).load()
    stats = control.stats()
    issued = stats['credentials']['issued']
    assert [(entry['access_key_id'], entry['source']) for entry in issued] == [
        (sts[0], 'sts'), (container['AccessKeyId'], 'container'), (imds.access_key, 'imds')]
    for entry in issued:
        assert entry['issued_epoch'] <= time.time() < entry['expires_epoch']
        assert entry['expiration'] == time.strftime('%Y-%m-%dT%H:%M:%SZ',
                                                    time.gmtime(entry['expires_epoch']))
    text = json.dumps(stats)
    for secret in (sts[1], sts[2], container['SecretAccessKey'], container['Token'],
                   imds.secret_key, imds.token):
        assert secret not in text
    assert control.s3_requests() == {}
    assert set(stats['requests']) <= s3server.CREDENTIAL_OPS


def test_secrets_lists_what_was_handed_out_and_received(port, control):
    """The test-only secrets action: every issued credential with its secret and token (even
    after a reset), every IMDS token, every web identity token seen, and the signatures of
    signed S3 requests; the statistics tell which web identity token an STS credential came
    from (by its SHA-256 only)."""
    control.reset()
    sts = issue(port)
    fingerprints = {entry['access_key_id']: entry['web_identity_token_sha256']
                    for entry in control.issued()}
    assert fingerprints == {sts[0]: hashlib.sha256(WEB_TOKEN.encode()).hexdigest()}
    control.reset()
    container = container_credentials(port)
    [issued] = control.issued()
    assert issued['web_identity_token_sha256'] is None
    token = imds_token(port)
    client = s3_with(port, botocore.credentials.Credentials(sts[0], sts[1], sts[2]))
    assert list_keys(client) == ['hello.txt']
    secrets = control.secrets()
    by_akid = {entry['access_key_id']: entry for entry in secrets['credentials']}
    assert by_akid[sts[0]] == {'access_key_id': sts[0], 'secret_access_key': sts[1],
                               'session_token': sts[2], 'source': 'sts'}
    assert by_akid[container['AccessKeyId']]['secret_access_key'] == \
        container['SecretAccessKey']
    assert by_akid[container['AccessKeyId']]['session_token'] == container['Token']
    assert [entry['access_key_id'] for entry in secrets['credentials']][-2:] == \
        [sts[0], container['AccessKeyId']]
    assert token in secrets['imds_tokens']
    assert WEB_TOKEN in secrets['web_identity_tokens']
    assert secrets['signatures'] and all(len(sig) == 64 for sig in secrets['signatures'])
    assert 'secrets' not in json.dumps(control.stats()['requests'])


def test_control_validation(control):
    for call in (lambda: control.cred_config(bogus=1),
                 lambda: control.cred_config(sts_role_arn='not-an-arn'),
                 lambda: control.cred_config(sts_duration='long'),
                 lambda: control.cred_config(imds='yes'),
                 lambda: control.cred_config(account_id='12'),
                 lambda: control.sts_fail(-1),
                 lambda: control.sts_fail(1, status=99),
                 lambda: control.imds_fail(1, delay=-1),
                 lambda: control.revoke('Nope'),
                 lambda: control.call('POST', 'sts-fail', body=b'[1]')):
        with pytest.raises(RuntimeError, match='failed: 400'):
            call()
    settings = control.cred_config()
    assert settings['sts_role_arn'] == ROLE_ARN and settings['imds'] is True
    assert control.sts_fail(3, 400, 'Throttling', delay=0.5) == {
        'count': 3, 'status': 400, 'code': 'Throttling', 'message': None, 'delay': 0.5}


def test_disabled_endpoints_fall_through_to_s3(tmp_path):
    proc, port = s3server.start_server(['--bucket', BUCKET])
    try:
        control = s3server.Control(port)
        status, _, body = request(port, 'PUT', '/latest/api/token',
                                  {'X-aws-ec2-metadata-token-ttl-seconds': '60'})
        assert status == 403 and b'<Error><Code>AccessDenied</Code>' in body
        status, _, body = request(port, 'GET', '/v1/credentials')
        assert status == 403 and b'<Code>AccessDenied</Code>' in body
        # The server counts a request once its response is sent: give it a moment.
        want = {'Unsupported': 1, 'GetObject': 1}
        deadline = time.monotonic() + 5
        while control.stats()['requests'] != want and time.monotonic() < deadline:
            time.sleep(0.02)
        stats = control.stats()
        assert 'credentials' not in stats and stats['requests'] == want
        control.cred_config(imds=True, container_credentials=True)
        assert imds_token(port)
        assert container_credentials(port, token='')
        assert 'credentials' in control.stats()
    finally:
        s3server.stop_server(proc)
    assert 'Traceback' not in s3server.server_stderr(proc)
