#!/usr/bin/env python3
"""tests/s3server.py with S3-like network shaping, for the irsafs benchmark.

Run it with Debian's interpreter, exactly like s3server.py, plus two options::

    /usr/bin/python3 tests/bench/shaped_server.py [s3server.py options]
        [--first-byte-ms MS] [--bandwidth-mbps MBPS]

* ``--first-byte-ms MS`` (default 20): every S3 response (GetObject, HeadObject,
  ListObjectsV2, HeadBucket, errors too) waits MS milliseconds before its first byte, the
  status line. S3's time to first byte is of this order within a region.
* ``--bandwidth-mbps MBPS`` (default 100): each connection sends at most MBPS megabytes
  (10^6 bytes) per second. The body is written in 64 KiB slices, each one no earlier than its
  due time (start + bytes already sent / rate), so the rate is smooth rather than bursty, and
  the kernel's send buffer is kept small so it cannot hide a burst. One S3 connection to one
  prefix gets about this much in practice; more bandwidth takes more connections.

0 turns either off. The control API (``/__irsafs/...``) is never shaped, so loading data and
reading statistics stay fast. Everything else (addressing, signatures, the control API,
statistics, ``{"port": N}`` on stdout) is s3server.py's; see its docstring.

The shaping is done by subclassing s3server's ``S3RequestHandler`` and overriding ``send``:
s3server.py itself is not modified.
"""

import argparse
import os
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
import s3server  # noqa: E402  pylint: disable=wrong-import-position

DEFAULT_FIRST_BYTE_MS = 20.0
DEFAULT_BANDWIDTH_MBPS = 100.0
SLICE = 64 * 1024           # bytes written between two pacing checks
SEND_BUFFER = 256 * 1024    # SO_SNDBUF of shaped connections (bounds bursts)


class PacedWriter:
    """A file-like writer that sends through `raw` at most `rate` bytes per second, measured
    from its creation (a response's first byte)."""

    def __init__(self, raw, rate):
        self.raw = raw
        self.rate = rate
        self.start = time.monotonic()
        self.sent = 0

    def write(self, data):
        view = memoryview(data)
        for offset in range(0, len(view), SLICE):
            piece = view[offset:offset + SLICE]
            due = self.start + self.sent / self.rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self.raw.write(piece)
            self.sent += len(piece)
        return len(view)

    def flush(self):
        self.raw.flush()


class ShapedRequestHandler(s3server.S3RequestHandler):
    """S3RequestHandler with a delay before each S3 response and a per-connection rate cap.
    The settings are class attributes (set by `main`, or by a further subclass)."""

    first_byte_seconds = DEFAULT_FIRST_BYTE_MS / 1000
    bandwidth_bytes_per_second = DEFAULT_BANDWIDTH_MBPS * 1e6

    def setup(self):
        super().setup()
        if self.bandwidth_bytes_per_second:
            try:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
            except OSError:
                pass

    def is_control_request(self):
        return (getattr(self, 'virtual_bucket', None) is None
                and getattr(self, 'raw_path', '').startswith(s3server.CONTROL_PREFIX))

    def send(self, status, headers, body=b''):
        if self.is_control_request():
            super().send(status, headers, body)
            return
        if self.first_byte_seconds > 0:
            time.sleep(self.first_byte_seconds)
        if not self.bandwidth_bytes_per_second:
            super().send(status, headers, body)
            return
        raw = self.wfile
        # One pacing clock per response: responses on one connection are sequential, so this
        # caps the connection's rate.
        self.wfile = PacedWriter(raw, self.bandwidth_bytes_per_second)
        try:
            super().send(status, headers, body)
        finally:
            self.wfile = raw


def handler_class(first_byte_ms=DEFAULT_FIRST_BYTE_MS, bandwidth_mbps=DEFAULT_BANDWIDTH_MBPS):
    """A ShapedRequestHandler subclass with these settings."""
    return type('ConfiguredShapedRequestHandler', (ShapedRequestHandler,), {
        'first_byte_seconds': max(0.0, first_byte_ms) / 1000,
        'bandwidth_bytes_per_second': max(0.0, bandwidth_mbps) * 1e6,
    })


def main(argv=None):
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument('--first-byte-ms', type=float, default=DEFAULT_FIRST_BYTE_MS)
    parser.add_argument('--bandwidth-mbps', type=float, default=DEFAULT_BANDWIDTH_MBPS)
    args, rest = parser.parse_known_args(argv)
    if '-h' in rest or '--help' in rest:
        print(__doc__)
    s3server.main(rest, handler_class(args.first_byte_ms, args.bandwidth_mbps))


if __name__ == '__main__':
    main()
