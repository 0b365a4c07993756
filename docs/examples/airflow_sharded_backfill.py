"""A sharded backfill as Airflow dynamic task mapping: one mapped task per shard.

Each task calls the Python API with `shard=Shard(i, N)`; a failed shard is retried alone and
resumes from its own state. `rate_limit` is per shard: divide the global budget by SHARDS.
"""

from datetime import datetime
from pathlib import Path

from airflow.decorators import dag, task
from airflow.exceptions import AirflowException

SHARDS = 8
GLOBAL_RATE_LIMIT = 800  # requests/second the account may take


@dag(schedule=None, start_date=datetime(2026, 1, 1), catchup=False)
def masivo_sharded_backfill():
    @task(retries=3)
    def sync_shard(index: int) -> dict:
        from pipeline import SendOptions, SyncConfig, run_sync
        from pipeline.shard import Shard

        result = run_sync(
            SyncConfig(
                inputs=("/data/exports/",),
                state_dir=Path("/data/masivo-sync/state"),
                shard=Shard(index, SHARDS),
                send=SendOptions(concurrency=64, rate_limit=GLOBAL_RATE_LIMIT / SHARDS),
                handle_signals=False,
            )
        )
        if result.exit_code != 0:
            raise AirflowException(f"shard {index}/{SHARDS}: exit {result.exit_code}")
        return result.summary.outcomes

    sync_shard.expand(index=list(range(SHARDS)))


masivo_sharded_backfill()
