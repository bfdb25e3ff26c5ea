#!/usr/bin/env python3
"""Workload generator and checker for scripts/crash-run.sh (stdlib only).

  crash-run-workload.py work  --mnt M --root w0 --seed S --journal J [--snapshots]
                              --bin B --config C [--max-seconds N]
  crash-run-workload.py check-baseline --mnt M --state STATE --bin B --config C
  crash-run-workload.py check-crash --mnt M --state STATE --journal J... --bin B
                              --config C --cycle N --seed S

`work` runs random operations on the files under M/ROOT (subdirectories d0..d2) until it
is stopped, normally by the daemon being killed under it (every call then fails). It
keeps an in-memory model of every file and appends to the journal (outside the mount,
flushed after every line) which paths are *durable*: a path is durable when its file
was fsync'd (or fdatasync'd) after its last change and its directory was fsync'd after
the path's last create/rename. A line removing a path from the durable set is written
*before* the operation that changes it; a line adding it *after* the fsync returned. So
whatever moment the kill comes, replaying the journal gives a set of paths that must
read back exactly (the model keeps nothing else: files changed after their last fsync
are not checked, whatever POSIX would allow for them).

Snapshots (the worker given --snapshots): `snapshot create` does not sync the metadata
WAL by itself (README, docs/architecture.md), so a created snapshot is required after
the kill only once one of this worker's fsyncs returned after the create returned; a
deleted one must be gone under the same rule. Any snapshot that is listed must hold
exactly this worker's files as they were when the create was issued (the worker is
blocked while it runs, so that state is known).

`check-crash` replays the journals, reads every required path and compares its sha256,
checks the snapshot list and contents, reads every file of the tree (no EIO), and
writes the tree as the new baseline (STATE). `check-baseline` (after a clean restart)
requires the tree and the snapshots to equal STATE exactly.

Exit status: 0 ok; 1 mismatch (details on stdout, lines starting with FAIL); 3 `work`
stopped by an error (expected once the daemon is killed; the driver decides); 2 usage.
"""

import argparse
import errno
import hashlib
import json
import os
import random
import subprocess
import sys
import time

SUBDIRS = ("d0", "d1", "d2")
MAX_FILES = 24
MAX_BYTES = 20 << 20


def sha(data):
    return hashlib.sha256(data).hexdigest()


def now():
    return time.time()


class Stop(Exception):
    """The filesystem stopped answering (daemon killed): end the run."""


class Journal:
    def __init__(self, path):
        self.f = open(path, "a", encoding="utf-8")

    def put(self, **ev):
        ev["t"] = round(now(), 4)
        self.f.write(json.dumps(ev, separators=(",", ":")) + "\n")
        self.f.flush()


class Inode:
    __slots__ = ("data", "synced")

    def __init__(self, data, synced):
        self.data = bytearray(data)
        self.synced = synced  # True: content unchanged since its last fsync


class Worker:
    def __init__(self, a):
        self.a = a
        self.rng = random.Random(a.seed)
        self.base = os.path.join(a.mnt, a.root)
        self.j = Journal(a.journal)
        self.files = {}  # relpath (under root) -> Inode
        self.entry_synced = {}  # relpath -> bool
        self.durable = set()
        self.ops = 0
        self.next_name = 0
        self.snap_seq = 0
        self.snaps_alive = []  # names we created and did not delete (incl. earlier cycles)

    # ---- durable-set bookkeeping -------------------------------------------------
    def is_durable(self, p):
        return p in self.files and self.files[p].synced and self.entry_synced.get(p, False)

    def drop(self, paths):
        for p in paths:
            if p in self.durable:
                self.durable.discard(p)
                self.j.put(d=p)

    def refresh(self, paths):
        for p in paths:
            if p not in self.durable and self.is_durable(p):
                self.durable.add(p)
                f = self.files[p]
                self.j.put(a=p, sha=sha(f.data), size=len(f.data))

    def full(self, p):
        return os.path.join(self.base, p)

    # ---- setup ------------------------------------------------------------------
    def setup(self):
        self.alive()
        new = False
        if not os.path.isdir(self.base):
            os.mkdir(self.base)
            new = True
        for d in SUBDIRS:
            if not os.path.isdir(os.path.join(self.base, d)):
                os.mkdir(os.path.join(self.base, d))
                new = True
        if new:
            for d in [self.a.mnt, self.base] + [os.path.join(self.base, s) for s in SUBDIRS]:
                self.dirsync_path(d)
        for d in SUBDIRS:
            for name in sorted(os.listdir(os.path.join(self.base, d))):
                p = f"{d}/{name}"
                with open(self.full(p), "rb") as fh:
                    data = fh.read()
                self.files[p] = Inode(data, True)
                self.entry_synced[p] = True
                n = name.split(".")[0].lstrip("f")
                if n.isdigit():
                    self.next_name = max(self.next_name, int(n) + 1)
        # Everything is durable at the start of a cycle (clean shutdown before it).
        self.refresh(sorted(self.files))
        if self.a.snapshots:
            for name in snapshot_names(self.cli(["snapshot", "list", "--json"])):
                self.snaps_alive.append(name)
                seq = name.rsplit("-", 1)[-1]
                if seq.isdigit():
                    self.snap_seq = max(self.snap_seq, int(seq) + 1)

    # ---- helpers ----------------------------------------------------------------
    def alive(self):
        """After the kill and `fusermount3 -uz` the path is the empty directory under the
        mount: stop rather than create anything there."""
        if not os.path.ismount(self.a.mnt):
            self.j.put(err="not-mounted")
            raise Stop()

    def dirsync_path(self, d):
        fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def cli(self, args, timeout=120):
        cmd = ["timeout", "-k", "5", str(timeout), self.a.bin] + args + ["--config", self.a.config]
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           stdin=subprocess.DEVNULL, check=False)
        if r.returncode != 0:
            self.j.put(err="cli", cmd=" ".join(args), rc=r.returncode, stderr=r.stderr.strip()[-400:])
            raise Stop()
        return r.stdout

    def gen_data(self, n):
        r = self.rng.random()
        if r < 0.45:
            return self.rng.randbytes(n)
        if r < 0.65:  # compressible
            pat = self.rng.randbytes(self.rng.randint(1, 64))
            return (pat * (n // len(pat) + 1))[:n]
        if r < 0.75:
            return bytes(n)
        # dedup: bytes copied from a file of the model, or a block shared by all workers
        srcs = [f for f in self.files.values() if len(f.data) >= 4096]
        if srcs and r < 0.9:
            src = self.rng.choice(srcs).data
            at = self.rng.randrange(0, len(src))
            out = bytes(src[at:at + n])
            return out + self.rng.randbytes(n - len(out))
        common = random.Random(12345).randbytes(1 << 20)
        at = self.rng.randrange(0, len(common))
        return (common[at:] + common)[:n]

    def size_pick(self, hi):
        r = self.rng.random()
        if r < 0.3:
            return self.rng.randint(1, 4096)
        if r < 0.7:
            return self.rng.randint(1, 128 << 10)
        return self.rng.randint(1, hi)

    def total_bytes(self):
        return sum(len(f.data) for f in self.files.values())

    def pick_file(self):
        return self.rng.choice(sorted(self.files)) if self.files else None

    def new_path(self):
        p = f"{self.rng.choice(SUBDIRS)}/f{self.next_name}"
        self.next_name += 1
        return p

    # ---- operations -------------------------------------------------------------
    def op_create(self):
        p = self.new_path()
        data = self.gen_data(self.size_pick(1536 << 10))
        self.drop([p])
        self.files[p] = Inode(b"", False)
        self.entry_synced[p] = False
        fd = os.open(self.full(p), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            self.files[p].data = bytearray(data)
            self.write_all(fd, data, 0)
            if self.rng.random() < 0.5:
                os.fsync(fd)
                self.files[p].synced = True
                self.synced_any()
        finally:
            os.close(fd)
        return f"create {p} {len(data)}"

    def write_all(self, fd, data, off):
        mv = memoryview(data)
        while mv:
            n = os.pwrite(fd, mv, off)
            mv = mv[n:]
            off += n

    def op_write(self, append=False):
        p = self.pick_file()
        if p is None:
            return self.op_create()
        f = self.files[p]
        n = self.size_pick(512 << 10)
        if append:
            off = len(f.data)
        else:
            r = self.rng.random()
            if r < 0.6 and f.data:
                off = self.rng.randrange(0, len(f.data))
            elif r < 0.8:
                off = self.rng.choice([0, 4096, 65536, 1 << 20]) + self.rng.randint(-3, 3)
                off = max(off, 0)
            else:  # past EOF: a hole
                off = len(f.data) + self.rng.randint(0, 300 << 10)
        data = self.gen_data(n)
        self.drop([p])
        f.synced = False
        fd = os.open(self.full(p), os.O_WRONLY)
        try:
            if len(f.data) < off:
                f.data.extend(bytes(off - len(f.data)))
            end = off + len(data)
            if len(f.data) < end:
                f.data.extend(bytes(end - len(f.data)))
            f.data[off:end] = data
            self.write_all(fd, data, off)
        finally:
            os.close(fd)
        return f"{'append' if append else 'write'} {p} @{off} +{len(data)}"

    def op_truncate(self):
        p = self.pick_file()
        if p is None:
            return self.op_create()
        f = self.files[p]
        r = self.rng.random()
        if r < 0.6:
            size = self.rng.randint(0, len(f.data))
        elif r < 0.7:
            size = 0
        else:
            size = len(f.data) + self.rng.randint(1, 400 << 10)
        self.drop([p])
        f.synced = False
        if size < len(f.data):
            del f.data[size:]
        else:
            f.data.extend(bytes(size - len(f.data)))
        os.truncate(self.full(p), size)
        return f"truncate {p} {size}"

    def op_fsync(self):
        p = self.pick_file()
        if p is None:
            return "fsync -"
        fd = os.open(self.full(p), os.O_RDONLY if self.rng.random() < 0.3 else os.O_WRONLY)
        try:
            data_only = self.rng.random() < 0.25
            if data_only:
                os.fdatasync(fd)
            else:
                os.fsync(fd)
        finally:
            os.close(fd)
        self.files[p].synced = True
        self.synced_any()
        self.refresh([p])
        return f"{'fdatasync' if data_only else 'fsync'} {p}"

    def op_dirsync(self):
        d = self.rng.choice(SUBDIRS)
        self.dirsync_path(os.path.join(self.base, d))
        paths = [p for p in self.files if p.startswith(d + "/")]
        for p in paths:
            self.entry_synced[p] = True
        self.synced_any()
        self.refresh(sorted(paths))
        return f"dirsync {d}"

    def op_rename(self):
        p = self.pick_file()
        if p is None:
            return self.op_create()
        if self.rng.random() < 0.3 and len(self.files) > 1:
            q = self.rng.choice([x for x in sorted(self.files) if x != p])  # over an existing file
        else:
            q = self.new_path()
        self.drop([p, q])
        inode = self.files.pop(p)
        self.entry_synced.pop(p, None)
        self.files[q] = inode
        self.entry_synced[q] = False
        os.rename(self.full(p), self.full(q))
        return f"rename {p} {q}"

    def op_unlink(self):
        p = self.pick_file()
        if p is None:
            return "unlink -"
        self.drop([p])
        del self.files[p]
        self.entry_synced.pop(p, None)
        os.unlink(self.full(p))
        return f"unlink {p}"

    def op_readcheck(self):
        p = self.pick_file()
        if p is None:
            return "read -"
        want = self.files[p].data
        got = self.read_file(p)
        if got != want:
            time.sleep(0.5)
            if not os.path.ismount(self.a.mnt):
                raise Stop()
            got2 = self.read_file(p)
            if got2 != want:
                self.j.put(err="live-mismatch", path=p, want_sha=sha(want), got_sha=sha(got2),
                           want_size=len(want), got_size=len(got2), first_diff=first_diff(want, got2))
                print(f"FAIL live read of {self.a.root}/{p}: expected sha256 {sha(want)} "
                      f"({len(want)} bytes), got {sha(got2)} ({len(got2)} bytes), first "
                      f"difference at {first_diff(want, got2)}", flush=True)
                sys.exit(1)
        return f"read {p}"

    def read_file(self, p):
        with open(self.full(p), "rb") as fh:
            return fh.read()

    def synced_any(self):
        """An fsync returned: the metadata WAL is synced, snapshots before it are durable."""
        if self.a.snapshots:
            self.j.put(sync=1)

    def op_snapshot_create(self):
        name = f"cr-{self.snap_seq}"
        self.snap_seq += 1
        manifest = {p: sha(f.data) for p, f in self.files.items()}
        self.j.put(sc_issue=name, manifest=manifest)
        out = self.cli(["snapshot", "create", name])
        self.j.put(sc_ok=name, out=out.strip())
        self.snaps_alive.append(name)
        return f"snapshot create {name}"

    def op_snapshot_delete(self):
        if not self.snaps_alive:
            return self.op_snapshot_create()
        name = self.snaps_alive.pop(0) if self.rng.random() < 0.7 else \
            self.snaps_alive.pop(self.rng.randrange(len(self.snaps_alive)))
        self.j.put(sd_issue=name)
        self.cli(["snapshot", "delete", name])
        self.j.put(sd_ok=name)
        return f"snapshot delete {name}"

    def op_gc(self):
        wait = self.rng.random() < 0.5
        self.cli(["gc", "run"] + (["--wait", "--json"] if wait else []), timeout=300)
        return f"gc run{' --wait' if wait else ''}"

    def op_idle(self):
        ms = self.rng.randint(100, 900)
        time.sleep(ms / 1000)
        return f"idle {ms}ms"

    def run(self):
        deadline = now() + self.a.max_seconds
        table = [
            (14, self.op_write), (8, lambda: self.op_write(append=True)),
            (7, self.op_truncate), (18, self.op_fsync), (8, self.op_dirsync),
            (6, self.op_rename), (3, self.op_unlink), (8, self.op_create),
            (6, self.op_readcheck), (3, self.op_idle),
        ]
        if self.a.snapshots:
            table += [(2, self.op_snapshot_create), (1, self.op_snapshot_delete), (2, self.op_gc)]
        weights = [w for w, _ in table]
        while now() < deadline:
            if len(self.files) >= MAX_FILES or self.total_bytes() > MAX_BYTES:
                op = self.rng.choice([self.op_unlink, self.op_truncate])
            elif self.a.snapshots and len(self.snaps_alive) > 4:
                op = self.op_snapshot_delete
            else:
                op = self.rng.choices([f for _, f in table], weights)[0]
            self.alive()
            what = op()
            self.ops += 1
            self.j.put(op=self.ops, what=what)


def first_diff(a, b):
    n = min(len(a), len(b))
    for i in range(0, n, 4096):
        if a[i:i + 4096] != b[i:i + 4096]:
            for k in range(i, min(i + 4096, n)):
                if a[k] != b[k]:
                    return k
    return n if len(a) != len(b) else -1


def cmd_work(a):
    w = Worker(a)
    try:
        w.setup()
        w.run()
    except Stop:
        w.j.put(end="stop", ops=w.ops)
        return 3
    except OSError as e:
        w.j.put(end="oserror", errno=errno.errorcode.get(e.errno, str(e.errno)), msg=str(e), ops=w.ops)
        return 3
    w.j.put(end="deadline", ops=w.ops)
    return 0


# ---- checking ----------------------------------------------------------------------

def tree(mnt, roots):
    """relpath (root/dir/name) -> bytes, for every file under the worker roots."""
    out = {}
    for r in roots:
        base = os.path.join(mnt, r)
        if not os.path.isdir(base):
            continue
        for d in sorted(os.listdir(base)):
            dd = os.path.join(base, d)
            for name in sorted(os.listdir(dd)):
                with open(os.path.join(dd, name), "rb") as fh:
                    out[f"{r}/{d}/{name}"] = fh.read()
    return out


def list_snapshots(a):
    cmd = ["timeout", "-k", "5", "120", a.bin, "snapshot", "list", "--json", "--config", a.config]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False)
    if r.returncode != 0:
        print(f"FAIL snapshot list exit {r.returncode}: {r.stderr.strip()}")
        sys.exit(1)
    return snapshot_names(r.stdout)


def snapshot_names(out):
    v = json.loads(out)
    if isinstance(v, dict):
        v = v.get("snapshots", [])
    return sorted(s["name"] for s in v)


def snapshot_manifest(mnt, name, root):
    base = os.path.join(mnt, ".snapshots", name)
    return {k[len(root) + 1:]: sha(v) for k, v in tree(base, [root]).items()}


def load_state(path):
    if not os.path.exists(path):
        return {"files": {}, "snapshots": {}, "roots": []}
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def save_state(path, st):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(st, fh, sort_keys=True)
    os.replace(tmp, path)


def cmd_check_baseline(a):
    st = load_state(a.state)
    got = {k: sha(v) for k, v in tree(a.mnt, st["roots"]).items()}
    bad = 0
    for p in sorted(set(got) | set(st["files"])):
        if got.get(p) != st["files"].get(p):
            print(f"FAIL after clean restart: {p}: expected sha256 {st['files'].get(p)}, "
                  f"actual {got.get(p)}")
            bad += 1
    snaps = list_snapshots(a)
    if snaps != sorted(st["snapshots"]):
        print(f"FAIL after clean restart: snapshots {snaps}, expected {sorted(st['snapshots'])}")
        bad += 1
    for name, man in st["snapshots"].items():
        if name in snaps:
            have = snapshot_manifest(a.mnt, name, man["root"])
            if have != man["files"]:
                print(f"FAIL after clean restart: snapshot {name} content differs: "
                      f"{diff_manifest(man['files'], have)}")
                bad += 1
    print(f"baseline ok: {len(got)} files, {len(snaps)} snapshots" if not bad else
          f"baseline: {bad} problems")
    return 1 if bad else 0


def diff_manifest(want, have):
    out = []
    for p in sorted(set(want) | set(have)):
        if want.get(p) != have.get(p):
            out.append(f"{p}: expected {want.get(p)}, actual {have.get(p)}")
    return "; ".join(out[:10])


def cmd_check_crash(a):
    st = load_state(a.state)
    required = {}  # root/relpath -> (sha, size)
    roots = set(st["roots"])
    # snapshot states: present | absent | maybe
    snap_state = {n: "present" for n in st["snapshots"]}
    manifests = dict(st["snapshots"])
    pending = {}  # name -> "created"/"deleted" (answered, awaiting a sync)
    ops = 0
    kinds = {}
    ends = []
    for jpath in a.journal:
        root = os.path.basename(jpath).split(".")[0]
        roots.add(root)
        with open(jpath, encoding="utf-8") as fh:
            for line in fh:
                if not line.endswith("\n"):
                    break
                ev = json.loads(line)
                if "a" in ev:
                    required[f"{root}/{ev['a']}"] = (ev["sha"], ev["size"])
                elif "d" in ev:
                    required.pop(f"{root}/{ev['d']}", None)
                elif "op" in ev:
                    ops += 1
                    kind = " ".join(ev["what"].split()[:2]) if ev["what"].startswith(("snapshot", "gc")) else None
                    if kind:
                        kinds[kind] = kinds.get(kind, 0) + 1
                elif "sc_issue" in ev:
                    snap_state[ev["sc_issue"]] = "maybe"
                    manifests[ev["sc_issue"]] = {"root": root, "files": ev["manifest"]}
                elif "sc_ok" in ev:
                    pending[ev["sc_ok"]] = "present"
                elif "sd_issue" in ev:
                    snap_state[ev["sd_issue"]] = "maybe"
                    pending.pop(ev["sd_issue"], None)
                elif "sd_ok" in ev:
                    pending[ev["sd_ok"]] = "absent"
                elif "sync" in ev:
                    for n, s in pending.items():
                        snap_state[n] = s
                    pending.clear()
                elif "end" in ev or "err" in ev:
                    ends.append(f"{root}: {json.dumps(ev)}")
    bad = 0
    for p in sorted(required):
        want_sha, want_size = required[p]
        try:
            with open(os.path.join(a.mnt, p), "rb") as fh:
                data = fh.read()
            got_sha, got_size = sha(data), len(data)
        except OSError as e:
            got_sha, got_size = f"<{e}>", -1
        if got_sha != want_sha:
            print(f"FAIL cycle {a.cycle} seed {a.seed}: fsync'd file {p}: expected sha256 "
                  f"{want_sha} ({want_size} bytes), actual {got_sha} ({got_size} bytes)")
            bad += 1
    snaps = list_snapshots(a)
    for n, s in sorted(snap_state.items()):
        if s == "present" and n not in snaps:
            print(f"FAIL cycle {a.cycle} seed {a.seed}: snapshot {n} (created, then an fsync "
                  f"returned) is missing after the kill; listed: {snaps}")
            bad += 1
        if s == "absent" and n in snaps:
            print(f"FAIL cycle {a.cycle} seed {a.seed}: snapshot {n} (deleted, then an fsync "
                  f"returned) is listed after the kill")
            bad += 1
    info = []
    for n, s in pending.items():  # answered, but no fsync of this worker returned after
        what = "created" if s == "present" else "deleted"
        info.append(f"{n} {what} without a later fsync: {'listed' if n in snaps else 'not listed'}")
    new_snaps = {}
    for n in snaps:
        if n not in manifests:
            print(f"FAIL cycle {a.cycle} seed {a.seed}: unknown snapshot {n} listed")
            bad += 1
            continue
        man = manifests[n]
        have = snapshot_manifest(a.mnt, n, man["root"])
        if have != man["files"]:
            print(f"FAIL cycle {a.cycle} seed {a.seed}: snapshot {n} content differs from the "
                  f"tree when it was created: {diff_manifest(man['files'], have)}")
            bad += 1
        new_snaps[n] = man
    # Every file of the tree must read (no EIO); it becomes the next baseline.
    try:
        files = {k: sha(v) for k, v in tree(a.mnt, sorted(roots)).items()}
    except OSError as e:
        print(f"FAIL cycle {a.cycle} seed {a.seed}: reading the tree after the kill: {e}")
        return 1
    save_state(a.state, {"files": files, "snapshots": new_snaps, "roots": sorted(roots)})
    print(f"verified {len(required)} fsync'd files, {sum(1 for s in snap_state.values() if s == 'present')} "
          f"required snapshots; tree {len(files)} files; ops {ops}; "
          f"snapshots listed {len(snaps)}{'; ' + ', '.join(info) if info else ''}")
    print("RESULT " + json.dumps({"verified": len(required), "ops": ops, "bad": bad,
                                  "snap_create": kinds.get("snapshot create", 0),
                                  "snap_delete": kinds.get("snapshot delete", 0),
                                  "gc": kinds.get("gc run", 0),
                                  "snap_required": sum(1 for s in snap_state.values() if s == "present")}))
    for e in ends:
        print(f"  worker end: {e}")
    return 1 if bad else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["work", "check-baseline", "check-crash"])
    ap.add_argument("--mnt", required=True)
    ap.add_argument("--root")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cycle", type=int, default=0)
    ap.add_argument("--journal", action="append", default=[])
    ap.add_argument("--state")
    ap.add_argument("--snapshots", action="store_true")
    ap.add_argument("--bin", required=True)
    ap.add_argument("--config", required=True)
    ap.add_argument("--max-seconds", type=float, default=60)
    a = ap.parse_args()
    if a.mode == "work":
        a.journal = a.journal[0]
        sys.exit(cmd_work(a))
    if a.mode == "check-baseline":
        sys.exit(cmd_check_baseline(a))
    sys.exit(cmd_check_crash(a))


if __name__ == "__main__":
    main()
