"""PostgreSQL: vacuum and analyze the two queue tables early (nothing to do on SQLite).

Every inbox and outbox row is inserted, claimed and finished within seconds, so these
tables churn far faster than the defaults expect (a table-wide pass after a fifth of it
changed). Without statistics the planner took the claim's pick of the oldest pending
rows for a handful of rows, read every pending one through a bitmap and sorted them
(50 ms for a 40,000-row backlog, against 2.5 ms by the pending index once analyzed), and
dead index entries then pile up for every claim to step over.
"""

from typing import Any

from tortoise import migrations
from tortoise.migrations import operations as ops

TABLES = ("inbox_item", "outbox_item")
SETTINGS = ("autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000, "
            "autovacuum_analyze_scale_factor = 0.01, autovacuum_analyze_threshold = 1000")


async def tune(_: Any, schema_editor: Any) -> None:
    client = schema_editor.client
    if client.capabilities.dialect != "postgres":
        return
    for table in TABLES:
        await client.execute_script(f"ALTER TABLE {table} SET ({SETTINGS})")


async def untune(_: Any, schema_editor: Any) -> None:
    client = schema_editor.client
    if client.capabilities.dialect != "postgres":
        return
    names = ", ".join(setting.split(" = ")[0] for setting in SETTINGS.split(", "))
    for table in TABLES:
        await client.execute_script(f"ALTER TABLE {table} RESET ({names})")


class Migration(migrations.Migration):
    dependencies = [('models', '0013_flood_marks')]

    initial = False

    operations = [ops.RunPython(tune, untune)]
