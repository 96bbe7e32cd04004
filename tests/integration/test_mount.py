"""irsafs mounted over the local S3 server: what the tree looks like, what reads return, what
is refused, and how many S3 requests it all costs.

The expected tree is computed in conftest.expected_tree from the key list alone (the naming
rules are implemented there, independently of the C code), then compared with what os.walk,
find(1) and ls(1) see through the mount.
"""

import concurrent.futures
import errno
import hashlib
import mmap
import os
import random
import stat
import subprocess
import threading

import pytest

from conftest import (BIG_DIR_KEYS, BOUNDARY_SIZES, HANG_GUARD, LARGE_SIZE, fs_path,
                      expected_tree, irsafs_env, list_pages, mount_entry)

BLOCK = 128 * 1024


def rel(root, path):
    """Path tuple of a bytes path under the bytes root."""
    relative = os.path.relpath(path, root)
    return () if relative == b'.' else tuple(relative.split(b'/'))


def describe_difference(seen, expected, what):
    missing, extra = sorted(expected - seen), sorted(seen - expected)
    return f'{what}: {len(missing)} missing {missing[:15]}, {len(extra)} unexpected {extra[:15]}'


def assert_same(seen, expected, what):
    seen, expected = set(seen), set(expected)
    assert seen == expected, describe_difference(seen, expected, what)


def walk(root):
    """(dirs, files) as sets of path tuples, from os.walk on the bytes path."""
    root = os.fsencode(str(root))
    dirs, files = set(), set()

    def fail(error):
        raise error

    for top, subdirs, names in os.walk(root, onerror=fail):
        dirs.add(rel(root, top))
        for name in names:
            files.add(rel(root, os.path.join(top, name)))
        for name in subdirs:
            assert os.path.isdir(os.path.join(top, name))
    return dirs, files


def run(argv, **kwargs):
    env = dict(os.environ, LC_ALL='C')
    return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, env=env,
                          timeout=120, check=True, **kwargs)


# ---------------------------------------------------------------------------------------------
# The shape of the tree


def test_the_model_itself():
    """The reference rules, on keys whose fate is known, so that the model cannot quietly
    agree with a bug."""
    keys = [b'a//b', b'./x', b'../y', b'd/./e', b'd/../e', b'd/ok', b'x', b'x/y', b'm/',
            b'L' * 256, b'M' * 255, b'n\0ul', b'bad\xff', b'caf\xc3\xa9', b'o/\xc0\xaf/z',
            b'p/q/', b'ok']
    dirs, files = expected_tree(keys)
    assert dirs == {(), (b'a',), (b'd',), (b'x',), (b'm',), (b'o',), (b'p',), (b'p', b'q')}
    assert set(files) == {(b'd', b'ok'), (b'x', b'y'), (b'M' * 255,), (b'caf\xc3\xa9',),
                          (b'ok',)}
    dirs, files = expected_tree(keys, b'x/')
    assert dirs == {()} and set(files) == {(b'y',)}
    assert list_pages([b'k%03d' % i for i in range(100)], b'') == 1
    assert list_pages([b'k%03d' % i for i in range(101)], b'') == 2
    assert list_pages([b'd/a', b'd/b', b'e'], b'') == 1
    assert list_pages([], b'nothing/') == 1


def test_walk_shows_exactly_the_representable_paths(main_mount, dataset):
    exp_dirs, exp_files = expected_tree(dataset.keys)
    dirs, files = walk(main_mount.path)
    assert_same(dirs, exp_dirs, 'directories')
    assert_same(files, exp_files.keys(), 'files')


def test_find_agrees_with_the_model(main_mount, dataset):
    """find(1) sees the same tree, with sizes, modes, owners and mtimes from the listing."""
    exp_dirs, exp_files = expected_tree(dataset.keys)
    out = run(['find', str(main_mount.path), '-mindepth', '1', '-printf',
               r'%y\t%s\t%m\t%U\t%G\t%T@\t%P\0']).stdout
    seen_dirs, seen_files = {()}, set()
    for record in out.split(b'\0')[:-1]:
        kind, size, mode, uid, gid, mtime, path = record.split(b'\t', 6)
        path = tuple(path.split(b'/'))
        assert int(uid) == os.getuid() and int(gid) == os.getgid(), (path, uid, gid)
        if kind == b'd':
            seen_dirs.add(path)
            assert mode == b'555', (path, mode)
        else:
            assert kind == b'f', (path, kind)
            seen_files.add(path)
            assert mode == b'444', (path, mode)
            obj = dataset.objects.get(exp_files.get(path))
            if obj is not None:
                seconds, _, fraction = mtime.partition(b'.')
                assert int(size) == obj.size, (path, size)
                assert int(seconds) == obj.mtime and not fraction.strip(b'0'), (path, mtime)
    assert_same(seen_dirs, exp_dirs, 'find directories')
    assert_same(seen_files, exp_files.keys(), 'find files')


def c_unquote(quoted):
    """Decode one name as ls --quoting-style=c prints it (C locale: bytes as octal)."""
    assert quoted[:1] == b'"' and quoted[-1:] == b'"', quoted
    body, out, i = quoted[1:-1], bytearray(), 0
    simple = {b'n': 10, b't': 9, b'r': 13, b'a': 7, b'b': 8, b'f': 12, b'v': 11, b'\\': 92,
              b'"': 34, b'?': 63, b"'": 39, b'e': 27}
    while i < len(body):
        if body[i:i + 1] != b'\\':
            out.append(body[i])
            i += 1
            continue
        j = i + 1
        while j < len(body) and j < i + 4 and body[j:j + 1] in b'01234567':
            j += 1
        if j > i + 1:
            out.append(int(body[i + 1:j], 8))
            i = j
        else:
            # Other escapes (ls writes '\\:' in directory headers) stand for the character.
            out.append(simple.get(body[i + 1:i + 2], body[i + 1]))
            i += 2
    return bytes(out)


def test_ls_recursive_agrees_with_the_model(main_mount, dataset):
    exp_dirs, exp_files = expected_tree(dataset.keys)
    root = os.fsencode(str(main_mount.path))
    out = run(['ls', '-R', '-A', '-1', '--quoting-style=c', str(main_mount.path)]).stdout
    headers, entries, current = set(), set(), None
    for line in out.split(b'\n'):
        if not line:
            continue
        if line.endswith(b'":'):
            current = rel(root, c_unquote(line[:-1]))
            headers.add(current)
        else:
            assert current is not None, line
            entries.add(current + (c_unquote(line),))
    assert_same(headers, exp_dirs, 'ls -R directories')
    assert_same(entries, (exp_dirs - {()}) | set(exp_files), 'ls -R entries')


def test_attributes_come_from_the_listing(main_mount, dataset):
    exp_dirs, exp_files = expected_tree(dataset.keys)
    for path in exp_dirs:
        st = os.lstat(fs_path(main_mount.path, path))
        assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o555, path
        assert (st.st_uid, st.st_gid) == (os.getuid(), os.getgid()), path
    for path, key in exp_files.items():
        obj = dataset.objects[key]
        st = os.lstat(fs_path(main_mount.path, path))
        assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o444, path
        assert (st.st_uid, st.st_gid) == (os.getuid(), os.getgid()), path
        assert st.st_size == obj.size, path
        assert st.st_mtime_ns == obj.mtime * 10 ** 9, (path, st.st_mtime_ns, obj.mtime)
        assert st.st_nlink == 1, path


def test_every_file_has_the_source_content(main_mount, dataset):
    _, exp_files = expected_tree(dataset.keys)

    def check(item):
        path, key = item
        digest = hashlib.sha256()
        with open(fs_path(main_mount.path, path), 'rb') as file:
            while chunk := file.read(1 << 20):
                digest.update(chunk)
        want = hashlib.sha256(dataset.objects[key].content()).hexdigest()
        return None if digest.hexdigest() == want else path

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        wrong = [path for path in pool.map(check, sorted(exp_files.items())) if path]
    assert not wrong, f'{len(wrong)} files differ from their object: {wrong[:10]}'


# ---------------------------------------------------------------------------------------------
# Semantics of particular keys


def listdir(main_mount, *path):
    return sorted(os.listdir(fs_path(main_mount.path, tuple(p.encode() if isinstance(p, str)
                                                            else p for p in path))))


def test_directory_markers(main_mount):
    assert listdir(main_mount, 'emptydir') == []
    assert listdir(main_mount, 'markers') == [b'empty', b'file.txt', b'nested', b'sub']
    assert listdir(main_mount, 'markers', 'empty') == []
    assert listdir(main_mount, 'markers', 'sub') == [b'x.txt']
    assert listdir(main_mount, 'markers', 'nested') == [b'empty']
    assert listdir(main_mount, 'markers', 'nested', 'empty') == []
    assert os.path.isdir(main_mount.path / 'deep' / 'level 01' / 'level 02')


def test_directory_shadows_file(main_mount, dataset):
    x = main_mount.path / 'x'
    assert os.path.isdir(x) and listdir(main_mount, 'x') == [b'y']
    with pytest.raises(IsADirectoryError):
        with open(x, 'rb') as file:
            file.read()
    assert (x / 'y').read_bytes() == dataset.objects[b'x/y'].content()
    assert os.path.isdir(main_mount.path / 'shadow' / 'name')
    assert listdir(main_mount, 'shadow', 'name') == []
    # The file and the directory came back in different LIST pages.
    assert os.path.isdir(main_mount.path / 'pages' / 's')
    assert listdir(main_mount, 'pages', 's') == [b'inner']
    assert os.path.isdir(main_mount.path / 'pages' / 't')
    assert listdir(main_mount, 'pages').count(b's') == 1


def test_unrepresentable_keys_are_hidden_without_hurting_siblings(main_mount):
    assert listdir(main_mount, 'bad') == [b'a', b'd', b'ok-1.txt', b'trail', b'zz-last.txt']
    assert listdir(main_mount, 'bad', 'a') == []
    assert listdir(main_mount, 'bad', 'd') == [b'ok-2.txt']
    assert listdir(main_mount, 'bad', 'trail') == []
    assert listdir(main_mount, 'd') == [b'ok']
    assert listdir(main_mount, 'a') == []
    root = set(listdir(main_mount))
    assert not {b'.', b'..', b'nul', b'\xc3(invalid-root'} & root
    bad = os.fsencode(str(main_mount.path / 'bad'))
    for name in [b'\xff\xfeinvalid', b'overlong\xc0\xaf', b'surrogate\xed\xa0\x80',
                 b'truncated\xe4\xb8', b'dir\xff']:
        with pytest.raises(FileNotFoundError):
            os.lstat(os.path.join(bad, name))
    for name in [b'L' * 256, b'M' * 256, '\u00e9'.encode() * 128]:
        with pytest.raises(OSError) as info:
            os.lstat(os.path.join(bad, name))
        assert info.value.errno in (errno.ENOENT, errno.ENAMETOOLONG), name


def test_special_names_round_trip(main_mount, dataset):
    """Each special name is one directory entry with its exact bytes, and its content."""
    names = set(listdir(main_mount, 'special'))
    for key, obj in dataset.objects.items():
        if key.startswith(b'special/') and key.count(b'/') == 1:
            name = key.split(b'/', 1)[1]
            assert name in names, name
            assert (main_mount.path / os.fsdecode(key)).read_bytes() == obj.content(), key
    # NFC and NFD spellings of the same word are different names.
    assert 'caf\u00e9'.encode() in names and 'cafe\u0301'.encode() in names


def test_mount_is_read_only_in_the_mount_table(main_mount):
    _, fstype, options = mount_entry(main_mount.path)
    assert fstype == 'fuse.irsafs'
    assert 'ro' in options.split(',')
    assert os.statvfs(main_mount.path).f_flag & os.ST_RDONLY


# ---------------------------------------------------------------------------------------------
# Reads


@pytest.mark.parametrize('size', BOUNDARY_SIZES)
def test_reads_around_boundaries(main_mount, dataset, size):
    data = dataset.objects[f'sizes/size-{size}'.encode()].content()
    path = main_mount.path / 'sizes' / f'size-{size}'
    assert path.read_bytes() == data
    offsets = {0, 1, size - 1, size, size + 1, size + 4096, 4095, 4096, 4097,
               BLOCK - 1, BLOCK, BLOCK + 1, size // 2}
    lengths = (1, 2, 4095, 4096, 4097, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK + 7)
    fd = os.open(path, os.O_RDONLY)
    try:
        for offset in sorted(o for o in offsets if o >= 0):
            for length in lengths:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                got = os.pread(fd, length, offset)
                assert got == data[offset:offset + length], (size, offset, length, len(got))
        assert os.pread(fd, 10, size) == b''
        assert os.pread(fd, 10, size + 10 ** 12) == b''
    finally:
        os.close(fd)


def test_large_file_random_concurrent_reads(main_mount, dataset):
    """8 threads pread the large file at random offsets and sizes (crossing 128 KiB
    boundaries, at the tail, single bytes, past the end); every byte is checked. Half the
    threads share one descriptor; page cache is dropped as they go so reads reach irsafs."""
    expected = dataset.objects[b'large/big.bin'].content()
    size = len(expected)
    assert size == LARGE_SIZE
    path = main_mount.path / 'large' / 'big.bin'
    assert os.stat(path).st_size == size
    shared = os.open(path, os.O_RDONLY)
    start = threading.Barrier(8)

    def plan(rng):
        ops = []
        for _ in range(12):   # across a 128 KiB boundary
            boundary = rng.randrange(1, size // BLOCK) * BLOCK
            ops.append((boundary - rng.randint(1, 8192), rng.randint(2, 3 * BLOCK)))
        for _ in range(6):    # at the tail, often running past the end
            ops.append((size - rng.randint(1, 2 * BLOCK), rng.randint(1, 3 * BLOCK)))
        for _ in range(8):    # single bytes
            ops.append((rng.randrange(size), 1))
        for _ in range(8):    # anything
            ops.append((rng.randrange(size), rng.randint(1, 1 << 20)))
        ops += [(0, 1), (size - 1, 1), (size - 1, 4096), (size, 1), (size, BLOCK),
                (size + 1, 100), (size + 10 ** 9, 10), (0, BLOCK), (BLOCK, BLOCK)]
        rng.shuffle(ops)
        return ops

    def worker(index):
        rng = random.Random(4242 + index)
        fd = shared if index < 4 else os.open(path, os.O_RDONLY)
        errors = []
        try:
            start.wait(timeout=HANG_GUARD)
            for number, (offset, length) in enumerate(plan(rng)):
                if number % 8 == 0:
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                got = os.pread(fd, length, offset)
                want = expected[offset:offset + length]
                if got != want:
                    first = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b),
                                 min(len(got), len(want)))
                    errors.append(f'thread {index}: pread(len={length}, off={offset}) gave '
                                  f'{len(got)} bytes, want {len(want)}, first difference at '
                                  f'+{first}')
        finally:
            if fd != shared:
                os.close(fd)
        return errors

    try:
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            errors = [e for result in pool.map(worker, range(8)) for e in result]
    finally:
        os.close(shared)
    assert not errors, errors[:10]


def test_mmap_of_the_large_file(main_mount, dataset):
    expected = dataset.objects[b'large/big.bin'].content()
    with open(main_mount.path / 'large' / 'big.bin', 'rb') as file:
        with mmap.mmap(file.fileno(), 0, prot=mmap.PROT_READ) as view:
            assert len(view) == len(expected)
            assert hashlib.sha256(view).digest() == hashlib.sha256(expected).digest()
            assert view[-1] == expected[-1] and view[BLOCK - 1:BLOCK + 1] == \
                expected[BLOCK - 1:BLOCK + 1]


def test_read_past_eof_and_empty_files(main_mount):
    with open(main_mount.path / 'sizes' / 'size-0', 'rb') as file:
        assert file.read() == b''
        assert os.pread(file.fileno(), 100, 0) == b''
        assert os.pread(file.fileno(), 100, 12345) == b''
    with open(main_mount.path / 'sizes' / 'size-1', 'rb') as file:
        assert len(file.read()) == 1
        assert file.read() == b''
        assert os.pread(file.fileno(), 1, 1) == b''


# ---------------------------------------------------------------------------------------------
# Everything that would write is refused; missing paths are missing

FILE = ('sizes', 'size-4096')


def _erofs_operations():
    def p(mount, *parts):
        return os.path.join(str(mount), *parts)

    return {
        'open O_WRONLY': lambda m: os.open(p(m, *FILE), os.O_WRONLY),
        'open O_RDWR': lambda m: os.open(p(m, *FILE), os.O_RDWR),
        'open O_WRONLY|O_APPEND': lambda m: os.open(p(m, *FILE), os.O_WRONLY | os.O_APPEND),
        'open O_RDONLY|O_TRUNC': lambda m: os.open(p(m, *FILE), os.O_RDONLY | os.O_TRUNC),
        'open O_CREAT new file': lambda m: os.open(p(m, 'new-file'),
                                                   os.O_WRONLY | os.O_CREAT, 0o644),
        'open O_CREAT|O_EXCL new file': lambda m: os.open(
            p(m, 'sizes', 'new-file'), os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644),
        'open O_RDONLY|O_CREAT new file': lambda m: os.open(p(m, 'markers', 'new-file'),
                                                            os.O_RDONLY | os.O_CREAT, 0o644),
        'mkdir': lambda m: os.mkdir(p(m, 'new-dir')),
        'mkdir nested': lambda m: os.mkdir(p(m, 'markers', 'new-dir')),
        'rmdir empty': lambda m: os.rmdir(p(m, 'emptydir')),
        'rmdir non-empty': lambda m: os.rmdir(p(m, 'markers')),
        'unlink': lambda m: os.unlink(p(m, *FILE)),
        'rename file': lambda m: os.rename(p(m, *FILE), p(m, 'sizes', 'renamed')),
        'rename over file': lambda m: os.rename(p(m, *FILE), p(m, 'sizes', 'size-1')),
        'rename dir': lambda m: os.rename(p(m, 'markers'), p(m, 'markers-renamed')),
        'chmod file': lambda m: os.chmod(p(m, *FILE), 0o644),
        'chmod dir': lambda m: os.chmod(p(m, 'markers'), 0o755),
        'chown': lambda m: os.chown(p(m, *FILE), 1, 1),
        'utime': lambda m: os.utime(p(m, *FILE), (1, 1)),
        'utime now': lambda m: os.utime(p(m, *FILE)),
        'truncate': lambda m: os.truncate(p(m, *FILE), 0),
        'truncate to grow': lambda m: os.truncate(p(m, *FILE), 1 << 20),
        'symlink': lambda m: os.symlink('sizes/size-1', p(m, 'new-link')),
        'link': lambda m: os.link(p(m, *FILE), p(m, 'new-hard-link')),
        'mkfifo': lambda m: os.mkfifo(p(m, 'new-fifo')),
        'setxattr': lambda m: os.setxattr(p(m, *FILE), 'user.test', b'value'),
        'setxattr dir': lambda m: os.setxattr(p(m, 'markers'), 'user.test', b'value'),
        'removexattr': lambda m: os.removexattr(p(m, *FILE), 'user.test'),
    }


EROFS_OPERATIONS = _erofs_operations()


@pytest.mark.parametrize('operation', sorted(EROFS_OPERATIONS))
def test_writes_are_refused_with_erofs(main_mount, dataset, operation):
    before = set(os.listdir(main_mount.path))
    with pytest.raises(OSError) as info:
        fd = EROFS_OPERATIONS[operation](main_mount.path)
        if isinstance(fd, int):
            os.close(fd)
    assert info.value.errno == errno.EROFS, (operation, info.value)
    assert set(os.listdir(main_mount.path)) == before
    data = dataset.objects[b'/'.join(p.encode() for p in FILE)].content()
    assert (main_mount.path.joinpath(*FILE)).read_bytes() == data


def test_write_to_a_read_only_descriptor_fails(main_mount):
    fd = os.open(main_mount.path.joinpath(*FILE), os.O_RDONLY)
    try:
        with pytest.raises(OSError) as info:
            os.write(fd, b'x')
        assert info.value.errno == errno.EBADF
    finally:
        os.close(fd)


MISSING = {
    'missing': (errno.ENOENT,),
    'missing.txt': (errno.ENOENT,),
    'missing/nested/deep/file': (errno.ENOENT,),
    'sizes/missing': (errno.ENOENT,),
    'emptydir/missing': (errno.ENOENT,),
    'deep/level 01/missing/level 03': (errno.ENOENT,),
    'sizes/size-1/child': (errno.ENOTDIR, errno.ENOENT),
    'sizes/size-1/child/grandchild': (errno.ENOTDIR, errno.ENOENT),
    'SIZES': (errno.ENOENT,),
    'x/y/z': (errno.ENOTDIR, errno.ENOENT),
}


@pytest.mark.parametrize('path', sorted(MISSING))
@pytest.mark.parametrize('operation', ['stat', 'lstat', 'open', 'listdir'])
def test_missing_paths(main_mount, path, operation):
    full = str(main_mount.path / path)
    call = {'stat': os.stat, 'lstat': os.lstat, 'listdir': os.listdir,
            'open': lambda p: os.close(os.open(p, os.O_RDONLY))}[operation]
    with pytest.raises(OSError) as info:
        call(full)
    assert info.value.errno in MISSING[path], (path, operation, info.value)
    # Asking twice (the kernel may now answer from a negative entry) gives the same error.
    with pytest.raises(OSError) as again:
        call(full)
    assert again.value.errno == info.value.errno


# ---------------------------------------------------------------------------------------------
# S3 request accounting (fresh mounts that trust listings forever)


def counts(server):
    return server.control.stats()['requests']


def test_walk_lists_each_directory_once_and_never_heads(s3, dataset, mounts):
    mount = mounts.mount(['--endpoint-url', s3.endpoint, '--metadata-ttl', 'indefinite'],
                         irsafs_env())
    exp_dirs, exp_files = expected_tree(dataset.keys)
    s3.control.reset()
    dirs, files = walk(mount.path)
    for path in dirs | files:
        os.lstat(fs_path(mount.path, path))
    assert dirs == exp_dirs and files == set(exp_files)
    requests = counts(s3)
    expected_lists = sum(list_pages(dataset.keys, b''.join(c + b'/' for c in path))
                         for path in exp_dirs)
    assert requests == {'ListObjectsV2': expected_lists}, requests
    # Reading adds GETs only.
    for path in sorted(exp_files)[:50]:
        with open(fs_path(mount.path, path), 'rb') as file:
            file.read()
    requests = counts(s3)
    assert 'HeadObject' not in requests, requests
    assert set(requests) <= {'ListObjectsV2', 'GetObject'}, requests
    assert requests['ListObjectsV2'] == expected_lists, requests


def test_big_directory_costs_one_list_per_page(s3, dataset, mounts):
    mount = mounts.mount(['--endpoint-url', s3.endpoint, '--metadata-ttl', 'indefinite'],
                         irsafs_env())
    big = mount.path / 'big'
    assert os.path.isdir(big)          # lists the root, not big/
    s3.control.reset()
    names = os.listdir(big)
    assert len(names) == BIG_DIR_KEYS
    stats = s3.control.stats()
    pages = -(-BIG_DIR_KEYS // 100)
    assert stats['requests'] == {'ListObjectsV2': pages}, stats['requests']
    assert all('prefix=big%2F' in entry['query'] for entry in stats['log']), stats['log'][:3]
    # ls -l and stat of every entry are answered from that listing.
    s3.control.reset()
    out = run(['ls', '-l', str(big)]).stdout
    assert out.count(b'\n') == BIG_DIR_KEYS + 1
    for name in names:
        st = os.stat(big / name)
        assert st.st_size == int(name.rsplit('-', 1)[1]) % 5
    run(['ls', '-lR', str(big)])
    assert counts(s3) == {}, counts(s3)


def test_bucket_key_with_page_of_exactly_page_size(s3, mounts, dataset):
    """A directory with exactly one page of entries costs one LIST (no empty second page)."""
    items = [{'key': f'exact/k-{i:03d}', 'size': 1, 'seed': i} for i in range(100)]
    s3.control.bulk('exact-bucket', items)
    mount = mounts.mount(['--endpoint-url', s3.endpoint, '--metadata-ttl', 'indefinite'],
                         irsafs_env(), bucket='exact-bucket')
    assert os.path.isdir(mount.path / 'exact')
    s3.control.reset()
    assert len(os.listdir(mount.path / 'exact')) == 100
    assert counts(s3) == {'ListObjectsV2': 1}


def test_continuation_tokens_are_sent_encoded(s3, dataset, mounts):
    """Pages of tokens/ end on names whose tokens hold '+', '/' and '=' (and one on a common
    prefix): each must be sent percent-encoded and signed correctly for the listing to go on."""
    mount = mounts.mount(['--endpoint-url', s3.endpoint, '--metadata-ttl', 'indefinite'],
                         irsafs_env())
    assert os.path.isdir(mount.path / 'tokens')
    s3.control.reset()
    names = os.listdir(mount.path / 'tokens')
    dirs, files = expected_tree(dataset.keys, b'tokens/')
    assert sorted(os.fsencode(n) for n in names) == \
        sorted(p[0] for p in set(files) | dirs if len(p) == 1)
    stats = s3.control.stats()
    assert stats['requests'] == {'ListObjectsV2': list_pages(dataset.keys, b'tokens/')}
    assert stats['statuses'] == {'200': stats['requests']['ListObjectsV2']}
    tokens = [q.split('continuation-token=', 1)[1].split('&', 1)[0]
              for q in (entry['query'] for entry in stats['log']) if 'continuation-token=' in q]
    assert len(tokens) == 3
    joined = ''.join(tokens)
    for encoded in ('%2B', '%2F', '%3D'):
        assert encoded in joined, (encoded, tokens)
    assert not any(ch in joined for ch in '+/='), tokens


# ---------------------------------------------------------------------------------------------
# Metadata TTL


def test_metadata_ttl_zero_sees_changes_at_once(s3, mounts):
    s3.control.bulk('ttl-zero', [{'key': 'dir/old.txt', 'data': b'old'}])
    mount = mounts.mount(['--endpoint-url', s3.endpoint, '--metadata-ttl', '0'], irsafs_env(),
                         bucket='ttl-zero')
    assert os.listdir(mount.path / 'dir') == ['old.txt']
    assert not os.path.exists(mount.path / 'dir' / 'new.txt')
    s3.control.put('ttl-zero', 'dir/new.txt', b'new content')
    assert sorted(os.listdir(mount.path / 'dir')) == ['new.txt', 'old.txt']
    assert (mount.path / 'dir' / 'new.txt').read_bytes() == b'new content'
    s3.control.delete('ttl-zero', 'dir/old.txt')
    assert os.listdir(mount.path / 'dir') == ['new.txt']
    assert not os.path.exists(mount.path / 'dir' / 'old.txt')


def test_metadata_ttl_indefinite_keeps_the_first_listing(s3, mounts):
    s3.control.bulk('ttl-forever', [{'key': 'dir/old.txt', 'data': b'old'}])
    mount = mounts.mount(['--endpoint-url', s3.endpoint, '--metadata-ttl', 'indefinite'],
                         irsafs_env(), bucket='ttl-forever')
    assert os.listdir(mount.path / 'dir') == ['old.txt']
    s3.control.put('ttl-forever', 'dir/new.txt', b'new')
    assert os.listdir(mount.path / 'dir') == ['old.txt']
    assert not os.path.exists(mount.path / 'dir' / 'new.txt')
