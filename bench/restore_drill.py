"""The restore drill (DRL-001) against a raw `restic restore` of the same snapshot.

    .venv/bin/python bench/restore_drill.py [--reps 3] [--data-mib 200] [--db-mib 100]

Starts a sandbox of its own (ports --port-base + …, default 32000; state in a temp dir,
purged at the end) and gives it a dataset: --data-mib of random files in its data folder and
--db-mib of rows in its database; its backup scheduler is paused so that nothing else runs.
One full backup (`opsverify backup create`, timed) holds all of it. Then, round-robin after
one warm-up each, median of --reps:

- **drill**: `opsverify run -k DRL-001`: the drill's own time (from its step log: recovery,
  verification, live-data proof) and the run's wall time;
- **raw**: `restic restore` of the same snapshot into an empty folder.

Reports the bytes restored, both throughputs, the drill/raw ratio and the share of the
drill's time spent verifying (files against the manifest, the dump restored and its tables
checked, live data fingerprinted before and after).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from dataclasses import replace

import _common as c

sys.path.insert(0, str(c.REPO))  # the tests' sandbox helpers: one way to run a sandbox

from tests.helpers import running_sandbox, superuser, write_profile  # noqa: E402


def fill(settings, data_mib: int, db_mib: int) -> None:  # noqa: ANN001 - sandbox.Settings
    """Random files in the data folder (incompressible, as restic sees most payloads) and
    rows of random text in the items table."""
    folder = settings.layout().data_dir / "dataset"
    folder.mkdir()
    for n in range(data_mib // 4):
        (folder / f"part-{n:04d}.bin").write_bytes(os.urandom(4 << 20))
    rows = db_mib * 1024 * 1024 // 512
    text = " || ".join(["md5(random()::text)"] * 15)  # 480 characters of random hex
    with superuser(settings) as conn:
        conn.execute(
            f"INSERT INTO items (name, description) SELECT 'item ' || n, {text}"
            " FROM generate_series(1, %s) AS n",
            (rows,),
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3, help="timed runs per variant")
    parser.add_argument("--data-mib", type=int, default=200, help="random files, MiB")
    parser.add_argument("--db-mib", type=int, default=100, help="database rows, MiB (about)")
    parser.add_argument("--port-base", type=int, default=32000, help="the sandbox's ports")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per subprocess")
    args = parser.parse_args()
    c.require_venv()
    from opsverify import sandbox

    with running_sandbox(args.port_base, "bench-drill") as settings, c.workspace("drill") as tmp:
        sandbox.stop(settings, "backup-scheduler")
        fill(settings, args.data_mib, args.db_mib)
        profile = write_profile(settings, tmp)
        backup = c.run(
            [c.OPSVERIFY, "backup", "create", "--env", profile],
            cwd=c.REPO,
            timeout=args.timeout,
            log=tmp / "backup.log",
        )
        snapshot = (tmp / "backup.log").read_text().split()[2]
        restic_env = c.bench_env(
            RESTIC_REPOSITORY=str(settings.layout().restic_repo),
            RESTIC_PASSWORD_FILE=str(settings.layout().restic_password),
            RESTIC_CACHE_DIR=str(tmp / "restic-cache"),
        )
        counter = iter(range(10**6))

        def drill() -> c.Sample:
            folder = tmp / f"run-{next(counter)}"
            sample = c.run(
                [c.OPSVERIFY, "run", "--env", profile, "--run-dir", folder, "-k", "DRL-001"],
                cwd=c.REPO,
                timeout=args.timeout,
                env=c.bench_env(),
                log=tmp / "drill.log",
            )
            result = c.readiness(folder)["checks"][0]
            if result["status"] != "passed":
                raise c.BenchError(f"the drill failed: {result['message']}")
            steps = json.loads(next(folder.glob("evidence/DRL-001/*/01-steps.json")).read_text())
            restored = next(s for s in steps if s["name"] == "restore the snapshot's files")
            figures = result["figures"]
            info = {k: figures[k] for k in ("drill_s", "recover_s", "verify_s", "rto_s", "rpo_s")}
            info.update(restore_files_s=restored["seconds"], bytes=restored["bytes"])
            shutil.rmtree(folder)
            return replace(sample, info=info)

        def raw() -> c.Sample:
            target = tmp / "raw"
            sample = c.run(
                ["restic", "restore", snapshot, "--target", target],
                cwd=tmp,
                timeout=args.timeout,
                env=restic_env,
                rss=False,
            )
            size = c.folder_size(target)["bytes"]
            shutil.rmtree(target)
            return replace(sample, info={"bytes": size})

        samples = c.repeat({"drill": drill, "raw": raw}, args.reps, label="restore: ")

    d, r = c.summary(samples["drill"]), c.summary(samples["raw"])
    info = d["info_median"]
    mb = r["info_median"]["bytes"] / 1e6
    c.table(
        ["variant", "seconds", "MB/s"],
        [
            ("raw restic restore", r["wall_median"], mb / r["wall_median"]),
            ("drill: restore step", info["restore_files_s"], mb / info["restore_files_s"]),
            ("drill: recovery (RTO)", info["recover_s"], None),
            ("drill: whole drill", info["drill_s"], mb / info["drill_s"]),
            ("drill: opsverify run wall", d["wall_median"], mb / d["wall_median"]),
        ],
        title=f"Restoring snapshot {snapshot} ({mb:.0f} MB), median of {args.reps}",
    )
    ratio = c.ratio(info["drill_s"], r["wall_median"])
    share = c.ratio(info["verify_s"], info["drill_s"])
    print(f"\ndrill / raw restore: {ratio:.2f}x; share of the drill spent verifying: {share:.0%}")
    print(f"full backup of the dataset: {backup.wall:.1f} s")
    c.write_results(
        "restore_drill",
        {
            "dataset": {"data_mib": args.data_mib, "db_mib": args.db_mib, "restored_mb": mb},
            "full_backup_s": backup.wall,
            "drill": d,
            "raw": r,
            "drill_over_raw": ratio,
            "drill_over_raw_paired": c.median(
                x.info["drill_s"] / y.wall
                for x, y in zip(samples["drill"], samples["raw"], strict=False)
            ),
            "verify_share": share,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
