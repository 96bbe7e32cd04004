#!/usr/bin/env python3
"""A local S3-compatible HTTP server for irsafs tests, demos and benchmarks, with the AWS
credential endpoints irsafs can use (STS AssumeRoleWithWebIdentity, container credentials,
IMDSv2) on the same port.

Run it with Debian's interpreter (it needs python3-botocore)::

    /usr/bin/python3 tests/s3server.py [--host H] [--port N] [--port-file PATH]
        [--region R] [--bucket NAME]... [--dir DIR]
        [--credentials AKID:SECRET[:SESSION_TOKEN]]... [--page-size N]
        [--ignore-encoding-type] [--no-auth] [--verbose] [--account-id ACCT]
        [--sts-token-file PATH] [--sts-role-arn ARN] [--sts-duration S]
        [--sts-fail-first N] [--sts-delay S]
        [--container-credentials] [--container-token-file PATH] [--container-duration S]
        [--container-fail-first N] [--container-delay S]
        [--imds] [--imds-role NAME] [--imds-duration S] [--imds-fail-first N] [--imds-delay S]
        [--fault JSON]... [--tls-cert FILE --tls-key FILE]

Once listening it prints exactly one line, ``{"port": N}``, to stdout (and writes the same line
to ``--port-file``). It logs requests to stderr only with ``--verbose`` and exits cleanly on
SIGTERM or SIGINT. Objects live in memory; the default bucket is ``test-bucket``, the default
credential ``AKIDTEST:secrettest``, the default region ``us-east-1``.

TLS: with ``--tls-cert FILE --tls-key FILE`` (PEM; the certificate file may hold a chain) the
port speaks HTTPS only, control API included (``Control(port, tls=True)`` or
``Control(port, cafile=CERT)``); without them, plain HTTP only. Each connection's handshake runs
in its own thread; the statistics then have ``"tls": {"handshakes": n, "failures": [..]}``
(completed handshakes, and the error of each one that failed, e.g. a client that does not
trust the certificate: ``SSLError: [SSL: TLSV1_ALERT_UNKNOWN_CA] ...``). A test certificate::

    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
        -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout key.pem -out cert.pem

S3 side (read-only, AWS Signature V4 in the Authorization header on every request):

* Addressing: path-style ``/<bucket>/<key>``, or virtual-hosted when the Host header (minus
  port) is ``<bucket>.localhost`` or ``<bucket>.s3[.<region>].localhost``. The key is the
  percent-decoded path (``%XX`` only; ``+`` is literal); it is never normalised, so ``a//b``,
  ``../x``, ``%00`` and bytes that are not UTF-8 all work.
* Authentication: the signature is recomputed with botocore's S3SigV4Auth from the decoded
  request, re-encoded canonically, so a client's own URL encoding cannot hide a signing bug.
  Errors follow S3: AccessDenied, AuthorizationHeaderMalformed (with ``<Region>`` and
  ``x-amz-bucket-region`` for a wrong region), InvalidAccessKeyId, InvalidToken,
  RequestTimeTooSkewed (15 minutes), InvalidRequest, XAmzContentSHA256Mismatch, and
  SignatureDoesNotMatch carrying the ``<CanonicalRequest>`` and ``<StringToSign>`` expected.
  Query parameters must be UTF-8 once decoded (S3 keys are; a key stored through the control
  API that is not UTF-8 can still be listed and fetched, but not used as a prefix).
* Credentials: the static ``--credentials`` (a wrong or missing session token gives
  403 InvalidToken, as before), and the temporary credentials the credential endpoints below
  issue. A temporary credential must send its session token in ``x-amz-security-token``,
  signed (unsigned: 403 AccessDenied); a missing or wrong token gives 400 InvalidToken "The
  provided token is malformed or otherwise invalid."; once past its Expiration (the whole
  second the client was told) 400 ExpiredToken "The provided token has expired."; after
  ``/__irsafs/revoke`` 400 InvalidToken (S3's answer to a session token it no longer
  honours; the revoke call can ask for ExpiredToken, AccessDenied or InvalidAccessKeyId
  instead). An access key id the server never issued gives 403 InvalidAccessKeyId.
  Issued credentials are kept (expired or not) for the life of the server.
* Operations: ListObjectsV2 (prefix, any delimiter, continuation-token, start-after, max-keys,
  encoding-type=url; pages capped at ``--page-size``), HeadBucket, GetObject (single byte
  range, If-Match, If-None-Match; GLACIER and DEEP_ARCHIVE objects give InvalidObjectState)
  and HeadObject. Anything else gives 405 MethodNotAllowed or 501 NotImplemented.

Credential endpoints (same port, plain http; each is off unless enabled, and then the paths it
claims are no longer S3; every request is counted under its op name):

* STS AssumeRoleWithWebIdentity (op ``AssumeRoleWithWebIdentity``; other actions are op
  ``STSOther``), enabled by ``--sts-token-file PATH``: ``POST /`` on a path-style host (or
  ``sts[.<region>].localhost``) with an ``application/x-www-form-urlencoded`` body
  ``Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=..&RoleSessionName=..
  &WebIdentityToken=..[&DurationSeconds=..]``. Checked in this order, errors as STS sends
  them (``<ErrorResponse><Error><Type>Sender|Receiver</Type><Code/><Message/></Error>
  <RequestId/></ErrorResponse>``, text/xml, ``x-amzn-RequestId``): a GET carrying ``Action``
  in its query, or a body that is not form-encoded or not UTF-8 -> 400 InvalidAction /
  InvalidParameterValue; no Action -> 400 MissingAction; another Action or a Version other
  than 2011-06-15 -> 400 InvalidAction; a signed request (an ``Authorization`` or
  ``X-Amz-Security-Token`` header, or an ``X-Amz-Signature``, ``X-Amz-Credential`` or
  ``X-Amz-Security-Token`` parameter) -> 400 InvalidParameterValue "... must be sent
  unsigned ..."; RoleArn not ``arn:aws[a-z-]*:iam::[0-9]{12}:role/[\\w+=,.@/-]+``,
  RoleSessionName not 2..64 of ``[\\w+=,.@-]`` (ASCII), DurationSeconds not 900..43200, or a
  missing parameter -> 400 ValidationError "N validation error(s) detected: Value .. at
  'roleArn' failed to satisfy constraint: ..."; a token other than the one now in PATH (read
  on every call; surrounding whitespace ignored) -> 400 InvalidIdentityToken "Incorrect token
  audience", except a token that was in PATH earlier -> 400 ExpiredTokenException "Token
  expired: ..."; with ``--sts-role-arn`` another role -> 403 AccessDenied "Not authorized to
  perform sts:AssumeRoleWithWebIdentity". Success issues a credential (``ASIA`` + 16
  characters, a 40-character secret, a ~450-character session token with ``+``, ``/`` and
  ``=``) valid for ``--sts-duration`` seconds whatever DurationSeconds asks, answered as STS
  does, indented, with Credentials fields in the order SessionToken, SecretAccessKey,
  Expiration, AccessKeyId. SubjectFromWebIdentityToken, Audience and Provider come from the
  token's ``sub``, ``aud`` and ``iss`` claims when it looks like a JWT (its signature is not
  checked), else ``system:serviceaccount:default:irsafs``, ``sts.amazonaws.com`` and
  ``www.amazon.com``.
* Container credentials (EKS Pod Identity, ECS; op ``ContainerCredentials``), enabled by
  ``--container-credentials`` or ``--container-token-file PATH``: ``GET /v1/credentials`` or
  ``GET /__creds/<anything>`` (point ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` at either). With
  a token file, the ``Authorization`` header must equal its contents (re-read on every call,
  surrounding whitespace ignored, no "Bearer"): missing -> 401, different -> 403, both with
  a JSON body ``{"Code": .., "Message": ..}``; without one, anyone is served. Another method
  -> 405. Answers ``{"AccessKeyId", "SecretAccessKey", "Token", "AccountId", "Expiration"}``
  (``--account-id``), a fresh credential of ``--container-duration`` seconds.
* IMDSv2 (ops ``IMDSToken``, ``IMDSRoleName``, ``IMDSCredentials``, ``IMDSOther``), enabled by
  ``--imds``, under ``/latest/`` (point ``AWS_EC2_METADATA_SERVICE_ENDPOINT`` at the server):
  ``PUT /latest/api/token`` with ``X-aws-ec2-metadata-token-ttl-seconds: 1..21600`` answers
  a token (text/plain; missing or bad TTL -> 400, ``X-Forwarded-For`` -> 403, other methods
  -> 405). Every other request needs a live ``X-aws-ec2-metadata-token`` (else 401: IMDSv2
  only, no IMDSv1 fallback). ``GET /latest/meta-data/iam/security-credentials/`` answers
  the role name (``--imds-role``); ``GET .../security-credentials/<role>`` answers
  ``{"Code": "Success", "LastUpdated", "Type": "AWS-HMAC", "AccessKeyId",
  "SecretAccessKey", "Token", "Expiration"}``, a fresh credential of ``--imds-duration``
  seconds; another role or path -> 404. Errors are IMDS's HTML pages.
* Failure injection, per endpoint (``sts``, ``container``, ``imds``; every IMDS request
  counts, the token PUT included): the next N requests fail with a given status and code,
  in that endpoint's error format, before any other check; and every request can first wait
  a given delay. ``--<endpoint>-fail-first N`` (503 ServiceUnavailable) and
  ``--<endpoint>-delay S`` set it at start-up, ``POST /__irsafs/<endpoint>-fail`` at run
  time.

S3 fault injection (for retry tests): a list of rules, set by ``POST /__irsafs/faults`` (or
``--fault`` at start-up), each a JSON object; a request that passed authentication gets the
first rule that matches it and still has requests to fault (at most one rule per request;
requests refused by authentication never match). Fields (all optional):

* ``op``: ``GetObject``, ``HeadObject``, ``ListObjectsV2``, ``HeadBucket`` or ``any``
  (default; S3 operations only: never the control API or the credential endpoints).
* ``bucket``: only this bucket. ``prefix``: only keys starting with it (for ListObjectsV2: a
  ``prefix`` parameter starting with it; HeadBucket's subject is the empty string).
  ``min_bytes``: only requests whose Range (``bytes=FIRST-LAST``) asks for at least this
  many bytes (requests without such a Range always qualify), e.g. to hit large prefetch GETs.
* ``count``: how many matching requests to fault, default 1; -1 for every one; 0 disables.
  ``skip``: let this many matching requests through first (default 0).
* ``action`` (default ``error``):

  - ``error``: answer an S3 error document with ``status``, ``code`` and ``message`` (and any
    extra response ``headers``, an object of strings, e.g. ``x-amz-bucket-region``). The code
    defaults to InternalError; the status and message default by code: InternalError 500,
    SlowDown 503, ServiceUnavailable 503, RequestTimeout 400, AccessDenied 403, NoSuchKey
    404, NoSuchBucket 404, InvalidObjectState 403, PreconditionFailed 412, InvalidRange 416,
    ExpiredToken 400, InvalidToken 400, PermanentRedirect 301, NotImplemented 501 (each with
    S3's message), any other code 500 ("Injected failure (CODE)"). Status 300..599.
  - ``reset``: reset the connection (TCP RST): before any response when ``after_bytes`` is
    absent, else after the headers (promising the whole body) and ``after_bytes`` body bytes
    (and a pause of 50 ms so the client can read them before the reset discards them).
  - ``truncate``: send the headers (with the full Content-Length), ``after_bytes`` (default
    0) body bytes, then close the connection normally (FIN).
  - ``stall``: send the headers and ``after_bytes`` (default 0) body bytes, then nothing for
    ``seconds`` (default 30) with the connection open; then the rest of the body, unless the
    client has closed the connection meanwhile (the server notices at once and stops).
  - ``delay``: wait ``seconds`` (default 1) before handling the request (a slow first byte),
    then answer normally.
  - ``wrong_range`` (GetObject): a 206 for other bytes than asked for, with a Content-Range
    that names them truthfully: the same length ``shift`` (default 4096, may be negative)
    bytes later, else earlier, else one byte off; for the whole object, one byte fewer. A
    client must reject it (a GET without Range gets it too).

  For ``reset``, ``truncate`` and ``stall`` the cut is at most the body's length minus one,
  so the body is always incomplete; a response without a body (HEAD, or empty) is cut before
  its status line (a stall then just delays it). They apply to whatever response the request
  gets, errors included.
* ``name``: a label, echoed back.

In the statistics (``GET /__irsafs/stats``) each log entry of a faulted request has ``"fault":
INDEX`` (the rule's position in the list; the entry is written when the request ends, so a
stalled request is logged once its stall ends), ``status`` is null when no status line was
sent, and ``bytes`` counts the body bytes actually sent. While rules are set, the statistics
have ``"faults": [rule, ...]``: each rule's settings with ``remaining`` (-1: unlimited),
``fired`` (requests faulted) and ``matched`` (matching requests seen, skipped ones included),
both zeroed by ``/__irsafs/reset``.

Control API (no authentication, never counted in the statistics), under ``/__irsafs/``:

* ``PUT /__irsafs/object?bucket=B&key=K``: body is the content; optional headers
  ``x-test-storage-class`` and ``x-test-last-modified`` (epoch seconds). Creates the bucket if
  needed and replaces any object. Answers ``{"etag": "\\"<md5>\\""}``.
* ``POST /__irsafs/bulk?bucket=B``: body is a JSON list of objects, each with ``key`` (str) or
  ``key_b64``, and either ``data_b64`` or ``size`` and ``seed`` (content ``make_data(size,
  seed)``), optionally ``storage_class`` and ``mtime``. Answers ``{"count": n}``.
* ``DELETE /__irsafs/object?bucket=B&key=K``: answers ``{"deleted": true|false}``.
* ``GET /__irsafs/stats``: ``{"requests": {op: n}, "statuses": {"200": n}, "auth_failures": n,
  "bytes_sent": n, "log": [last 1000 requests as {"op", "method", "path", "query",
  "status", "range", "if_match", "bytes"}]}``. S3 and credential endpoint requests alike
  (``CREDENTIAL_OPS`` names the latter). While a credential endpoint is enabled it also has
  ``"credentials": {"issued": [{"access_key_id", "source": "sts"|"container"|"imds",
  "role_arn", "session_name", "issued", "expiration" (ISO 8601), "issued_epoch",
  "expires_epoch", "expired", "revoked": null or the S3 error code,
  "web_identity_token_sha256": SHA-256 (hex) of the web identity token STS was given, without
  surrounding whitespace, or null}, ...] (issued since the last reset, oldest first, at most
  1000; never a secret or token), "token_rejections": {"ExpiredToken": n, "InvalidToken": n}
  (S3 requests refused for their token, static credentials included), "injected_failures":
  {"sts": n, "container": n, "imds": n}}``.
* ``POST /__irsafs/reset``: zeroes the statistics (issued credentials stay valid).
* ``POST /__irsafs/config``: JSON body with ``page_size`` and/or ``ignore_encoding_type``;
  answers the resulting settings.
* ``POST /__irsafs/region``: JSON body ``{"region": R}`` moves the bucket(s) to region R:
  from then on requests signed for another region get 400 AuthorizationHeaderMalformed with
  ``<Region>R</Region>`` and ``x-amz-bucket-region: R``, and HeadBucket names R. Answers
  ``{"region": R}``.
* ``POST /__irsafs/cred-config``: JSON body with any of ``sts_token_file``, ``sts_role_arn``,
  ``sts_duration``, ``container_credentials``, ``container_token_file``,
  ``container_duration``, ``imds``, ``imds_role``, ``imds_duration``, ``account_id`` (the
  command line options; null clears a file, which disables STS, or the role restriction;
  a container token file enables the container endpoint unless ``container_credentials`` is
  given too); answers all of them. ``{}`` just reads them.
* ``POST /__irsafs/sts-fail``, ``/__irsafs/container-fail``, ``/__irsafs/imds-fail``: JSON
  body ``{"count": N, "status": 503, "code": "ServiceUnavailable", "message": null,
  "delay": 0}`` (those are the defaults of missing fields) replaces that endpoint's failure
  injection: the next N requests fail with status and code (message: a realistic default
  for Throttling, IDPCommunicationError, InternalFailure, ExpiredTokenException...), and
  every request waits ``delay`` seconds first until the next call; ``{}`` clears both.
  Answers the new settings.
* ``GET /__irsafs/secrets`` (test-only: real services never reveal these): every secret the
  server has handed out or received, for tests that check a client never leaks one:
  ``{"credentials": [{"access_key_id", "secret_access_key", "session_token", "source"}, ...]
  (every temporary credential ever issued, oldest first, resets notwithstanding),
  "imds_tokens": [...] (every IMDSv2 session token issued), "web_identity_tokens": [...]
  (every token seen in the STS token file), "signatures": [...] (the ``Signature`` values of
  the last 1000 signed S3 requests)}``.
* ``POST /__irsafs/faults``: JSON body, a list of S3 fault rules (or one rule), which replaces
  the current ones; answers ``{"faults": [rule, ...]}`` as described above. ``GET
  /__irsafs/faults`` answers the same; ``DELETE /__irsafs/faults`` removes every rule and
  answers ``{"cleared": n}``. A bad rule gives 400 ``{"error": ...}`` and changes nothing.
* ``POST /__irsafs/revoke``: optional JSON body ``{"code": "InvalidToken" | "ExpiredToken" |
  "AccessDenied" | "InvalidAccessKeyId", "status": n, "message": ..}``: every temporary
  credential issued so far is refused by S3 from now on with that error (default 400
  InvalidToken). Answers ``{"revoked": n}`` (those not already revoked).

In the query of a control request ``bucket`` and ``key`` are percent-decoded to bytes, so
``key=%FF%00`` names a key that is neither UTF-8 nor NUL-free.

For tests, import this module: ``start_server(args) -> (proc, port)``, ``stop_server(proc)``,
``Control(port)`` (a client of the control API: ``put``, ``bulk``, ``delete``, ``stats``,
``reset``, ``config``, ``cred_config``, ``sts_fail``, ``container_fail``, ``imds_fail``,
``revoke``, ``credential_stats``, ``issued``, ``s3_requests``, ``secrets``, ``faults``,
``fault``, ``clear_faults``, ``fault_rules``, ``set_region``),
``make_data(size, seed)`` and ``write_token_file(path, token)`` (atomic replacement, as kubelet
rotates tokens). To extend the server further, subclass ``S3RequestHandler`` and override
``handle_extra`` (it runs before the credential endpoints and S3), then pass the subclass to
``main`` or to ``S3Server`` (and ``run`` it). A subclass may override ``send(status, headers,
body)`` (to shape traffic, say): as long as it calls the base ``send``, which writes through
``self.wfile``, injected resets, truncations and stalls still apply.
"""

import argparse
import base64
import bisect
import calendar
import collections
import dataclasses
import email.utils
import hashlib
import hmac
import http
import http.client
import http.server
import json
import math
import os
import re
import secrets
import select
import selectors
import signal
import socket
import socketserver
import ssl
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
import uuid
from urllib.parse import quote, quote_plus, unquote_to_bytes
from xml.sax.saxutils import escape

import botocore.auth
import botocore.awsrequest
import botocore.credentials
from botocore.compat import HTTPHeaders

CONTROL_PREFIX = '/__irsafs/'
DEFAULT_BUCKET = 'test-bucket'
DEFAULT_CREDENTIAL = 'AKIDTEST:secrettest'
DEFAULT_REGION = 'us-east-1'
SERVER_NAME = 'irsafs-test-s3'
CHUNK_SIZE = 1 << 20
MAX_LIST_KEYS = 1000
MAX_SKEW_SECONDS = 15 * 60
LOG_LENGTH = 1000
ARCHIVED_STORAGE_CLASSES = frozenset({'GLACIER', 'DEEP_ARCHIVE'})
UNSIGNED_PAYLOAD = 'UNSIGNED-PAYLOAD'
XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'
S3_XMLNS = 'http://s3.amazonaws.com/doc/2006-03-01/'

AMZ_DATE_RE = re.compile(r'[0-9]{8}T[0-9]{6}Z')
RANGE_RE = re.compile(r'bytes=([0-9]*)-([0-9]*)')
SHA256_HEX_RE = re.compile(r'[0-9a-f]{64}')
PATH_STYLE_HOST_RE = re.compile(r'(?:s3(?:\.[a-z0-9-]+)?\.)?localhost')
VIRTUAL_HOST_RE = re.compile(r'(?P<bucket>.+?)(?:\.s3(?:\.[a-z0-9-]+)?)?\.localhost')

# Credential endpoints
STS_XMLNS = 'https://sts.amazonaws.com/doc/2011-06-15/'
STS_VERSION = '2011-06-15'
STS_ACTION = 'AssumeRoleWithWebIdentity'
DEFAULT_ACCOUNT = '123456789012'
DEFAULT_IMDS_ROLE = 'irsafs-test-role'
DEFAULT_LIFETIME = 3600
DEFAULT_SUBJECT = 'system:serviceaccount:default:irsafs'
CONTAINER_PREFIX = '/__creds/'
CONTAINER_PATHS = frozenset({'/v1/credentials'})
IMDS_PREFIX = '/latest/'
IMDS_TOKEN_PATH = '/latest/api/token'
IMDS_CREDENTIALS_PATH = '/latest/meta-data/iam/security-credentials/'
IMDS_MAX_TTL = 21600
ENDPOINTS = ('sts', 'container', 'imds')
# Op names of the credential endpoints in the statistics (everything else is an S3 op).
CREDENTIAL_OPS = frozenset({STS_ACTION, 'STSOther', 'ContainerCredentials', 'IMDSToken',
                            'IMDSRoleName', 'IMDSCredentials', 'IMDSOther'})
# S3 rejections of a credential's token, counted apart in the statistics.
TOKEN_REJECTION_CODES = ('ExpiredToken', 'InvalidToken')
# How a revoked temporary credential is refused by S3, by the code given to /__irsafs/revoke.
REVOCATION_ERRORS = {
    'InvalidToken': (400, 'The provided token is malformed or otherwise invalid.'),
    'ExpiredToken': (400, 'The provided token has expired.'),
    'AccessDenied': (403, 'Access Denied'),
    'InvalidAccessKeyId': (403, 'The AWS Access Key Id you provided does not exist in our '
                                'records.'),
}
# Default messages of injected failures (any other code gets a generic one).
FAULT_MESSAGES = {
    'Throttling': 'Rate exceeded',
    'IDPCommunicationError': "Couldn't retrieve verification key from your identity provider, "
                             'please reference AssumeRoleWithWebIdentity documentation for '
                             'requirements',
    'InternalFailure': 'An internal error has occurred',
    'ServiceUnavailable': 'Service is unavailable. Please try again later.',
    'ExpiredTokenException': 'Token expired: current date/time must be before the expiration '
                             'date/time',
    'InvalidIdentityToken': 'Incorrect token audience',
    'IDPRejectedClaim': 'Identity provider rejected the claim',
    'AccessDenied': 'Not authorized to perform sts:AssumeRoleWithWebIdentity',
    'RegionDisabledException': 'STS is not activated in this region for account. Your '
                               'account administrator can activate STS in this region using '
                               'the IAM Console.',
}
ROLE_ARN_PATTERN = r'arn:aws[a-z-]*:iam::[0-9]{12}:role/[\w+=,.@/-]+'
ROLE_ARN_RE = re.compile(r'arn:(aws[a-z-]*):iam::([0-9]{12}):role/([\w+=,.@/-]+)', re.ASCII)
SESSION_NAME_PATTERN = r'[\w+=,.@-]*'
SESSION_NAME_RE = re.compile(SESSION_NAME_PATTERN, re.ASCII)
STS_HOST_RE = re.compile(r'sts(?:\.[a-z0-9-]+)?\.localhost')
ACCOUNT_RE = re.compile(r'[0-9]{12}')
UPPER_ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'


def make_data(size, seed):
    """Return `size` deterministic pseudo-random bytes for `seed` (an int or a str).

    The content is the first `size` bytes of the SHAKE-256 output for the UTF-8 bytes of
    ``"irsafs:" + str(seed)``, so any language with SHAKE-256 can reproduce it.
    """
    return hashlib.shake_256(f'irsafs:{seed}'.encode()).digest(size)


def iso8601(timestamp):
    """Format epoch seconds like S3 list results: 2026-11-29T07:35:24.000Z."""
    return time.strftime('%Y-%m-%dT%H:%M:%S.000Z', time.gmtime(timestamp))


def iso8601_seconds(timestamp):
    """Format epoch seconds like STS and the metadata services: 2026-11-29T07:35:24Z."""
    return time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(timestamp))


def new_access_key_id(prefix='ASIA'):
    """A random access key id in the AWS style: `prefix` and 16 characters of [A-Z2-7]."""
    return prefix + ''.join(secrets.choice(UPPER_ALNUM) for _ in range(16))


def new_secret_access_key():
    """A random 40-character secret access key (base64 alphabet, so '+' and '/' occur)."""
    return base64.b64encode(secrets.token_bytes(30)).decode()


def new_session_token():
    """A random session token of about 450 characters that, like real ones, contains '+',
    '/' and a trailing '=' (characters a client must percent-encode or sign correctly)."""
    while True:
        token = 'IQoJb3JpZ2luX2VjE' + base64.b64encode(secrets.token_bytes(323)).decode()
        if '+' in token and '/' in token and token.endswith('='):
            return token


def jwt_claims(token):
    """The claims of a JWT (a dict), or {} when `token` is not one (the signature is not
    checked: this server only compares the token with its token file)."""
    parts = token.split('.')
    if len(parts) != 3:
        return {}
    try:
        payload = base64.urlsafe_b64decode(parts[1] + '=' * (-len(parts[1]) % 4))
        claims = json.loads(payload)
    except ValueError:
        return {}
    return claims if isinstance(claims, dict) else {}


def read_token_file(path):
    """Return the contents of a token file without surrounding whitespace (opened afresh on
    every call, so a rename or a ``..data`` symlink swap is seen at once)."""
    with open(path, 'rb') as file:
        return file.read().decode('utf-8', 'replace').strip()


def write_token_file(path, token):
    """Replace the token file at `path` atomically (write a temporary file, then rename it
    over the old one), the way kubelet rotates projected tokens."""
    path = os.fspath(path)
    temporary = f'{path}.tmp-{os.getpid()}-{secrets.token_hex(4)}'
    with open(temporary, 'w', encoding='utf-8') as file:
        file.write(token)
    os.replace(temporary, path)


def xml_text(value):
    """Escape a str, or bytes taken as UTF-8, for XML; other bytes and control characters are
    passed through as they are (the document is encoded with surrogateescape)."""
    if isinstance(value, bytes):
        value = value.decode('utf-8', 'surrogateescape')
    return escape(value, {'"': '&quot;'})


def prefix_successor(prefix):
    """Return the smallest byte string greater than every string starting with `prefix`, or
    None when there is none (the prefix is empty or all 0xff)."""
    stripped = prefix.rstrip(b'\xff')
    if not stripped:
        return None
    return stripped[:-1] + bytes([stripped[-1] + 1])


def parse_query(raw_query):
    """Split a raw query string into percent-decoded (name, value) byte pairs.

    Only ``%XX`` is decoded: SigV4 treats ``+`` as a literal plus, and so does S3.
    """
    pairs = []
    for part in raw_query.split('&'):
        if part:
            name, _, value = part.partition('=')
            pairs.append((unquote_to_bytes(name), unquote_to_bytes(value)))
    return pairs


def parse_credential(text):
    """Parse ``AKID:SECRET[:SESSION_TOKEN]`` into (akid, secret, token or None)."""
    parts = text.split(':', 2)
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise ValueError(f'expected AKID:SECRET[:SESSION_TOKEN], got {text!r}')
    return parts[0], parts[1], parts[2] if len(parts) == 3 else None


def encode_continuation_token(name, is_prefix):
    """Make an opaque token from the last entry of a page (a key or a common prefix)."""
    return base64.b64encode((b'P' if is_prefix else b'K') + name).decode()


def decode_continuation_token(token):
    """Return (name, is_prefix) from a token made by encode_continuation_token."""
    try:
        raw = base64.b64decode(token, validate=True)
    except ValueError:
        raw = b''
    if raw[:1] not in (b'K', b'P'):
        raise S3Error(400, 'InvalidArgument', 'The continuation token provided is incorrect',
                      [('ArgumentName', 'continuation-token')])
    return raw[1:], raw[:1] == b'P'


def parse_range(header, size):
    """Return the (first, last) byte positions a Range header selects from `size` bytes.

    Returns None when there is no header or S3 would ignore it (malformed, or several
    ranges); raises InvalidRange when the range cannot be satisfied.
    """
    if header is None:
        return None
    match = RANGE_RE.fullmatch(header.strip())
    if match is None or match.groups() == ('', ''):
        return None
    first_text, last_text = match.groups()
    if first_text == '':
        # A suffix: the last n bytes (none at all for n = 0).
        first, last = size - min(int(last_text), size), size - 1
    elif last_text == '':
        first, last = int(first_text), size - 1
    else:
        first, last = int(first_text), int(last_text)
        if last < first:
            return None
        last = min(last, size - 1)
    if first >= size:
        raise S3Error(416, 'InvalidRange', 'The requested range is not satisfiable',
                      [('RangeRequested', header), ('ActualObjectSize', str(size))],
                      {'Content-Range': f'bytes */{size}'})
    return first, last


def misplaced_span(first, last, size, shift):
    """Another span of an object of `size` bytes than (first, last), for a wrong
    Content-Range: the same length `shift` bytes later, else earlier, else one byte off; when
    the whole object was asked for, one byte fewer. A one-byte object has no other span."""
    length = last - first + 1
    for start in (first + shift, first - shift, first + 1, first - 1):
        if start != first and start >= 0 and start + length <= size:
            return start, start + length - 1
    if length > 1:
        return first, last - 1
    return first, last


def etag_matches(header, etag):
    """True when an If-Match/If-None-Match header names `etag` (quoted or not) or is ``*``."""
    return any(tag.strip() in ('*', etag, etag.strip('"')) for tag in header.split(','))


class S3Error(Exception):
    """An S3 error response: status, code, message, extra elements and extra headers."""

    def __init__(self, status, code, message, extra=(), headers=None):
        super().__init__(f'{status} {code}: {message}')
        self.status = status
        self.code = code
        self.message = message
        self.extra = list(extra)
        self.headers = dict(headers or {})

    def to_xml(self, request_id):
        """Return the error document as bytes."""
        parts = [XML_DECLARATION, '<Error>', f'<Code>{self.code}</Code>',
                 f'<Message>{xml_text(self.message)}</Message>']
        parts += [f'<{name}>{xml_text(value)}</{name}>' for name, value in self.extra]
        parts += [f'<RequestId>{request_id}</RequestId>', '</Error>']
        return ''.join(parts).encode('utf-8', 'surrogateescape')


class ConnectionAborted(Exception):
    """Raised inside a request when an injected fault has closed or reset the connection: no
    response (or no more of it) can be sent."""


class ControlError(Exception):
    """A control API failure, answered as ``{"error": message}`` with `status`."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


class CredentialError(Exception):
    """A failure of a credential endpoint (STS, container, IMDS), answered in that endpoint's
    error format with `status`, `code` and `message`."""

    def __init__(self, status, code, message):
        super().__init__(f'{status} {code}: {message}')
        self.status = status
        self.code = code
        self.message = message


@dataclasses.dataclass
class TemporaryCredential:
    """A credential issued by one of the credential endpoints (`source` is ``sts``,
    ``container`` or ``imds``). S3 accepts it, with its token, until `expires` (epoch
    seconds, a whole second: the Expiration the client was told) unless `revoked`, which is
    then the S3Error S3 answers instead."""
    access_key_id: str
    secret_access_key: str
    session_token: str
    source: str
    issued: float
    expires: int
    role_arn: str = None
    session_name: str = None
    revoked: object = None
    token_sha256: str = None  # STS: SHA-256 (hex) of the web identity token presented

    def describe(self, now):
        """The credential as JSON-ready data for the statistics (no secret, no token)."""
        return {'access_key_id': self.access_key_id, 'source': self.source,
                'role_arn': self.role_arn, 'session_name': self.session_name,
                'issued': iso8601_seconds(self.issued), 'expiration': iso8601_seconds(self.expires),
                'issued_epoch': self.issued, 'expires_epoch': self.expires,
                'expired': now >= self.expires,
                'revoked': None if self.revoked is None else self.revoked.code,
                'web_identity_token_sha256': self.token_sha256}


@dataclasses.dataclass
class Fault:
    """Failure injection for one credential endpoint: the next `count` requests fail with
    `status` and `code` (and `message`, or a default for the code); every request, failing
    or not, first waits `delay` seconds."""
    count: int = 0
    status: int = 503
    code: str = 'ServiceUnavailable'
    message: str = None
    delay: float = 0.0

    @classmethod
    def from_settings(cls, count=0, status=503, code='ServiceUnavailable', message=None,
                      delay=0):
        """Validate settings from the command line or the control API."""
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise ValueError('count must be a non-negative integer')
        if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
            raise ValueError('status must be an HTTP status code (100..599)')
        if not isinstance(code, str) or not code:
            raise ValueError('code must be a non-empty string')
        if message is not None and not isinstance(message, str):
            raise ValueError('message must be a string')
        if (not isinstance(delay, (int, float)) or isinstance(delay, bool)
                or not 0 <= delay <= 600):
            raise ValueError('delay must be a number of seconds between 0 and 600')
        return cls(count, status, code, message, float(delay))

    def error(self):
        return CredentialError(self.status, self.code,
                               self.message or FAULT_MESSAGES.get(
                                   self.code, f'Injected failure ({self.code})'))

    def describe(self):
        return {'count': self.count, 'status': self.status, 'code': self.code,
                'message': self.message, 'delay': self.delay}


# S3 fault injection (POST /__irsafs/faults, --fault): the actions a rule can take, the
# operations it can match, and the default status and message of an injected error code.
S3_FAULT_ACTIONS = ('error', 'reset', 'truncate', 'stall', 'delay', 'wrong_range')
S3_FAULT_OPS = ('any', 'GetObject', 'HeadObject', 'ListObjectsV2', 'HeadBucket')
S3_FAULT_ERRORS = {
    'InternalError': (500, 'We encountered an internal error. Please try again.'),
    'SlowDown': (503, 'Please reduce your request rate.'),
    'ServiceUnavailable': (503, 'Service is unable to handle request.'),
    'RequestTimeout': (400, 'Your socket connection to the server was not read from or '
                            'written to within the timeout period. Idle connections will be '
                            'closed.'),
    'AccessDenied': (403, 'Access Denied'),
    'NoSuchKey': (404, 'The specified key does not exist.'),
    'NoSuchBucket': (404, 'The specified bucket does not exist'),
    'InvalidObjectState': (403, "The operation is not valid for the object's storage class"),
    'PreconditionFailed': (412, 'At least one of the pre-conditions you specified did not '
                                'hold'),
    'InvalidRange': (416, 'The requested range is not satisfiable'),
    'ExpiredToken': (400, 'The provided token has expired.'),
    'InvalidToken': (400, 'The provided token is malformed or otherwise invalid.'),
    'PermanentRedirect': (301, 'The bucket you are attempting to access must be addressed '
                               'using the specified endpoint. Please send all future requests '
                               'to this endpoint.'),
    'NotImplemented': (501, 'A header you provided implies functionality that is not '
                            'implemented.'),
}
DEFAULT_STALL_SECONDS = 30.0
DEFAULT_DELAY_SECONDS = 1.0
DEFAULT_RANGE_SHIFT = 4096
RESET_GRACE_SECONDS = 0.05  # let the client read the bytes sent before a reset


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclasses.dataclass
class FaultRule:
    """One S3 fault injection rule (see the module docstring for the JSON form).

    It matches requests for `op` (``any`` for every S3 operation), optionally only in
    `bucket`, for keys starting with `prefix` (for ListObjectsV2: a ``prefix`` parameter
    starting with it) and for ranges of at least `min_bytes`; the first `skip` matching
    requests pass, then the next `count` (-1: every one) get `action`. `fired` counts the
    requests it was applied to since the last statistics reset, `matched` those it saw
    (skipped ones included)."""
    action: str = 'error'
    op: str = 'any'
    bucket: str = None
    prefix: str = None
    count: int = 1
    skip: int = 0
    status: int = None
    code: str = None
    message: str = None
    headers: dict = None
    after_bytes: int = None
    seconds: float = None
    min_bytes: int = None
    shift: int = DEFAULT_RANGE_SHIFT
    name: str = None
    fired: int = 0
    matched: int = 0
    remaining: int = None   # requests still to fault (-1: unlimited); starts at count
    skip_left: int = None   # matching requests still to let through; starts at skip

    FIELDS = ('action', 'op', 'bucket', 'prefix', 'min_bytes', 'count', 'skip', 'status',
              'code', 'message', 'headers', 'after_bytes', 'seconds', 'shift', 'name')

    @classmethod
    def from_dict(cls, spec):
        """Validate a rule given as a dict (JSON); raise ValueError naming the problem."""
        if not isinstance(spec, dict):
            raise ValueError(f'a fault rule must be a JSON object, not {spec!r}')
        unknown = set(spec) - set(cls.FIELDS)
        if unknown:
            raise ValueError(f'unknown fault rule fields {sorted(unknown)}; known: '
                             f'{list(cls.FIELDS)}')
        rule = cls(**{name: value for name, value in spec.items() if value is not None})
        if 'action' not in spec and ('status' in spec or 'code' in spec):
            rule.action = 'error'
        if rule.action not in S3_FAULT_ACTIONS:
            raise ValueError(f'action must be one of {list(S3_FAULT_ACTIONS)}')
        if rule.op not in S3_FAULT_OPS:
            raise ValueError(f'op must be one of {list(S3_FAULT_OPS)}')
        for name in ('bucket', 'prefix', 'code', 'message', 'name'):
            value = getattr(rule, name)
            if value is not None and not isinstance(value, str):
                raise ValueError(f'{name} must be a string')
        if not _is_int(rule.count) or rule.count < -1:
            raise ValueError('count must be an integer >= 0, or -1 for every request')
        if not _is_int(rule.skip) or rule.skip < 0:
            raise ValueError('skip must be a non-negative integer')
        if rule.headers is not None and not (
                isinstance(rule.headers, dict)
                and all(isinstance(k, str) and isinstance(v, str)
                        for k, v in rule.headers.items())):
            raise ValueError('headers must be an object of strings')
        for name in ('after_bytes', 'min_bytes'):
            value = getattr(rule, name)
            if value is not None and (not _is_int(value) or value < 0):
                raise ValueError(f'{name} must be a non-negative integer')
        if rule.seconds is not None and (not _is_number(rule.seconds)
                                         or not 0 <= rule.seconds <= 3600):
            raise ValueError('seconds must be a number between 0 and 3600')
        if not _is_int(rule.shift) or rule.shift == 0:
            raise ValueError('shift must be a non-zero integer')
        if rule.action == 'error':
            default_status, default_message = S3_FAULT_ERRORS.get(
                rule.code or 'InternalError', (500, None))
            rule.code = rule.code or 'InternalError'
            if rule.status is None:
                rule.status = default_status
            if not _is_int(rule.status) or not 300 <= rule.status <= 599:
                raise ValueError('status must be an HTTP status code (300..599)')
            if rule.message is None:
                rule.message = default_message or f'Injected failure ({rule.code})'
        elif rule.status is not None or rule.code is not None:
            raise ValueError(f'status and code belong to action "error", not {rule.action!r}')
        if rule.action == 'stall' and rule.seconds is None:
            rule.seconds = DEFAULT_STALL_SECONDS
        if rule.action == 'delay' and rule.seconds is None:
            rule.seconds = DEFAULT_DELAY_SECONDS
        if rule.action in ('truncate', 'stall') and rule.after_bytes is None:
            rule.after_bytes = 0
        rule.remaining = rule.count
        rule.skip_left = rule.skip
        return rule

    def matches(self, op, bucket, subject, requested=None):
        """Whether the rule applies to a request for `op` in `bucket` whose key (or listing
        prefix) is `subject` (bytes or None) and whose Range asks for `requested` bytes (None:
        no bounded range)."""
        if self.op not in ('any', op):
            return False
        if (self.min_bytes is not None and requested is not None
                and requested < self.min_bytes):
            return False
        if self.bucket is not None and self.bucket != bucket:
            return False
        if self.prefix is not None:
            if subject is None or not subject.startswith(self.prefix.encode()):
                return False
        return True

    def take(self):
        """Count one matching request; return True when the rule applies to it (the caller
        holds the server's lock)."""
        if self.remaining == 0:
            return False
        self.matched += 1
        if self.skip_left > 0:
            self.skip_left -= 1
            return False
        if self.remaining > 0:
            self.remaining -= 1
        self.fired += 1
        return True

    def describe(self):
        """The rule as JSON-ready data: its settings, ``remaining`` (-1: unlimited),
        ``fired`` and ``matched``."""
        data = {name: getattr(self, name) for name in self.FIELDS}
        data.update(remaining=self.remaining, fired=self.fired, matched=self.matched)
        return data


@dataclasses.dataclass(frozen=True)
class S3Object:
    """One stored object."""
    data: bytes
    etag: str
    last_modified: int
    storage_class: str = 'STANDARD'


class Bucket:
    """Objects by key (bytes), with the keys also kept sorted by their bytes for listing."""

    def __init__(self, name):
        self.name = name
        self.objects = {}
        self.keys = []

    def put(self, key, obj):
        if key not in self.objects:
            bisect.insort(self.keys, key)
        self.objects[key] = obj

    def delete(self, key):
        """Remove `key`; return whether it existed."""
        if self.objects.pop(key, None) is None:
            return False
        del self.keys[bisect.bisect_left(self.keys, key)]
        return True

    def index_after(self, marker, is_prefix):
        """Index of the first key after `marker`; when `is_prefix`, also past every key that
        starts with it (the marker was a common prefix, already returned as a whole)."""
        if not is_prefix:
            return bisect.bisect_right(self.keys, marker)
        successor = prefix_successor(marker)
        return len(self.keys) if successor is None else bisect.bisect_left(self.keys, successor)

    def list_page(self, prefix, delimiter, marker, marker_is_prefix, limit):
        """Compute one ListObjectsV2 page.

        Keys start with `prefix` and come after `marker` (None for the first page). With a
        delimiter, every key whose remainder after the prefix contains it rolls up into the
        common prefix ending at its first occurrence; each common prefix is one entry.
        Returns (entries, truncated); entries are (name, S3Object) for keys and (name, None)
        for common prefixes, in byte order.
        """
        keys = self.keys
        index = bisect.bisect_left(keys, prefix)
        if marker is not None:
            index = max(index, self.index_after(marker, marker_is_prefix))
        entries = []
        while len(entries) < limit and index < len(keys) and keys[index].startswith(prefix):
            key = keys[index]
            cut = key.find(delimiter, len(prefix)) if delimiter else -1
            if cut < 0:
                entries.append((key, self.objects[key]))
                index += 1
            else:
                common = key[:cut + len(delimiter)]
                entries.append((common, None))
                index = self.index_after(common, True)
        truncated = limit > 0 and index < len(keys) and keys[index].startswith(prefix)
        return entries, truncated


class _SignatureChecker(botocore.auth.S3SigV4Auth):
    """botocore's S3 signer, used to recompute the signature a client should have sent.

    botocore leaves User-Agent, Expect and X-Amzn-Trace-Id out of its own signatures by
    dropping them from the canonical headers; a client may sign them, so every header given
    (the request carries only the signed ones) is used.
    """

    def headers_to_sign(self, request):
        headers = HTTPHeaders()
        for name, value in request.headers.items():
            headers[name.lower()] = value
        return headers


class S3HTTPServer(http.server.ThreadingHTTPServer):
    """The listening socket; one daemon thread per connection. `s3` is the S3Server."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address, handler_class, s3):
        if ':' in address[0]:
            self.address_family = socket.AF_INET6
        self.s3 = s3
        super().__init__(address, handler_class)

    def server_bind(self):
        # HTTPServer.server_bind resolves the host name, which can hang without DNS.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request, client_address):
        # Clients dropping connections is normal, and so are TLS handshakes a client gives up
        # (it does not trust the certificate); report anything else.
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, ssl.SSLError, TimeoutError)):
            if self.s3.verbose:
                sys.stderr.write(f'{client_address[0]} - connection ended: '
                                 f'{type(error).__name__}: {error}\n')
            return
        super().handle_error(request, client_address)


class S3Server:
    """The server state (buckets, settings, credentials, statistics, a lock) and its socket.

    `credentials` is an iterable of (akid, secret, session token or None): the static
    credentials, kept in ``self.credentials`` {akid: (secret, token)}. Temporary credentials
    issued by the credential endpoints are kept apart, in ``self.temporary`` {akid:
    TemporaryCredential}. `credential_settings` is a dict of keyword arguments of
    `configure_credentials`; `faults` maps an endpoint (``sts``, ``container``, ``imds``) to
    keyword arguments of `Fault.from_settings`; `s3_faults` is a list of S3 fault rules
    (dicts, see `FaultRule.from_dict`). With `tls_cert` and `tls_key` (PEM files) the server
    speaks HTTPS only. Everything mutable is guarded by `lock`; stored bytes are immutable and
    are sent unlocked.
    """

    def __init__(self, host='127.0.0.1', port=0, region=DEFAULT_REGION,
                 buckets=(DEFAULT_BUCKET,), credentials=None, page_size=MAX_LIST_KEYS,
                 ignore_encoding_type=False, no_auth=False, verbose=False,
                 handler_class=None, credential_settings=None, faults=None,
                 s3_faults=None, tls_cert=None, tls_key=None):
        self.lock = threading.Lock()
        self.s3_faults = []
        self.tls = tls_cert is not None
        self.region = region
        self.credentials = {akid: (secret, token) for akid, secret, token in
                            credentials or [parse_credential(DEFAULT_CREDENTIAL)]}
        self.buckets = {name: Bucket(name) for name in buckets}
        self.page_size = page_size
        self.ignore_encoding_type = ignore_encoding_type
        self.no_auth = no_auth
        self.verbose = verbose
        # Credential endpoints: settings, injected faults, issued credentials, IMDS tokens
        # ({token: expiry}) and every web identity token seen in the STS token file.
        self.account_id = DEFAULT_ACCOUNT
        self.sts_token_file = None
        self.sts_role_arn = None
        self.sts_duration = DEFAULT_LIFETIME
        self.container_credentials = False
        self.container_token_file = None
        self.container_duration = DEFAULT_LIFETIME
        self.imds = False
        self.imds_role = DEFAULT_IMDS_ROLE
        self.imds_duration = DEFAULT_LIFETIME
        self.faults = {endpoint: Fault() for endpoint in ENDPOINTS}
        self.temporary = {}
        self.imds_tokens = {}
        self.seen_web_identity_tokens = set()
        # Test-only records of secrets, for GET /__irsafs/secrets: every IMDS token issued,
        # and the signatures of the last LOG_LENGTH signed S3 requests.
        self.issued_imds_tokens = []
        self.received_signatures = collections.deque(maxlen=LOG_LENGTH)
        self.reset_stats()
        self.configure_credentials(**(credential_settings or {}))
        for endpoint, settings in (faults or {}).items():
            self.set_fault(endpoint, **settings)
        self.set_s3_faults(s3_faults or [])
        if (tls_cert is None) != (tls_key is None):
            raise ValueError('TLS needs both a certificate and its key')
        context = None
        if self.tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            try:
                context.load_cert_chain(tls_cert, tls_key)
            except (OSError, ssl.SSLError) as error:
                raise ValueError(f'cannot load the TLS certificate {tls_cert} and key '
                                 f'{tls_key}: {error}') from None
        self.httpd = S3HTTPServer((host, port), handler_class or S3RequestHandler, self)
        if context is not None:
            # The handshake runs in each connection's thread (S3RequestHandler.setup), so a
            # client that never completes one cannot hold up the others.
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True,
                                                    do_handshake_on_connect=False)
        self._thread = None

    @property
    def port(self):
        return self.httpd.server_address[1]

    def start(self):
        """Serve in a background thread."""
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def stop(self):
        """Stop serving and close the listening socket."""
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join()

    def put_object(self, bucket, key, data, storage_class='STANDARD', mtime=None):
        """Store `data` under `key` (bytes), creating the bucket; return the new ETag."""
        etag = '"%s"' % hashlib.md5(data, usedforsecurity=False).hexdigest()
        obj = S3Object(bytes(data), etag, int(time.time() if mtime is None else mtime),
                       storage_class)
        with self.lock:
            self.buckets.setdefault(bucket, Bucket(bucket)).put(key, obj)
        return etag

    def delete_object(self, bucket, key):
        """Delete `key` (bytes) if present; return whether it was."""
        with self.lock:
            return bucket in self.buckets and self.buckets[bucket].delete(key)

    def load_dir(self, bucket, directory):
        """Store every regular file under `directory`, keyed by its relative path."""
        for root, _, files in os.walk(directory):
            for name in files:
                path = os.path.join(root, name)
                if stat.S_ISREG(os.lstat(path).st_mode):
                    with open(path, 'rb') as file:
                        data = file.read()
                    self.put_object(bucket, os.fsencode(os.path.relpath(path, directory)), data)

    def configure(self, page_size=None, ignore_encoding_type=None):
        """Change settings at run time; return the current ones."""
        if page_size is not None:
            if not isinstance(page_size, int) or page_size < 1:
                raise ValueError('page_size must be a positive integer')
            self.page_size = page_size
        if ignore_encoding_type is not None:
            self.ignore_encoding_type = bool(ignore_encoding_type)
        return {'page_size': self.page_size, 'ignore_encoding_type': self.ignore_encoding_type}

    def set_region(self, region):
        """Move the server (every bucket) to `region`; return it."""
        if not isinstance(region, str) or not re.fullmatch(r'[a-z0-9]+(-[a-z0-9]+)*', region):
            raise ValueError('region must be a region name such as eu-west-1')
        self.region = region
        return region

    def reset_stats(self):
        with self.lock:
            self.stats = {'requests': collections.Counter(), 'statuses': collections.Counter(),
                          'auth_failures': 0, 'bytes_sent': 0,
                          'log': collections.deque(maxlen=LOG_LENGTH),
                          'issued': collections.deque(maxlen=LOG_LENGTH),
                          'token_rejections': collections.Counter(),
                          'injected_failures': collections.Counter(),
                          'tls_handshakes': 0, 'tls_failures': collections.deque(
                              maxlen=LOG_LENGTH)}
            for rule in self.s3_faults:
                rule.fired = rule.matched = 0

    def record(self, entry, auth_failed, rejection=None):
        """Count one S3 or credential endpoint request; `entry` is its log entry and
        `rejection` the S3 error code when S3 refused the credential's token."""
        with self.lock:
            self.stats['requests'][entry['op']] += 1
            if entry['status'] is not None:  # None: a fault ended it before any response
                self.stats['statuses'][str(entry['status'])] += 1
            self.stats['auth_failures'] += auth_failed
            self.stats['bytes_sent'] += entry['bytes']
            self.stats['log'].append(entry)
            if rejection is not None:
                self.stats['token_rejections'][rejection] += 1

    def stats_snapshot(self):
        """Return the statistics as JSON-ready data. The ``credentials`` part is there only
        while a credential endpoint is enabled, so an S3-only server keeps the old shape."""
        with self.lock:
            snapshot = {'requests': dict(self.stats['requests']),
                        'statuses': dict(self.stats['statuses']),
                        'auth_failures': self.stats['auth_failures'],
                        'bytes_sent': self.stats['bytes_sent'],
                        'log': list(self.stats['log'])}
            if self.s3_faults:
                snapshot['faults'] = [rule.describe() for rule in self.s3_faults]
            if self.tls:
                snapshot['tls'] = {'handshakes': self.stats['tls_handshakes'],
                                   'failures': list(self.stats['tls_failures'])}
            if self.credential_endpoints_enabled():
                now = time.time()
                snapshot['credentials'] = {
                    'issued': [self.temporary[akid].describe(now)
                               for akid in self.stats['issued']],
                    'token_rejections': {code: self.stats['token_rejections'][code]
                                         for code in TOKEN_REJECTION_CODES},
                    'injected_failures': {endpoint: self.stats['injected_failures'][endpoint]
                                          for endpoint in ENDPOINTS},
                }
            return snapshot

    # Credential endpoints: state

    def credential_endpoints_enabled(self):
        return (self.sts_token_file is not None or self.container_enabled()
                or bool(self.imds))

    def container_enabled(self):
        return bool(self.container_credentials)

    def credential_settings(self):
        return {'account_id': self.account_id,
                'sts_token_file': self.sts_token_file, 'sts_role_arn': self.sts_role_arn,
                'sts_duration': self.sts_duration,
                'container_credentials': self.container_credentials,
                'container_token_file': self.container_token_file,
                'container_duration': self.container_duration,
                'imds': self.imds, 'imds_role': self.imds_role,
                'imds_duration': self.imds_duration}

    def configure_credentials(self, **settings):
        """Change the credential endpoint settings (see ``credential_settings`` for the
        names; None clears a file or the role restriction); return all of them. Setting a
        container token file also enables the container endpoint unless
        ``container_credentials`` is given too. Changing nothing is allowed."""
        unknown = set(settings) - set(self.credential_settings())
        if unknown:
            raise ValueError(f'unknown credential settings: {sorted(unknown)}')
        for name in ('sts_duration', 'container_duration', 'imds_duration'):
            value = settings.get(name)
            if name in settings and (not isinstance(value, (int, float))
                                     or isinstance(value, bool)):
                raise ValueError(f'{name} must be a number of seconds')
        for name in ('sts_token_file', 'container_token_file', 'sts_role_arn'):
            if settings.get(name) is not None and not isinstance(settings[name], str):
                raise ValueError(f'{name} must be a string or null')
        for name in ('container_credentials', 'imds'):
            if name in settings and not isinstance(settings[name], bool):
                raise ValueError(f'{name} must be true or false')
        if 'sts_role_arn' in settings and settings['sts_role_arn'] is not None and \
                not ROLE_ARN_RE.fullmatch(settings['sts_role_arn']):
            raise ValueError(f'sts_role_arn must match {ROLE_ARN_PATTERN}')
        if 'imds_role' in settings and (not isinstance(settings['imds_role'], str)
                                        or not re.fullmatch(r'[\w+=,.@-]+',
                                                            settings['imds_role'], re.ASCII)):
            raise ValueError('imds_role must be a role name ([\\w+=,.@-]+)')
        if 'account_id' in settings and not (isinstance(settings['account_id'], str)
                                             and ACCOUNT_RE.fullmatch(settings['account_id'])):
            raise ValueError('account_id must be 12 digits')
        if settings.get('container_token_file') is not None:
            settings.setdefault('container_credentials', True)
        with self.lock:
            for name, value in settings.items():
                setattr(self, name, value)
        if settings.get('sts_token_file') is not None:
            try:
                self.current_web_identity_token()
            except OSError:
                pass  # the file may be written later
        return self.credential_settings()

    def current_web_identity_token(self):
        """Read the STS token file; remember the token so that presenting it after it has been
        replaced gives ExpiredTokenException. Raises OSError."""
        token = read_token_file(self.sts_token_file)
        if token:
            with self.lock:
                self.seen_web_identity_tokens.add(token)
        return token

    def set_fault(self, endpoint, **settings):
        """Replace the failure injection of `endpoint`; return its description."""
        if endpoint not in ENDPOINTS:
            raise ValueError(f'endpoint must be one of {list(ENDPOINTS)}')
        fault = Fault.from_settings(**settings)
        with self.lock:
            self.faults[endpoint] = fault
        return fault.describe()

    def take_fault(self, endpoint):
        """Return (delay, CredentialError or None) for the next request to `endpoint`,
        using up one injected failure."""
        with self.lock:
            fault = self.faults[endpoint]
            if fault.count <= 0:
                return fault.delay, None
            fault.count -= 1
            self.stats['injected_failures'][endpoint] += 1
            return fault.delay, fault.error()

    def set_s3_faults(self, rules):
        """Replace the S3 fault rules with `rules` (dicts); return their descriptions."""
        if not isinstance(rules, list):
            raise ValueError('the fault rules must be a JSON list')
        parsed = [FaultRule.from_dict(rule) for rule in rules]
        with self.lock:
            self.s3_faults = parsed
        return [rule.describe() for rule in parsed]

    def clear_s3_faults(self):
        """Remove every S3 fault rule; return how many there were."""
        with self.lock:
            cleared, self.s3_faults = len(self.s3_faults), []
        return cleared

    def s3_fault_rules(self):
        with self.lock:
            return [rule.describe() for rule in self.s3_faults]

    def take_s3_fault(self, op, bucket, subject, requested=None):
        """The first rule that applies to this request, as (index, FaultRule), using it up
        once; None when none does."""
        with self.lock:
            for index, rule in enumerate(self.s3_faults):
                if rule.matches(op, bucket, subject, requested) and rule.take():
                    return index, rule
        return None

    def record_tls(self, error=None):
        """Count one TLS handshake, or one that failed with `error`."""
        with self.lock:
            if error is None:
                self.stats['tls_handshakes'] += 1
            else:
                self.stats['tls_failures'].append(f'{type(error).__name__}: {error}')

    def issue_credential(self, source, lifetime, role_arn=None, session_name=None,
                         web_identity_token=None):
        """Create and register a temporary credential valid for `lifetime` seconds (its
        expiry is rounded down to a whole second, as the Expiration sent); return it. The
        SHA-256 of `web_identity_token` (STS) is kept, to tell which token was used."""
        now = time.time()
        fingerprint = (None if web_identity_token is None else
                       hashlib.sha256(web_identity_token.strip().encode()).hexdigest())
        credential = TemporaryCredential(
            new_access_key_id(), new_secret_access_key(), new_session_token(), source, now,
            math.floor(now + lifetime), role_arn, session_name, token_sha256=fingerprint)
        with self.lock:
            self.temporary[credential.access_key_id] = credential
            self.stats['issued'].append(credential.access_key_id)
        return credential

    def revoke_credentials(self, code='InvalidToken', status=None, message=None):
        """Revoke every temporary credential issued so far: S3 then answers `code` (see
        REVOCATION_ERRORS) for them. Return how many were revoked (not counting those already
        revoked)."""
        if code not in REVOCATION_ERRORS:
            raise ValueError(f'code must be one of {sorted(REVOCATION_ERRORS)}')
        default_status, default_message = REVOCATION_ERRORS[code]
        if status is not None and (not isinstance(status, int) or not 400 <= status <= 599):
            raise ValueError('status must be an HTTP error status (400..599)')
        error = S3Error(status or default_status, code, message or default_message)
        with self.lock:
            fresh = [credential for credential in self.temporary.values()
                     if credential.revoked is None]
            for credential in fresh:
                credential.revoked = error
        return len(fresh)

    def new_imds_token(self, ttl):
        token = base64.urlsafe_b64encode(secrets.token_bytes(42)).decode()
        now = time.monotonic()
        with self.lock:
            self.imds_tokens = {key: expiry for key, expiry in self.imds_tokens.items()
                                if expiry > now}
            self.imds_tokens[token] = now + ttl
            self.issued_imds_tokens.append(token)
        return token

    def secrets_snapshot(self):
        """Every secret handed out or received (test-only; see GET /__irsafs/secrets)."""
        with self.lock:
            return {'credentials': [{'access_key_id': credential.access_key_id,
                                     'secret_access_key': credential.secret_access_key,
                                     'session_token': credential.session_token,
                                     'source': credential.source}
                                    for credential in self.temporary.values()],
                    'imds_tokens': list(self.issued_imds_tokens),
                    'web_identity_tokens': sorted(self.seen_web_identity_tokens),
                    'signatures': list(self.received_signatures)}

    def imds_token_valid(self, token):
        with self.lock:
            expiry = self.imds_tokens.get(token)
        return expiry is not None and time.monotonic() < expiry


class S3RequestHandler(http.server.BaseHTTPRequestHandler):
    """Dispatches each request: control API, then `handle_extra`, then the credential
    endpoints (`handle_credentials`), then S3.

    Before dispatch `raw_path`, `raw_query` (as sent, undecoded), `body` (bytes) and
    `request_id` are set. S3 operations are methods named in OPERATIONS; they read
    `bucket_name`, `key` (bytes or None) and `params` (decoded query) and answer with `send`
    or by raising S3Error.
    """

    protocol_version = 'HTTP/1.1'
    # Headers and body go out in separate writes; without TCP_NODELAY each response can wait
    # for the client's delayed ACK (about 40 ms).
    disable_nagle_algorithm = True
    OPERATIONS = {
        'HeadBucket': 'head_bucket',
        'ListObjectsV2': 'list_objects_v2',
        'GetObject': 'get_object',
        'HeadObject': 'head_object',
    }
    CONTROL_ACTIONS = {
        ('PUT', 'object'): 'control_put_object',
        ('DELETE', 'object'): 'control_delete_object',
        ('POST', 'bulk'): 'control_bulk',
        ('GET', 'stats'): 'control_stats',
        ('POST', 'reset'): 'control_reset',
        ('POST', 'config'): 'control_config',
        ('POST', 'cred-config'): 'control_cred_config',
        ('POST', 'sts-fail'): 'control_sts_fail',
        ('POST', 'container-fail'): 'control_container_fail',
        ('POST', 'imds-fail'): 'control_imds_fail',
        ('POST', 'revoke'): 'control_revoke',
        ('GET', 'secrets'): 'control_secrets',
        ('POST', 'region'): 'control_region',
        ('POST', 'faults'): 'control_set_faults',
        ('GET', 'faults'): 'control_get_faults',
        ('DELETE', 'faults'): 'control_clear_faults',
    }

    @property
    def s3(self):
        return self.server.s3

    def version_string(self):
        return SERVER_NAME

    def log_message(self, fmt, *args):
        if self.s3.verbose:
            super().log_message(fmt, *args)

    # Dispatch

    def setup(self):
        # Over TLS the handshake happens here, in the connection's own thread; a client that
        # refuses the certificate ends the connection (counted in the statistics).
        if isinstance(self.request, ssl.SSLSocket):
            try:
                self.request.do_handshake()
            except OSError as error:
                self.server.s3.record_tls(error)
                raise
            self.server.s3.record_tls()
        super().setup()

    def dispatch(self):
        self.request_id = secrets.token_hex(8).upper()
        self.status = None
        self.bytes_sent = 0
        self.fault = None          # the S3 fault rule applied to this request, if any
        self.fault_index = None    # its position in the rule list
        # self.path has leading slashes collapsed by http.server; use the target as sent.
        target = self.requestline.split()[1]
        self.raw_path, _, self.raw_query = target.partition('?')
        length = self.headers.get('Content-Length', '0')
        if 'Transfer-Encoding' in self.headers or not length.isdigit():
            self.close_connection = True
            self.send_s3_error(S3Error(411, 'MissingContentLength',
                                       'You must provide the Content-Length HTTP header.'))
            return
        self.body = self.rfile.read(int(length))
        self.virtual_bucket = self.virtual_host_bucket()
        if self.virtual_bucket is None and self.raw_path.startswith(CONTROL_PREFIX):
            self.handle_control()
        elif not self.handle_extra() and not self.handle_credentials():
            self.handle_s3()

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = do_PATCH = do_OPTIONS = dispatch

    def handle_extra(self):
        """Hook for extensions (e.g. STS, IMDS): answer the request and return True to claim
        it before S3 dispatch."""
        return False

    def virtual_host_bucket(self):
        """The bucket named by a virtual-hosted Host header, else None (path-style)."""
        host = self.headers.get('Host', '').rsplit(':', 1)[0].lower()
        if PATH_STYLE_HOST_RE.fullmatch(host):
            return None
        match = VIRTUAL_HOST_RE.fullmatch(host)
        return match['bucket'] if match else None

    def send(self, status, headers, body=b''):
        """Send a response; the body (bytes or memoryview) is written in chunks, except to
        HEAD, whose Content-Length still describes it.

        A pending ``reset``, ``truncate`` or ``stall`` fault (see `handle_s3`) is applied
        here, to whatever response the request gets: the headers still promise the whole
        body. Subclasses that override this method and call it keep the faults."""
        self.status = status
        fault = getattr(self, 'fault', None)
        if fault is not None and fault.action not in ('reset', 'truncate', 'stall'):
            fault = None
        view = memoryview(body) if self.command != 'HEAD' else memoryview(b'')
        cut = None
        if fault is not None:
            if len(view) == 0 or fault.after_bytes is None:
                # Nothing to cut: the fault strikes before the status line.
                if fault.action != 'stall':
                    self.status = None
                    self.abort_connection(reset=fault.action == 'reset')
                    raise ConnectionAborted(fault.action)
                if not self.stall(fault.seconds):
                    self.status = None
                    self.abort_connection(reset=False)
                    raise ConnectionAborted('stall')
                fault = None
            else:
                # Always cut something: at most all but the last byte goes out.
                cut = min(fault.after_bytes, len(view) - 1)
        self.send_response(status)
        self.send_header('x-amz-request-id', self.request_id)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.write_body(view[:cut] if fault is not None else view)
        if fault is None:
            return
        self.wfile.flush()
        if fault.action == 'stall':
            if self.stall(fault.seconds):
                self.write_body(view[cut:])
                return
            self.abort_connection(reset=False)
        else:
            if fault.action == 'reset':
                time.sleep(RESET_GRACE_SECONDS)
            self.abort_connection(reset=fault.action == 'reset')
        raise ConnectionAborted(fault.action)

    def write_body(self, view):
        for offset in range(0, len(view), CHUNK_SIZE):
            chunk = view[offset:offset + CHUNK_SIZE]
            self.wfile.write(chunk)
            self.bytes_sent += len(chunk)

    def stall(self, seconds):
        """Send nothing for `seconds`, keeping the connection open. Returns False as soon as
        the client closes it (a client waiting for a response sends nothing, so a readable
        socket means it has gone), True when the time is up."""
        deadline = time.monotonic() + seconds
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return True
            try:
                readable, _, _ = select.select([self.connection], [], [], min(remaining, 0.25))
            except (OSError, ValueError):
                return False
            if readable:
                return False

    def abort_connection(self, reset):
        """End the connection now: with a TCP reset (RST) when `reset`, else with a normal
        close (FIN) after whatever was sent."""
        self.close_connection = True
        sock = self.connection
        try:
            self.wfile.flush()
        except (OSError, ValueError):
            pass
        try:
            if reset:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
            else:
                sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        # The socket really closes once rfile, made from it, lets go of it too.
        sock.close()
        self.rfile.close()

    def send_s3_error(self, error):
        """Send an S3 error; HEAD gets the status and headers only, as from S3."""
        headers = dict(error.headers)
        body = b''
        if self.command != 'HEAD':
            body = error.to_xml(self.request_id)
            headers['Content-Type'] = 'application/xml'
        self.send(error.status, headers, body)

    # S3

    def handle_s3(self):
        self.query = parse_query(self.raw_query)
        self.bucket_name, self.key = self.s3_address()
        op = self.s3_operation()
        auth_failed = False
        rejection = None
        try:
            self.params = self.decode_params()
            if not self.s3.no_auth:
                try:
                    self.authenticate()
                except S3Error:
                    auth_failed = True
                    raise
            if op not in self.OPERATIONS:
                if op == 'Unsupported':
                    raise S3Error(405, 'MethodNotAllowed',
                                  'The specified method is not allowed against this resource.',
                                  [('Method', self.command)])
                raise S3Error(501, 'NotImplemented',
                              f'{op} is not implemented by this test server.')
            self.inject_fault(op)
            getattr(self, self.OPERATIONS[op])()
        except S3Error as error:
            if auth_failed and error.code in TOKEN_REJECTION_CODES:
                rejection = error.code
            try:
                self.send_s3_error(error)
            except ConnectionAborted:
                pass
        except ConnectionAborted:
            pass
        except (ConnectionError, ssl.SSLError):
            raise
        except Exception:  # pylint: disable=broad-except
            traceback.print_exc()
            self.send_s3_error(S3Error(500, 'InternalError',
                                       'We encountered an internal error. Please try again.'))
        finally:
            entry = {'op': op, 'method': self.command, 'path': self.raw_path,
                     'query': self.raw_query, 'status': self.status,
                     'range': self.headers.get('Range'),
                     'if_match': self.headers.get('If-Match'), 'bytes': self.bytes_sent}
            if self.fault is not None:
                entry['fault'] = self.fault_index
            self.s3.record(entry, auth_failed, rejection)

    def inject_fault(self, op):
        """Apply the first S3 fault rule matching this (authenticated) request, if any: an
        injected error is raised as S3Error, a delay is slept, a reset before any response is
        done at once; reset, truncate and stall after some body bytes happen in `send`, a
        wrong Content-Range in `send_object`."""
        if op == 'ListObjectsV2':
            subject = self.params.get('prefix', '').encode()
        elif op == 'HeadBucket':
            subject = b''
        else:
            subject = self.key
        requested = None
        match = RANGE_RE.fullmatch((self.headers.get('Range') or '').strip())
        if match and match[1] and match[2] and int(match[2]) >= int(match[1]):
            requested = int(match[2]) - int(match[1]) + 1
        taken = self.s3.take_s3_fault(op, self.bucket_name, subject, requested)
        if taken is None:
            return
        self.fault_index, self.fault = taken
        rule = self.fault
        if rule.action == 'error':
            raise S3Error(rule.status, rule.code, rule.message, [], rule.headers)
        if rule.action == 'delay':
            time.sleep(rule.seconds)
        elif rule.action == 'reset' and rule.after_bytes is None:
            self.abort_connection(reset=True)
            raise ConnectionAborted('reset')

    def s3_address(self):
        """Return (bucket name or None, key bytes or None) from the decoded path."""
        path = unquote_to_bytes(self.raw_path)
        if self.virtual_bucket is not None:
            return self.virtual_bucket, path[1:] or None
        name, _, key = path[1:].partition(b'/')
        return name.decode('utf-8', 'replace') or None, key or None

    def s3_operation(self):
        """Name the S3 operation requested ('Unsupported' when there is none)."""
        method = self.command
        if self.bucket_name is None:
            return 'ListBuckets' if method == 'GET' and self.key is None else 'Unsupported'
        if self.key is None:
            if method == 'HEAD':
                return 'HeadBucket'
            if method == 'GET':
                list_type = dict(self.query).get(b'list-type')
                return 'ListObjectsV2' if list_type == b'2' else 'ListObjects'
            return 'Unsupported'
        return {'GET': 'GetObject', 'HEAD': 'HeadObject'}.get(method, 'Unsupported')

    def decode_params(self):
        """Return the query as a dict of str (last value wins); it must be UTF-8."""
        try:
            return {name.decode(): value.decode() for name, value in self.query}
        except UnicodeDecodeError:
            raise S3Error(400, 'InvalidArgument',
                          'Query parameters must be valid UTF-8 once percent-decoded.') from None

    def require_bucket(self):
        bucket = self.s3.buckets.get(self.bucket_name)
        if bucket is None:
            raise S3Error(404, 'NoSuchBucket', 'The specified bucket does not exist',
                          [('BucketName', self.bucket_name)])
        return bucket

    # S3: authentication

    def authenticate(self):
        """Check the request's SigV4 Authorization header; raise S3Error if it fails."""
        header = self.headers.get('Authorization')
        if header is None:
            raise S3Error(403, 'AccessDenied', 'Access Denied')
        (akid, scope_date, region, service, terminator), signed, signature = \
            self.parse_authorization(header)
        with self.s3.lock:
            self.s3.received_signatures.append(signature)
        with self.s3.lock:
            temporary = self.s3.temporary.get(akid)
        if akid not in self.s3.credentials and temporary is None:
            raise S3Error(403, 'InvalidAccessKeyId',
                          'The AWS Access Key Id you provided does not exist in our records.',
                          [('AWSAccessKeyId', akid)])
        if service != 's3' or terminator != 'aws4_request':
            raise malformed_authorization(f"incorrect service '{service}' or terminator "
                                          f"'{terminator}'; expecting 's3' and 'aws4_request'")
        if region != self.s3.region:
            raise S3Error(400, 'AuthorizationHeaderMalformed',
                          f"The authorization header is malformed; the region '{region}' is "
                          f"wrong; expecting '{self.s3.region}'",
                          [('Region', self.s3.region)],
                          {'x-amz-bucket-region': self.s3.region})
        amz_date = self.check_amz_date(scope_date)
        content_sha256 = self.headers.get('x-amz-content-sha256')
        if content_sha256 is None:
            raise S3Error(400, 'InvalidRequest',
                          'Missing required header for this request: x-amz-content-sha256')
        present = {name.lower() for name in self.headers.keys()}
        unsigned = ({'host', 'x-amz-date', 'x-amz-content-sha256'}
                    | {name for name in present if name.startswith('x-amz-')}) - set(signed)
        if unsigned:
            raise S3Error(403, 'AccessDenied',
                          'There were headers present in the request which were not signed',
                          [('HeadersNotSigned', ', '.join(sorted(unsigned)))])
        if akid in self.s3.credentials:
            secret, token = self.s3.credentials[akid]
            if self.headers.get('x-amz-security-token') != token:
                raise S3Error(403, 'InvalidToken',
                              'The provided token is malformed or otherwise invalid.')
        else:
            secret, token = temporary.secret_access_key, temporary.session_token
            self.check_temporary_credential(temporary)
        canonical_request, string_to_sign, expected = self.expected_signature(
            akid, secret, token, amz_date, signed)
        if not hmac.compare_digest(expected.encode(), signature.encode('latin-1')):
            raise S3Error(403, 'SignatureDoesNotMatch',
                          'The request signature we calculated does not match the signature '
                          'you provided. Check your key and signing method.',
                          [('AWSAccessKeyId', akid),
                           ('StringToSign', string_to_sign),
                           ('SignatureProvided', signature),
                           ('StringToSignBytes', string_to_sign.encode().hex(' ')),
                           ('CanonicalRequest', canonical_request),
                           ('CanonicalRequestBytes', canonical_request.encode().hex(' '))])
        body_sha256 = hashlib.sha256(self.body).hexdigest()
        if content_sha256 not in (UNSIGNED_PAYLOAD, body_sha256):
            raise S3Error(400, 'XAmzContentSHA256Mismatch',
                          "The provided 'x-amz-content-sha256' header does not match what "
                          'was computed.',
                          [('ClientComputedContentSHA256', content_sha256),
                           ('S3ComputedContentSHA256', body_sha256)])

    def check_temporary_credential(self, credential):
        """Check the token sent with an issued credential, then that the credential is
        neither revoked nor expired; raise S3Error as S3 does (both 400)."""
        if self.headers.get('x-amz-security-token') != credential.session_token:
            raise S3Error(400, 'InvalidToken',
                          'The provided token is malformed or otherwise invalid.')
        if credential.revoked is not None:
            revoked = credential.revoked
            raise S3Error(revoked.status, revoked.code, revoked.message)
        if time.time() >= credential.expires:
            raise S3Error(400, 'ExpiredToken', 'The provided token has expired.')

    @staticmethod
    def parse_authorization(header):
        """Split ``AWS4-HMAC-SHA256 Credential=.., SignedHeaders=.., Signature=..`` into
        (the five credential scope fields, signed header names, signature)."""
        algorithm, _, rest = header.strip().partition(' ')
        if algorithm != 'AWS4-HMAC-SHA256':
            raise malformed_authorization(f"unsupported algorithm '{algorithm}'")
        fields = {}
        for part in rest.split(','):
            name, _, value = part.strip().partition('=')
            fields[name] = value
        try:
            scope = fields['Credential'].split('/')
            signed = fields['SignedHeaders'].split(';')
            signature = fields['Signature']
        except KeyError as missing:
            raise malformed_authorization(f'missing {missing.args[0]}') from None
        if len(scope) != 5 or not all(scope):
            raise malformed_authorization(
                'the Credential is mal-formed; expecting '
                '"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".')
        return scope, signed, signature

    def check_amz_date(self, scope_date):
        """Return x-amz-date after checking its format, scope date and clock skew."""
        amz_date = self.headers.get('x-amz-date', '')
        if not AMZ_DATE_RE.fullmatch(amz_date):
            raise S3Error(403, 'AccessDenied',
                          'AWS authentication requires a valid Date or x-amz-date header')
        try:
            request_time = calendar.timegm(time.strptime(amz_date, '%Y%m%dT%H%M%SZ'))
        except ValueError:
            raise S3Error(403, 'AccessDenied', 'AWS authentication requires a valid Date or '
                          'x-amz-date header') from None
        if scope_date != amz_date[:8]:
            raise malformed_authorization('Invalid credential date. Date is not the same as '
                                          'X-Amz-Date.')
        now = time.time()
        if abs(now - request_time) > MAX_SKEW_SECONDS:
            raise S3Error(403, 'RequestTimeTooSkewed',
                          'The difference between the request time and the current time is '
                          'too large.',
                          [('RequestTime', amz_date), ('ServerTime', iso8601(now)),
                           ('MaxAllowedSkewMilliseconds', str(MAX_SKEW_SECONDS * 1000))])
        return amz_date

    def expected_signature(self, akid, secret, token, amz_date, signed):
        """Recompute (canonical request, string to sign, signature) with botocore.

        The path and query are decoded and re-encoded canonically rather than taken as sent,
        so a client that signs one encoding and sends another is caught.
        """
        path = quote(unquote_to_bytes(self.raw_path), safe='/-_.~')
        params = [(name.decode(), value.decode()) for name, value in self.query]
        request = botocore.awsrequest.AWSRequest(
            method=self.command, url=f"http://{self.headers.get('Host', '')}{path}",
            params=params)
        for name in signed:
            for value in self.headers.get_all(name, []):
                # http.server decodes header bytes as Latin-1; clients sign UTF-8.
                request.headers[name] = value.encode('latin-1').decode('utf-8', 'replace')
        request.context['timestamp'] = amz_date
        signer = _SignatureChecker(botocore.credentials.Credentials(akid, secret, token),
                                   's3', self.s3.region)
        canonical_request = signer.canonical_request(request)
        string_to_sign = signer.string_to_sign(request, canonical_request)
        return canonical_request, string_to_sign, signer.signature(string_to_sign, request)

    # S3: operations

    def head_bucket(self):
        self.require_bucket()
        self.send(200, {'x-amz-bucket-region': self.s3.region})

    def list_objects_v2(self):
        params = self.params
        encoding = None if self.s3.ignore_encoding_type else params.get('encoding-type')
        if encoding not in (None, 'url'):
            raise S3Error(400, 'InvalidArgument', 'Invalid Encoding Method specified in Request',
                          [('ArgumentName', 'encoding-type'), ('ArgumentValue', encoding)])
        max_keys_text = params.get('max-keys', str(MAX_LIST_KEYS))
        if not re.fullmatch('[0-9]+', max_keys_text):
            raise S3Error(400, 'InvalidArgument',
                          'Provided max-keys not an integer or within integer range',
                          [('ArgumentName', 'max-keys'), ('ArgumentValue', max_keys_text)])
        max_keys = min(int(max_keys_text), MAX_LIST_KEYS)
        prefix = params.get('prefix', '')
        delimiter = params.get('delimiter', '')
        token = params.get('continuation-token')
        start_after = params.get('start-after')
        if token is not None:
            marker, marker_is_prefix = decode_continuation_token(token)
        elif start_after:
            marker, marker_is_prefix = start_after.encode(), False
        else:
            marker, marker_is_prefix = None, False
        bucket = self.require_bucket()
        with self.s3.lock:
            entries, truncated = bucket.list_page(
                prefix.encode(), delimiter.encode(), marker, marker_is_prefix,
                min(max_keys, self.s3.page_size))

        def text(value):
            # S3 encodes a space as '+' and a literal '+' as %2B.
            return quote_plus(value, safe='/') if encoding else xml_text(value)

        parts = [XML_DECLARATION, f'<ListBucketResult xmlns="{S3_XMLNS}">',
                 f'<Name>{xml_text(bucket.name)}</Name>', f'<Prefix>{text(prefix)}</Prefix>']
        if delimiter:
            parts.append(f'<Delimiter>{text(delimiter)}</Delimiter>')
        parts += [f'<MaxKeys>{max_keys}</MaxKeys>', f'<KeyCount>{len(entries)}</KeyCount>',
                  f'<IsTruncated>{str(truncated).lower()}</IsTruncated>']
        if token is not None:
            parts.append(f'<ContinuationToken>{xml_text(token)}</ContinuationToken>')
        if truncated:
            name, obj = entries[-1]
            parts.append('<NextContinuationToken>%s</NextContinuationToken>'
                         % encode_continuation_token(name, obj is None))
        if start_after is not None:
            parts.append(f'<StartAfter>{text(start_after)}</StartAfter>')
        if encoding:
            parts.append('<EncodingType>url</EncodingType>')
        for name, obj in entries:
            if obj is not None:
                parts.append(
                    f'<Contents><Key>{text(name)}</Key>'
                    f'<LastModified>{iso8601(obj.last_modified)}</LastModified>'
                    f'<ETag>{xml_text(obj.etag)}</ETag><Size>{len(obj.data)}</Size>'
                    f'<StorageClass>{obj.storage_class}</StorageClass></Contents>')
        parts += [f'<CommonPrefixes><Prefix>{text(name)}</Prefix></CommonPrefixes>'
                  for name, obj in entries if obj is None]
        parts.append('</ListBucketResult>')
        self.send(200, {'Content-Type': 'application/xml'},
                  ''.join(parts).encode('utf-8', 'surrogateescape'))

    def get_object(self):
        self.send_object()

    def head_object(self):
        self.send_object()

    def send_object(self):
        """GetObject and HeadObject (`send` leaves out the body for HEAD)."""
        bucket = self.require_bucket()
        with self.s3.lock:
            obj = bucket.objects.get(self.key)
        if obj is None:
            raise S3Error(404, 'NoSuchKey', 'The specified key does not exist.',
                          [('Key', self.key)])
        if self.command == 'GET' and obj.storage_class in ARCHIVED_STORAGE_CLASSES:
            raise S3Error(403, 'InvalidObjectState',
                          "The operation is not valid for the object's storage class",
                          [('StorageClass', obj.storage_class)])
        headers = {'ETag': obj.etag,
                   'Last-Modified': email.utils.formatdate(obj.last_modified, usegmt=True),
                   'Accept-Ranges': 'bytes'}
        if obj.storage_class != 'STANDARD':
            headers['x-amz-storage-class'] = obj.storage_class
        if_match = self.headers.get('If-Match')
        if if_match is not None and not etag_matches(if_match, obj.etag):
            raise S3Error(412, 'PreconditionFailed',
                          'At least one of the pre-conditions you specified did not hold',
                          [('Condition', 'If-Match')], headers)
        if_none_match = self.headers.get('If-None-Match')
        if if_none_match is not None and etag_matches(if_none_match, obj.etag):
            self.send(304, headers)
            return
        headers['Content-Type'] = 'application/octet-stream'
        body = memoryview(obj.data)
        span = parse_range(self.headers.get('Range'), len(body))
        fault = getattr(self, 'fault', None)
        if (fault is not None and fault.action == 'wrong_range' and self.command == 'GET'
                and len(body) > 0):
            # A 206 for other bytes than those asked for, labelled as what they are.
            first, last = misplaced_span(*(span or (0, len(body) - 1)), len(body),
                                         fault.shift)
            headers['Content-Range'] = f'bytes {first}-{last}/{len(body)}'
            self.send(206, headers, body[first:last + 1])
            return
        if span is None:
            self.send(200, headers, body)
        else:
            first, last = span
            headers['Content-Range'] = f'bytes {first}-{last}/{len(body)}'
            self.send(206, headers, body[first:last + 1])

    # Credential endpoints

    def handle_credentials(self):
        """Answer the request if it is for an enabled credential endpoint (STS, container
        credentials, IMDS) and return True; else return False. Injected delays and failures
        (`S3Server.take_fault`) come first; every request is counted under its op name."""
        route = self.credential_route()
        if route is None:
            return False
        endpoint, op, handler = route
        self.sts_id = None
        try:
            delay, failure = self.s3.take_fault(endpoint)
            if delay:
                time.sleep(delay)
            if failure is not None:
                raise failure
            handler()
        except CredentialError as error:
            self.send_credential_error(endpoint, error)
        except ConnectionError:
            raise
        except Exception:  # pylint: disable=broad-except
            traceback.print_exc()
            self.send_credential_error(endpoint, CredentialError(
                500, 'InternalFailure', 'An internal error has occurred'))
        finally:
            self.s3.record({'op': op, 'method': self.command, 'path': self.raw_path,
                            'query': self.raw_query, 'status': self.status, 'range': None,
                            'if_match': None, 'bytes': self.bytes_sent}, False)
        return True

    def credential_route(self):
        """Return (endpoint, op name, method) for a credential endpoint request, else None."""
        path = self.raw_path
        path_style = self.virtual_bucket is None
        if self.s3.sts_token_file is not None and path == '/' and (
                path_style or STS_HOST_RE.fullmatch(
                    self.headers.get('Host', '').rsplit(':', 1)[0].lower())):
            if self.command == 'POST':
                action = dict(urllib.parse.parse_qsl(
                    self.body.decode('utf-8', 'replace'), keep_blank_values=True)).get('Action')
            else:
                action = dict(parse_query(self.raw_query)).get(b'Action')
                action = None if action is None else action.decode('utf-8', 'replace')
            if self.command == 'POST' or action is not None:
                return 'sts', STS_ACTION if action == STS_ACTION else 'STSOther', self.sts_request
        if self.s3.container_enabled() and path_style and (
                path in CONTAINER_PATHS or path.startswith(CONTAINER_PREFIX)):
            return 'container', 'ContainerCredentials', self.container_request
        if self.s3.imds and path_style and path.startswith(IMDS_PREFIX):
            if path == IMDS_TOKEN_PATH:
                return 'imds', 'IMDSToken', self.imds_token
            if path in (IMDS_CREDENTIALS_PATH, IMDS_CREDENTIALS_PATH.rstrip('/')):
                return 'imds', 'IMDSRoleName', self.imds_role_name
            if path.startswith(IMDS_CREDENTIALS_PATH):
                return 'imds', 'IMDSCredentials', self.imds_credentials
            return 'imds', 'IMDSOther', self.imds_other
        return None

    def send_credential_error(self, endpoint, error):
        """Send `error` the way `endpoint` reports errors: STS an ErrorResponse document,
        the container endpoint a JSON object, IMDS an HTML page."""
        if endpoint == 'sts':
            kind = 'Sender' if error.status < 500 else 'Receiver'
            body = (f'<ErrorResponse xmlns="{STS_XMLNS}">\n'
                    f'  <Error>\n    <Type>{kind}</Type>\n    <Code>{xml_text(error.code)}</Code>\n'
                    f'    <Message>{xml_text(error.message)}</Message>\n  </Error>\n'
                    f'  <RequestId>{self.sts_request_id()}</RequestId>\n</ErrorResponse>\n')
            self.send(error.status, {'Content-Type': 'text/xml',
                                     'x-amzn-RequestId': self.sts_request_id()},
                      body.encode('utf-8', 'surrogateescape'))
        elif endpoint == 'container':
            self.send(error.status, {'Content-Type': 'application/json'},
                      json.dumps({'Code': error.code, 'Message': error.message}).encode())
        else:
            self.send(error.status, {'Content-Type': 'text/html'}, imds_error_page(error.status))

    def sts_request_id(self):
        """The request id of an STS answer (a UUID, as STS uses), made once per request."""
        if self.sts_id is None:
            self.sts_id = str(uuid.uuid4())
        return self.sts_id

    # Credential endpoints: STS

    def sts_request(self):
        """AssumeRoleWithWebIdentity: an unsigned, form-encoded POST."""
        if self.command != 'POST':
            raise CredentialError(400, 'InvalidAction',
                                  'This test STS endpoint only accepts POST with the '
                                  'parameters in an application/x-www-form-urlencoded body')
        content_type = self.headers.get('Content-Type', '')
        if content_type.split(';')[0].strip().lower() != 'application/x-www-form-urlencoded':
            raise CredentialError(400, 'InvalidParameterValue',
                                  'The request body must be application/x-www-form-urlencoded '
                                  f'(Content-Type was {content_type!r})')
        try:
            params = dict(urllib.parse.parse_qsl(self.body.decode('utf-8'),
                                                 keep_blank_values=True))
        except UnicodeDecodeError:
            raise CredentialError(400, 'InvalidParameterValue',
                                  'The request body is not UTF-8 once decoded') from None
        action = params.get('Action')
        if action is None:
            raise CredentialError(400, 'MissingAction',
                                  'Missing Action (this test server reads parameters from the '
                                  'form-encoded body only)')
        if action != STS_ACTION:
            raise CredentialError(400, 'InvalidAction',
                                  f'Could not find operation {action} for version '
                                  f'{params.get("Version")} (this test server implements only '
                                  f'{STS_ACTION})')
        if params.get('Version') != STS_VERSION:
            raise CredentialError(400, 'InvalidAction',
                                  f'Could not find operation {STS_ACTION} for version '
                                  f'{params.get("Version")}')
        signed = self.signing_evidence(params)
        if signed:
            raise CredentialError(400, 'InvalidParameterValue',
                                  f'{STS_ACTION} must be sent unsigned, but the request '
                                  f'carries {", ".join(signed)}')
        errors = sts_validation_errors(params)
        if errors:
            count = len(errors)
            raise CredentialError(400, 'ValidationError',
                                  f'{count} validation error{"s" if count > 1 else ""} '
                                  f'detected: ' + '; '.join(errors))
        token = params['WebIdentityToken']
        self.check_web_identity_token(token)
        role_arn = params['RoleArn']
        if self.s3.sts_role_arn is not None and role_arn != self.s3.sts_role_arn:
            raise CredentialError(403, 'AccessDenied',
                                  'Not authorized to perform sts:AssumeRoleWithWebIdentity')
        session_name = params['RoleSessionName']
        credential = self.s3.issue_credential('sts', self.s3.sts_duration, role_arn,
                                              session_name, web_identity_token=token)
        self.send(200, {'Content-Type': 'text/xml', 'x-amzn-RequestId': self.sts_request_id()},
                  sts_response(role_arn, session_name, token, credential,
                               self.sts_request_id()).encode())

    def signing_evidence(self, params):
        """Names of the signing headers and parameters the request carries."""
        found = [name for name in ('Authorization', 'X-Amz-Security-Token')
                 if name in self.headers]
        query = {name.decode('utf-8', 'replace') for name, _ in parse_query(self.raw_query)}
        for name in ('X-Amz-Signature', 'X-Amz-Credential', 'X-Amz-Security-Token'):
            if name in params or name in query:
                found.append(f'the {name} parameter')
        return found

    def check_web_identity_token(self, token):
        """Accept only the token now in the STS token file (whitespace around either is
        ignored: a file written with a trailing newline still works)."""
        token = token.strip()
        try:
            current = self.s3.current_web_identity_token()
        except OSError as error:
            raise CredentialError(400, 'InvalidIdentityToken',
                                  f'Incorrect token audience (the test server cannot read its '
                                  f'token file: {error.strerror})') from None
        if current and hmac.compare_digest(token.encode(), current.encode()):
            return
        with self.s3.lock:
            seen = token in self.s3.seen_web_identity_tokens
        if seen:
            now = int(time.time())
            expiry = jwt_claims(token).get('exp', now - 1)
            raise CredentialError(400, 'ExpiredTokenException',
                                  f'Token expired: current date/time {now} must be before the '
                                  f'expiration date/time {expiry}')
        raise CredentialError(400, 'InvalidIdentityToken', 'Incorrect token audience')

    # Credential endpoints: container credentials (EKS Pod Identity, ECS)

    def container_request(self):
        if self.command != 'GET':
            raise CredentialError(405, 'MethodNotAllowed', f'{self.command} is not allowed')
        token_file = self.s3.container_token_file
        if token_file is not None:
            try:
                expected = read_token_file(token_file)
            except OSError as error:
                raise CredentialError(403, 'AccessDenied',
                                      'The test server cannot read its authorization token '
                                      f'file: {error.strerror}') from None
            sent = self.headers.get('Authorization')
            if sent is None:
                raise CredentialError(401, 'Unauthorized',
                                      'The Authorization header is missing')
            if not expected or not hmac.compare_digest(sent.encode('latin-1'),
                                                       expected.encode('utf-8')):
                hint = (' (send the token itself, without "Bearer ")'
                        if expected and sent == f'Bearer {expected}' else '')
                raise CredentialError(403, 'AccessDenied',
                                      'The Authorization header does not match the '
                                      f'authorization token{hint}')
        credential = self.s3.issue_credential('container', self.s3.container_duration)
        body = {'AccessKeyId': credential.access_key_id,
                'SecretAccessKey': credential.secret_access_key,
                'Token': credential.session_token,
                'AccountId': self.s3.account_id,
                'Expiration': iso8601_seconds(credential.expires)}
        self.send(200, {'Content-Type': 'application/json'}, json.dumps(body).encode())

    # Credential endpoints: IMDSv2

    def imds_token(self):
        if self.command != 'PUT':
            raise CredentialError(405, 'MethodNotAllowed', f'{self.command} is not allowed')
        if 'X-Forwarded-For' in self.headers:
            raise CredentialError(403, 'Forbidden', 'X-Forwarded-For is not allowed')
        ttl = self.headers.get('X-aws-ec2-metadata-token-ttl-seconds', '').strip()
        if not ttl.isdigit() or not 1 <= int(ttl) <= IMDS_MAX_TTL:
            raise CredentialError(400, 'BadRequest',
                                  'X-aws-ec2-metadata-token-ttl-seconds must be 1..21600')
        token = self.s3.new_imds_token(int(ttl))
        self.send(200, {'Content-Type': 'text/plain',
                        'X-aws-ec2-metadata-token-ttl-seconds': str(int(ttl))}, token.encode())

    def imds_check_token(self):
        """IMDSv2 only: a metadata request needs a valid session token."""
        if self.command not in ('GET', 'HEAD'):
            raise CredentialError(405, 'MethodNotAllowed', f'{self.command} is not allowed')
        token = self.headers.get('X-aws-ec2-metadata-token')
        if token is None or not self.s3.imds_token_valid(token):
            raise CredentialError(401, 'Unauthorized', 'a valid IMDSv2 token is required')

    def imds_role_name(self):
        self.imds_check_token()
        self.send(200, {'Content-Type': 'text/plain'}, self.s3.imds_role.encode())

    def imds_credentials(self):
        self.imds_check_token()
        role = unquote_to_bytes(self.raw_path[len(IMDS_CREDENTIALS_PATH):]).decode(
            'utf-8', 'replace')
        if role != self.s3.imds_role:
            raise CredentialError(404, 'NotFound', f'no role {role}')
        role_arn = f'arn:aws:iam::{self.s3.account_id}:role/{role}'
        credential = self.s3.issue_credential('imds', self.s3.imds_duration, role_arn)
        body = {'Code': 'Success', 'LastUpdated': iso8601_seconds(credential.issued),
                'Type': 'AWS-HMAC', 'AccessKeyId': credential.access_key_id,
                'SecretAccessKey': credential.secret_access_key,
                'Token': credential.session_token,
                'Expiration': iso8601_seconds(credential.expires)}
        self.send(200, {'Content-Type': 'text/plain'}, json.dumps(body, indent=2).encode())

    def imds_other(self):
        self.imds_check_token()
        raise CredentialError(404, 'NotFound', 'not served by this test server')

    # Control API

    def handle_control(self):
        action = self.CONTROL_ACTIONS.get((self.command, self.raw_path[len(CONTROL_PREFIX):]))
        try:
            if action is None:
                raise ControlError(404, f'no control action {self.command} {self.raw_path}')
            status, result = 200, getattr(self, action)(dict(parse_query(self.raw_query)))
        except ControlError as error:
            status, result = error.status, {'error': str(error)}
        except (ValueError, TypeError, KeyError) as error:
            status, result = 400, {'error': f'{type(error).__name__}: {error}'}
        self.send(status, {'Content-Type': 'application/json'}, json.dumps(result).encode())

    @staticmethod
    def control_param(query, name):
        if name not in query:
            raise ControlError(400, f'missing query parameter {name.decode()}')
        return query[name]

    def control_put_object(self, query):
        mtime = self.headers.get('x-test-last-modified')
        etag = self.s3.put_object(
            self.control_param(query, b'bucket').decode(), self.control_param(query, b'key'),
            self.body, self.headers.get('x-test-storage-class', 'STANDARD'),
            None if mtime is None else float(mtime))
        return {'etag': etag}

    def control_delete_object(self, query):
        return {'deleted': self.s3.delete_object(self.control_param(query, b'bucket').decode(),
                                                 self.control_param(query, b'key'))}

    def control_bulk(self, query):
        bucket = self.control_param(query, b'bucket').decode()
        items = json.loads(self.body or b'[]')
        for item in items:
            if 'key_b64' in item:
                key = base64.b64decode(item['key_b64'], validate=True)
            else:
                key = item['key'].encode()
            if 'data_b64' in item:
                data = base64.b64decode(item['data_b64'], validate=True)
            else:
                data = make_data(item['size'], item['seed'])
            self.s3.put_object(bucket, key, data, item.get('storage_class', 'STANDARD'),
                               item.get('mtime'))
        with self.s3.lock:
            self.s3.buckets.setdefault(bucket, Bucket(bucket))
        return {'count': len(items)}

    def control_stats(self, _query):
        return self.s3.stats_snapshot()

    def control_reset(self, _query):
        self.s3.reset_stats()
        return {}

    def control_config(self, _query):
        return self.s3.configure(**json.loads(self.body or b'{}'))

    def json_object(self):
        value = json.loads(self.body or b'{}')
        if not isinstance(value, dict):
            raise ValueError('the body must be a JSON object')
        return value

    def control_cred_config(self, _query):
        return self.s3.configure_credentials(**self.json_object())

    def control_sts_fail(self, _query):
        return self.s3.set_fault('sts', **self.json_object())

    def control_container_fail(self, _query):
        return self.s3.set_fault('container', **self.json_object())

    def control_imds_fail(self, _query):
        return self.s3.set_fault('imds', **self.json_object())

    def control_revoke(self, _query):
        return {'revoked': self.s3.revoke_credentials(**self.json_object())}

    def control_secrets(self, _query):
        return self.s3.secrets_snapshot()


    def control_region(self, _query):
        return {'region': self.s3.set_region(self.json_object().get('region'))}

    def control_set_faults(self, _query):
        rules = json.loads(self.body or b'[]')
        if isinstance(rules, dict):
            rules = [rules]
        return {'faults': self.s3.set_s3_faults(rules)}

    def control_get_faults(self, _query):
        return {'faults': self.s3.s3_fault_rules()}

    def control_clear_faults(self, _query):
        return {'cleared': self.s3.clear_s3_faults()}


def sts_validation_errors(params):
    """The AssumeRoleWithWebIdentity parameter errors, worded like STS's ValidationError."""
    errors = []

    def value(name):
        return params.get(name[0].upper() + name[1:])

    def fail(name, constraint):
        shown = 'null' if value(name) is None else f"'{value(name)}'"
        errors.append(f"Value {shown} at '{name}' failed to satisfy constraint: "
                      f'Member must {constraint}')

    for name in ('roleArn', 'roleSessionName', 'webIdentityToken'):
        if value(name) is None:
            fail(name, 'not be null')
    role_arn, session_name = value('roleArn'), value('roleSessionName')
    if role_arn is not None and not ROLE_ARN_RE.fullmatch(role_arn):
        fail('roleArn', f'satisfy regular expression pattern: {ROLE_ARN_PATTERN}')
    if session_name is not None:
        if len(session_name) < 2:
            fail('roleSessionName', 'have length greater than or equal to 2')
        elif len(session_name) > 64:
            fail('roleSessionName', 'have length less than or equal to 64')
        if not SESSION_NAME_RE.fullmatch(session_name):
            fail('roleSessionName', f'satisfy regular expression pattern: '
                                    f'{SESSION_NAME_PATTERN}')
    token = value('webIdentityToken')
    if token is not None and len(token) < 4:
        fail('webIdentityToken', 'have length greater than or equal to 4')
    duration = value('durationSeconds')
    if duration is not None:
        if not re.fullmatch('[0-9]{1,9}', duration):
            fail('durationSeconds', 'be an integer')
        elif int(duration) < 900:
            fail('durationSeconds', 'have value greater than or equal to 900')
        elif int(duration) > 43200:
            fail('durationSeconds', 'have value less than or equal to 43200')
    return errors


def sts_response(role_arn, session_name, token, credential, request_id):
    """The AssumeRoleWithWebIdentityResponse document, laid out like STS's (indented, and not
    in alphabetical order, so that clients must find elements by name)."""
    partition, account, role_path = ROLE_ARN_RE.fullmatch(role_arn).groups()
    role_name = role_path.rstrip('/').rsplit('/', 1)[-1] or role_path
    role_id = 'AROA' + ''.join(UPPER_ALNUM[byte % 32]
                               for byte in hashlib.sha256(role_arn.encode()).digest()[:17])
    claims = jwt_claims(token)
    audience = claims.get('aud', 'sts.amazonaws.com')
    if isinstance(audience, list):
        audience = audience[0] if audience else 'sts.amazonaws.com'
    issuer = claims.get('iss')
    provider = (f'arn:{partition}:iam::{account}:oidc-provider/'
                f'{str(issuer).removeprefix("https://")}' if issuer else 'www.amazon.com')
    subject = claims.get('sub', DEFAULT_SUBJECT)
    return (
        f'<AssumeRoleWithWebIdentityResponse xmlns="{STS_XMLNS}">\n'
        f'  <AssumeRoleWithWebIdentityResult>\n'
        f'    <SubjectFromWebIdentityToken>{xml_text(str(subject))}'
        f'</SubjectFromWebIdentityToken>\n'
        f'    <Audience>{xml_text(str(audience))}</Audience>\n'
        f'    <AssumedRoleUser>\n'
        f'      <Arn>arn:{partition}:sts::{account}:assumed-role/{xml_text(role_name)}/'
        f'{xml_text(session_name)}</Arn>\n'
        f'      <AssumedRoleId>{role_id}:{xml_text(session_name)}</AssumedRoleId>\n'
        f'    </AssumedRoleUser>\n'
        f'    <Credentials>\n'
        f'      <SessionToken>{credential.session_token}</SessionToken>\n'
        f'      <SecretAccessKey>{credential.secret_access_key}</SecretAccessKey>\n'
        f'      <Expiration>{iso8601_seconds(credential.expires)}</Expiration>\n'
        f'      <AccessKeyId>{credential.access_key_id}</AccessKeyId>\n'
        f'    </Credentials>\n'
        f'    <Provider>{xml_text(provider)}</Provider>\n'
        f'  </AssumeRoleWithWebIdentityResult>\n'
        f'  <ResponseMetadata>\n'
        f'    <RequestId>{request_id}</RequestId>\n'
        f'  </ResponseMetadata>\n'
        f'</AssumeRoleWithWebIdentityResponse>\n')


def imds_error_page(status):
    """The HTML page IMDS sends with an error status."""
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = 'Error'
    return (f'<?xml version="1.0" encoding="iso-8859-1"?>\n'
            f'<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"\n'
            f'\t"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">\n'
            f'<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">\n'
            f' <head>\n  <title>{status} - {phrase}</title>\n </head>\n'
            f' <body>\n  <h1>{status} - {phrase}</h1>\n </body>\n</html>\n').encode()


def malformed_authorization(detail):
    return S3Error(400, 'AuthorizationHeaderMalformed',
                   f'The authorization header is malformed; {detail}')


# Helpers for tests


class Control:
    """Client of the control API of a server listening on `host`:`port`."""

    def __init__(self, port, host='127.0.0.1', timeout=30.0, tls=False, cafile=None):
        """`tls` for a server started with --tls-cert: the control API is then HTTPS too,
        checked against `cafile` when given (else not verified)."""
        self.host = host
        self.port = port
        self.timeout = timeout
        self.ssl_context = None
        if tls or cafile:
            if cafile:
                self.ssl_context = ssl.create_default_context(cafile=cafile)
            else:
                self.ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                self.ssl_context.check_hostname = False
                self.ssl_context.verify_mode = ssl.CERT_NONE

    def call(self, method, action, query=(), body=b'', headers=None):
        """Send one control request; return the decoded JSON answer or raise RuntimeError."""
        path = CONTROL_PREFIX + action
        if query:
            path += '?' + '&'.join(f'{name}={quote(value, safe="")}' for name, value in query)
        if self.ssl_context is not None:
            connection = http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout,
                                                     context=self.ssl_context)
        else:
            connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            connection.request(method, path, body, headers or {})
            response = connection.getresponse()
            result = json.loads(response.read())
        finally:
            connection.close()
        if response.status != 200:
            raise RuntimeError(f'control {method} {action} failed: {response.status} {result}')
        return result

    def put(self, bucket, key, data, storage_class=None, mtime=None):
        """Store an object (key and data may be str or bytes); return its quoted ETag."""
        headers = {}
        if storage_class is not None:
            headers['x-test-storage-class'] = storage_class
        if mtime is not None:
            headers['x-test-last-modified'] = str(mtime)
        if isinstance(data, str):
            data = data.encode()
        return self.call('PUT', 'object', [('bucket', bucket), ('key', key)], data,
                         headers)['etag']

    def bulk(self, bucket, items):
        """Store many objects; `items` are bulk entries (see the module docstring), where
        ``key`` may also be bytes and ``data`` (bytes) may replace ``data_b64``."""
        entries = []
        for item in items:
            entry = dict(item)
            if isinstance(entry.get('key'), bytes):
                entry['key_b64'] = base64.b64encode(entry.pop('key')).decode()
            if 'data' in entry:
                entry['data_b64'] = base64.b64encode(entry.pop('data')).decode()
            entries.append(entry)
        return self.call('POST', 'bulk', [('bucket', bucket)], json.dumps(entries).encode(),
                         {'Content-Type': 'application/json'})['count']

    def delete(self, bucket, key):
        """Delete an object; return whether it existed."""
        return self.call('DELETE', 'object', [('bucket', bucket), ('key', key)])['deleted']

    def stats(self):
        return self.call('GET', 'stats')

    def reset(self):
        self.call('POST', 'reset')

    def config(self, **settings):
        """Change `page_size` and/or `ignore_encoding_type`; return the current settings."""
        return self.call('POST', 'config', body=json.dumps(settings).encode(),
                         headers={'Content-Type': 'application/json'})

    def set_region(self, region):
        """Move the server's buckets to `region` (see POST /__irsafs/region)."""
        return self.post_json('region', {'region': region})['region']

    def post_json(self, action, value):
        return self.call('POST', action, body=json.dumps(value).encode(),
                         headers={'Content-Type': 'application/json'})

    def cred_config(self, **settings):
        """Change credential endpoint settings (``sts_token_file``, ``sts_role_arn``,
        ``sts_duration``, ``container_credentials``, ``container_token_file``,
        ``container_duration``, ``imds``, ``imds_role``, ``imds_duration``, ``account_id``);
        return all of them."""
        return self.post_json('cred-config', settings)

    def sts_fail(self, count=1, status=503, code='ServiceUnavailable', delay=0, message=None):
        """Make the next `count` STS calls fail with `status` and `code`, and every STS call
        wait `delay` seconds first (until the next sts_fail; ``sts_fail(0)`` clears both)."""
        return self.post_json('sts-fail', {'count': count, 'status': status, 'code': code,
                                           'delay': delay, 'message': message})

    def container_fail(self, count=1, status=503, code='ServiceUnavailable', delay=0,
                       message=None):
        """Like sts_fail, for the container credentials endpoint."""
        return self.post_json('container-fail', {'count': count, 'status': status,
                                                 'code': code, 'delay': delay,
                                                 'message': message})

    def imds_fail(self, count=1, status=503, code='ServiceUnavailable', delay=0,
                  message=None):
        """Like sts_fail, for every IMDS request (token, role name and credentials)."""
        return self.post_json('imds-fail', {'count': count, 'status': status, 'code': code,
                                            'delay': delay, 'message': message})

    def revoke(self, code='InvalidToken', status=None, message=None):
        """Revoke every temporary credential issued so far; S3 then refuses them with `code`
        (InvalidToken or ExpiredToken, 400; AccessDenied or InvalidAccessKeyId, 403).
        Return how many were revoked."""
        return self.post_json('revoke', {'code': code, 'status': status,
                                         'message': message})['revoked']

    def credential_stats(self):
        """The ``credentials`` part of the statistics: ``issued``, ``token_rejections`` and
        ``injected_failures`` (a credential endpoint must be enabled)."""
        return self.stats()['credentials']

    def issued(self):
        """The temporary credentials issued since the last reset, oldest first (dicts with
        ``access_key_id``, ``source``, ``issued``, ``expiration``, ``expired``,
        ``revoked``...)."""
        return self.credential_stats()['issued']

    def secrets(self):
        """Test-only: every secret the server handed out or received (``credentials`` with
        ``secret_access_key`` and ``session_token``, ``imds_tokens``, ``web_identity_tokens``,
        ``signatures``); see GET /__irsafs/secrets."""
        return self.call('GET', 'secrets')

    def faults(self, rules):
        """Replace the S3 fault rules (a list of dicts, or one dict; see the module
        docstring); return them as the server holds them (``remaining``, ``fired``...)."""
        if isinstance(rules, dict):
            rules = [rules]
        return self.post_json('faults', list(rules))['faults']

    def fault(self, **rule):
        """Install one S3 fault rule (replacing any others): ``fault(op='GetObject',
        code='SlowDown', count=3)``. Returns its description."""
        return self.faults([rule])[0]

    def clear_faults(self):
        """Remove every S3 fault rule; return how many there were."""
        return self.call('DELETE', 'faults')['cleared']

    def fault_rules(self):
        """The S3 fault rules with their ``remaining``, ``fired`` and ``matched`` counts."""
        return self.call('GET', 'faults')['faults']

    def s3_requests(self):
        """The S3 operation counts of the statistics, without the credential endpoints."""
        return {op: count for op, count in self.stats()['requests'].items()
                if op not in CREDENTIAL_OPS}


def server_stderr(proc):
    """Return what a server started by start_server has written to stderr so far."""
    proc.stderr_log.seek(0)
    return proc.stderr_log.read().decode('utf-8', 'replace')


def start_server(args=(), timeout=10.0):
    """Start this server as a subprocess with command line `args`; return (proc, port).

    Waits up to `timeout` seconds for the port line; raises RuntimeError, with the server's
    stderr, if it exits or is too slow. Its stderr goes to a temporary file (see
    server_stderr). Stop it with stop_server.
    """
    stderr_log = tempfile.TemporaryFile()
    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), *args],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=stderr_log)
    proc.stderr_log = stderr_log
    deadline = time.monotonic() + timeout
    line = b''
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while not line.endswith(b'\n'):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                stop_server(proc)
                raise RuntimeError(f'S3 server did not start within {timeout} s:\n'
                                   + server_stderr(proc))
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                stop_server(proc)
                raise RuntimeError(f'S3 server exited with status {proc.returncode}:\n'
                                   + server_stderr(proc))
            line += chunk
    return proc, json.loads(line)['port']


def stop_server(proc):
    """Stop a server from start_server (SIGTERM, then SIGKILL after 5 s); return its exit
    status."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    proc.stdout.close()
    return proc.returncode


# Command line


def build_arg_parser():
    parser = argparse.ArgumentParser(description='Local S3-compatible test server for irsafs.')
    parser.add_argument('--host', default='127.0.0.1')
    parser.add_argument('--port', type=int, default=0, help='0 (default) picks a free port')
    parser.add_argument('--port-file', help='also write the {"port": N} line to this file')
    parser.add_argument('--region', default=DEFAULT_REGION)
    parser.add_argument('--bucket', action='append',
                        help=f'bucket to create (repeatable; default {DEFAULT_BUCKET})')
    parser.add_argument('--dir', help='load every regular file under DIR into the first bucket')
    parser.add_argument('--credentials', action='append', type=parse_credential,
                        metavar='AKID:SECRET[:SESSION_TOKEN]',
                        help=f'accepted credential (repeatable; default {DEFAULT_CREDENTIAL})')
    parser.add_argument('--page-size', type=int, default=MAX_LIST_KEYS,
                        help='most keys and common prefixes per ListObjectsV2 page')
    parser.add_argument('--ignore-encoding-type', action='store_true',
                        help='ignore encoding-type=url like some S3-compatible servers')
    parser.add_argument('--no-auth', action='store_true', help='skip signature checks')
    parser.add_argument('--verbose', action='store_true', help='log requests to stderr')
    parser.add_argument('--fault', action='append', type=parse_fault_option, default=[],
                        metavar='JSON',
                        help='an S3 fault rule (a JSON object, or a list of them; repeatable), '
                             'as for POST /__irsafs/faults')
    parser.add_argument('--tls-cert', metavar='FILE',
                        help='serve HTTPS with this PEM certificate (chain); needs --tls-key')
    parser.add_argument('--tls-key', metavar='FILE', help='the PEM private key of --tls-cert')
    group = parser.add_argument_group('credential endpoints (on the same port)')
    group.add_argument('--account-id', default=DEFAULT_ACCOUNT,
                       help='account of container and IMDS credentials')
    group.add_argument('--sts-token-file', metavar='PATH',
                       help='enable STS AssumeRoleWithWebIdentity (POST /), accepting only the '
                            'token currently in PATH (read on every call)')
    group.add_argument('--sts-role-arn', metavar='ARN',
                       help='the only role STS lets the token assume (default: any)')
    group.add_argument('--sts-duration', type=float, default=DEFAULT_LIFETIME, metavar='S',
                       help='lifetime of STS credentials (DurationSeconds is only validated)')
    group.add_argument('--container-credentials', action='store_true',
                       help=f'enable container credentials (GET /v1/credentials or '
                            f'{CONTAINER_PREFIX}...)')
    group.add_argument('--container-token-file', metavar='PATH',
                       help='require Authorization equal to the contents of PATH (implies '
                            '--container-credentials)')
    group.add_argument('--container-duration', type=float, default=DEFAULT_LIFETIME,
                       metavar='S', help='lifetime of container credentials')
    group.add_argument('--imds', action='store_true', help='enable IMDSv2 under /latest/')
    group.add_argument('--imds-role', default=DEFAULT_IMDS_ROLE, metavar='NAME',
                       help='the role IMDS reports')
    group.add_argument('--imds-duration', type=float, default=DEFAULT_LIFETIME, metavar='S',
                       help='lifetime of IMDS credentials')
    for endpoint in ENDPOINTS:
        group.add_argument(f'--{endpoint}-fail-first', type=int, default=0, metavar='N',
                           help=f'the first N {endpoint} requests fail with 503 '
                                f'ServiceUnavailable')
        group.add_argument(f'--{endpoint}-delay', type=float, default=0.0, metavar='S',
                           help=f'every {endpoint} request first waits S seconds')
    return parser


def parse_fault_option(text):
    """Parse a --fault value: a JSON rule or list of rules, checked; returns a list."""
    try:
        value = json.loads(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f'not JSON: {error}') from None
    rules = value if isinstance(value, list) else [value]
    try:
        for rule in rules:
            FaultRule.from_dict(rule)
    except (ValueError, TypeError) as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return rules


def main(argv=None, handler_class=None):
    """Run the server from the command line `argv`, with an optional handler subclass."""
    parser = build_arg_parser()
    args = parser.parse_args(argv)
    if (args.tls_cert is None) != (args.tls_key is None):
        parser.error('--tls-cert and --tls-key go together')
    buckets = args.bucket or [DEFAULT_BUCKET]
    credential_settings = {
        'account_id': args.account_id, 'sts_token_file': args.sts_token_file,
        'sts_role_arn': args.sts_role_arn, 'sts_duration': args.sts_duration,
        'container_credentials': args.container_credentials or bool(args.container_token_file),
        'container_token_file': args.container_token_file,
        'container_duration': args.container_duration, 'imds': args.imds,
        'imds_role': args.imds_role, 'imds_duration': args.imds_duration}
    faults = {endpoint: {'count': getattr(args, f'{endpoint}_fail_first'),
                         'delay': getattr(args, f'{endpoint}_delay')}
              for endpoint in ENDPOINTS}
    try:
        server = S3Server(args.host, args.port, args.region, buckets, args.credentials,
                          args.page_size, args.ignore_encoding_type, args.no_auth,
                          args.verbose, handler_class, credential_settings, faults,
                          [rule for rules in args.fault for rule in rules],
                          args.tls_cert, args.tls_key)
    except ValueError as error:
        sys.exit(f's3server: {error}')
    if args.dir:
        server.load_dir(buckets[0], args.dir)
    run(server, args.port_file)


def run(server, port_file=None):
    """Serve until SIGTERM or SIGINT, announcing the port on stdout (and in `port_file`)."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    server.start()
    line = json.dumps({'port': server.port})
    if port_file:
        with open(port_file + '.tmp', 'w', encoding='utf-8') as file:
            file.write(line + '\n')
        os.replace(port_file + '.tmp', port_file)
    print(line, flush=True)
    stop.wait()
    server.stop()


if __name__ == '__main__':
    main()
