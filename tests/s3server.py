#!/usr/bin/env python3
"""A local S3-compatible HTTP server for irsafs tests, demos and benchmarks.

Run it with Debian's interpreter (it needs python3-botocore)::

    /usr/bin/python3 tests/s3server.py [--host H] [--port N] [--port-file PATH]
        [--region R] [--bucket NAME]... [--dir DIR]
        [--credentials AKID:SECRET[:SESSION_TOKEN]]... [--page-size N]
        [--ignore-encoding-type] [--no-auth] [--verbose]

Once listening it prints exactly one line, ``{"port": N}``, to stdout (and writes the same line
to ``--port-file``). It logs requests to stderr only with ``--verbose`` and exits cleanly on
SIGTERM or SIGINT. Objects live in memory; the default bucket is ``test-bucket``, the default
credential ``AKIDTEST:secrettest``, the default region ``us-east-1``.

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
* Operations: ListObjectsV2 (prefix, any delimiter, continuation-token, start-after, max-keys,
  encoding-type=url; pages capped at ``--page-size``), HeadBucket, GetObject (single byte
  range, If-Match, If-None-Match; GLACIER and DEEP_ARCHIVE objects give InvalidObjectState)
  and HeadObject. Anything else gives 405 MethodNotAllowed or 501 NotImplemented.

Control API (no authentication, never counted in the statistics), under ``/__irsafs/``:

* ``PUT /__irsafs/object?bucket=B&key=K``: body is the content; optional headers
  ``x-test-storage-class`` and ``x-test-last-modified`` (epoch seconds). Creates the bucket if
  needed and replaces any object. Answers ``{"etag": "\\"<md5>\\""}``.
* ``POST /__irsafs/bulk?bucket=B``: body is a JSON list of objects, each with ``key`` (str) or
  ``key_b64``, and either ``data_b64`` or ``size`` and ``seed`` (content ``make_data(size,
  seed)``), optionally ``storage_class`` and ``mtime``. Answers ``{"count": n}``.
* ``DELETE /__irsafs/object?bucket=B&key=K``: answers ``{"deleted": true|false}``.
* ``GET /__irsafs/stats``: ``{"requests": {op: n}, "statuses": {"200": n}, "auth_failures": n,
  "bytes_sent": n, "log": [last 1000 S3 requests as {"op", "method", "path", "query",
  "status", "range", "if_match", "bytes"}]}``.
* ``POST /__irsafs/reset``: zeroes the statistics.
* ``POST /__irsafs/config``: JSON body with ``page_size`` and/or ``ignore_encoding_type``;
  answers the resulting settings.

In the query of a control request ``bucket`` and ``key`` are percent-decoded to bytes, so
``key=%FF%00`` names a key that is neither UTF-8 nor NUL-free.

For tests, import this module: ``start_server(args) -> (proc, port)``, ``stop_server(proc)``,
``Control(port)`` (a client of the control API) and ``make_data(size, seed)``. To extend the
server (e.g. with STS or IMDS endpoints), subclass ``S3RequestHandler`` and override
``handle_extra``, then pass the subclass to ``main`` or to ``S3Server`` (and ``run`` it).
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
import http.client
import http.server
import json
import os
import re
import secrets
import selectors
import signal
import socket
import socketserver
import stat
import subprocess
import sys
import tempfile
import threading
import time
import traceback
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


def make_data(size, seed):
    """Return `size` deterministic pseudo-random bytes for `seed` (an int or a str).

    The content is the first `size` bytes of the SHAKE-256 output for the UTF-8 bytes of
    ``"irsafs:" + str(seed)``, so any language with SHAKE-256 can reproduce it.
    """
    return hashlib.shake_256(f'irsafs:{seed}'.encode()).digest(size)


def iso8601(timestamp):
    """Format epoch seconds like S3 list results: 2026-11-29T07:35:24.000Z."""
    return time.strftime('%Y-%m-%dT%H:%M:%S.000Z', time.gmtime(timestamp))


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


class ControlError(Exception):
    """A control API failure, answered as ``{"error": message}`` with `status`."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


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
        # Clients dropping connections is normal; report anything else.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class S3Server:
    """The server state (buckets, settings, credentials, statistics, a lock) and its socket.

    `credentials` is an iterable of (akid, secret, session token or None). Buckets, objects
    and statistics are guarded by `lock`; stored bytes are immutable and are sent unlocked.
    """

    def __init__(self, host='127.0.0.1', port=0, region=DEFAULT_REGION,
                 buckets=(DEFAULT_BUCKET,), credentials=None, page_size=MAX_LIST_KEYS,
                 ignore_encoding_type=False, no_auth=False, verbose=False,
                 handler_class=None):
        self.lock = threading.Lock()
        self.region = region
        self.credentials = {akid: (secret, token) for akid, secret, token in
                            credentials or [parse_credential(DEFAULT_CREDENTIAL)]}
        self.buckets = {name: Bucket(name) for name in buckets}
        self.page_size = page_size
        self.ignore_encoding_type = ignore_encoding_type
        self.no_auth = no_auth
        self.verbose = verbose
        self.reset_stats()
        self.httpd = S3HTTPServer((host, port), handler_class or S3RequestHandler, self)
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

    def reset_stats(self):
        with self.lock:
            self.stats = {'requests': collections.Counter(), 'statuses': collections.Counter(),
                          'auth_failures': 0, 'bytes_sent': 0,
                          'log': collections.deque(maxlen=LOG_LENGTH)}

    def record(self, entry, auth_failed):
        """Count one S3 request; `entry` is its log entry."""
        with self.lock:
            self.stats['requests'][entry['op']] += 1
            self.stats['statuses'][str(entry['status'])] += 1
            self.stats['auth_failures'] += auth_failed
            self.stats['bytes_sent'] += entry['bytes']
            self.stats['log'].append(entry)

    def stats_snapshot(self):
        """Return the statistics as JSON-ready data."""
        with self.lock:
            return {'requests': dict(self.stats['requests']),
                    'statuses': dict(self.stats['statuses']),
                    'auth_failures': self.stats['auth_failures'],
                    'bytes_sent': self.stats['bytes_sent'],
                    'log': list(self.stats['log'])}


class S3RequestHandler(http.server.BaseHTTPRequestHandler):
    """Dispatches each request: control API, then `handle_extra`, then S3.

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

    def dispatch(self):
        self.request_id = secrets.token_hex(8).upper()
        self.status = None
        self.bytes_sent = 0
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
        elif not self.handle_extra():
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
        HEAD, whose Content-Length still describes it."""
        self.status = status
        self.send_response(status)
        self.send_header('x-amz-request-id', self.request_id)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        if self.command != 'HEAD':
            view = memoryview(body)
            for offset in range(0, len(view), CHUNK_SIZE):
                chunk = view[offset:offset + CHUNK_SIZE]
                self.wfile.write(chunk)
                self.bytes_sent += len(chunk)

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
            getattr(self, self.OPERATIONS[op])()
        except S3Error as error:
            self.send_s3_error(error)
        except ConnectionError:
            raise
        except Exception:  # pylint: disable=broad-except
            traceback.print_exc()
            self.send_s3_error(S3Error(500, 'InternalError',
                                       'We encountered an internal error. Please try again.'))
        finally:
            self.s3.record({'op': op, 'method': self.command, 'path': self.raw_path,
                            'query': self.raw_query, 'status': self.status,
                            'range': self.headers.get('Range'),
                            'if_match': self.headers.get('If-Match'),
                            'bytes': self.bytes_sent}, auth_failed)

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
        if akid not in self.s3.credentials:
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
        secret, token = self.s3.credentials[akid]
        if self.headers.get('x-amz-security-token') != token:
            raise S3Error(403, 'InvalidToken',
                          'The provided token is malformed or otherwise invalid.')
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
        if span is None:
            self.send(200, headers, body)
        else:
            first, last = span
            headers['Content-Range'] = f'bytes {first}-{last}/{len(body)}'
            self.send(206, headers, body[first:last + 1])

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


def malformed_authorization(detail):
    return S3Error(400, 'AuthorizationHeaderMalformed',
                   f'The authorization header is malformed; {detail}')


# Helpers for tests


class Control:
    """Client of the control API of a server listening on `host`:`port`."""

    def __init__(self, port, host='127.0.0.1', timeout=30.0):
        self.host = host
        self.port = port
        self.timeout = timeout

    def call(self, method, action, query=(), body=b'', headers=None):
        """Send one control request; return the decoded JSON answer or raise RuntimeError."""
        path = CONTROL_PREFIX + action
        if query:
            path += '?' + '&'.join(f'{name}={quote(value, safe="")}' for name, value in query)
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
    return parser


def main(argv=None, handler_class=None):
    """Run the server from the command line `argv`, with an optional handler subclass."""
    args = build_arg_parser().parse_args(argv)
    buckets = args.bucket or [DEFAULT_BUCKET]
    server = S3Server(args.host, args.port, args.region, buckets, args.credentials,
                      args.page_size, args.ignore_encoding_type, args.no_auth, args.verbose,
                      handler_class)
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
