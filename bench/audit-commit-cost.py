#!/usr/bin/env python3
"""What one durable audit commit costs on this disk, SQLite against a plain file.

    python3 bench/audit-commit-cost.py [BATCH ...]     # default: 6 24

For each batch size (records of 300 bytes per commit), alternately:
  sqlite: the audit writer's transaction as keyfence-store runs it (WAL,
          synchronous=FULL, BEGIN IMMEDIATE, the MAX(seq) read, one INSERT per
          record into a WITHOUT ROWID table with its leaf hash, the tree edge
          upserted, COMMIT);
  file:   the same bytes and edge appended to a file with one write and one
          fdatasync.
Prints the process CPU time (user + system) and the wall time per commit, two
rounds each, so the ratio file/sqlite is read within one run. The Python
interpreter's own cost is in both columns (larger in the SQLite one: one call
per record). Files go to a temporary directory on the disk of $TMPDIR.
"""
import os
import sqlite3
import sys
import tempfile
import time

COMMITS = 2000
RECORD = os.urandom(300)
EDGE = os.urandom(200)


def main():
    batches = [int(b) for b in sys.argv[1:]] or [6, 24]
    with tempfile.TemporaryDirectory() as d:
        db = sqlite3.connect(os.path.join(d, "audit.db"), isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute(
            "CREATE TABLE r (log TEXT, seq INTEGER, data BLOB, leaf BLOB, "
            "PRIMARY KEY (log, seq)) WITHOUT ROWID"
        )
        db.execute("CREATE TABLE f (log TEXT PRIMARY KEY, edge BLOB)")
        fd = os.open(os.path.join(d, "audit.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        seq = [0]

        def sqlite_commit(batch):
            db.execute("BEGIN IMMEDIATE")
            db.execute("SELECT COALESCE(MAX(seq) + 1, 0) FROM r WHERE log = 'n'").fetchone()
            for _ in range(batch):
                db.execute("INSERT INTO r VALUES ('n', ?, ?, ?)", (seq[0], RECORD, RECORD[:32]))
                seq[0] += 1
            db.execute(
                "INSERT INTO f VALUES ('n', ?) ON CONFLICT (log) DO UPDATE SET edge = excluded.edge",
                (EDGE,),
            )
            db.execute("COMMIT")

        def file_commit(batch):
            os.write(fd, RECORD * batch + EDGE)
            os.fdatasync(fd)

        for batch in batches:
            cost = {}
            for rnd in (1, 2):
                for name, commit in (("sqlite", sqlite_commit), ("file", file_commit)):
                    c0, t0 = time.process_time(), time.perf_counter()
                    for _ in range(COMMITS):
                        commit(batch)
                    cpu = (time.process_time() - c0) / COMMITS * 1e6
                    wall = (time.perf_counter() - t0) / COMMITS * 1e6
                    cost.setdefault(name, []).append(cpu)
                    print(f"batch {batch:3} round {rnd} {name:6}: CPU {cpu:7.1f} us/commit, "
                          f"wall {wall:7.1f} us/commit")
            ratio = (sum(cost["file"]) / 2) / (sum(cost["sqlite"]) / 2)
            print(f"batch {batch:3}: CPU per commit, file / sqlite = {ratio:.3f}")
        os.close(fd)


if __name__ == "__main__":
    main()
